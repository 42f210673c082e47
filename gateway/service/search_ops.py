"""Neutral read operations that rank by similarity: k-NN search, radius search, health.

Near-duplicates live beside them in ``dupe_ops.py``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gateway.engines import EngineRuntime
from gateway.search.dsl import (
    build_msearch,
    counts_pool_in_opensearch,
    facet_msearch,
    radius_body,
)
from gateway.search.model import (
    ImageQuery,
    ImageUrlQuery,
    MultiQuery,
    Query,
    SearchRequest,
    SearchResult,
    SingleQuery,
    TextQuery,
)
from gateway.search.results import (
    collapse_hits,
    read_facet_pass,
    read_hits,
    read_msearch,
    read_pools,
    shards_searched,
)
from gateway.service.dupe_ops import DupeOps
from gateway.service.timings import Timings
from imgsearch.embedders.base import TextEmbedder
from imgsearch.errors import (
    FeatureDisabled,
    ImgSearchError,
    MissingFields,
)


class SearchOps(DupeOps):
    async def search(
        self, engine: EngineRuntime, query: Query | None, request: SearchRequest, timings: Timings
    ) -> SearchResult:
        """k-NN search with the request's pool, filters, facets, sort and page.

        With ``request.keywords`` the BM25 ranking is fused in; without a ``query`` only the
        words rank (blank words: the catalog in id order). On an index of several shards,
        OpenSearch-counted facets take a second pass over the pool's ids (``dsl``'s docstring);
        the shard count is learnt from the responses, so a first search of a sharded alias
        (or one whose alias moved to a sharded index) plans again once.
        """
        # Without a session's own preference, one per search: its bodies and passes read the
        # same shard copies, and searches still spread over the replicas.
        preference = request.preference or secrets.token_hex(8)
        req, scale = await self._with_vector(
            engine, query, request, timings, cacheable=_repeats(query), preference=preference
        )
        alias = engine.config.alias
        planned = self.shards_seen.get(alias, 1)
        responses = await self._msearch(
            build_msearch(req, engine.config, alias, shards=planned), timings
        )
        shards = self.shards_seen[alias] = shards_searched(responses)
        if not counts_pool_in_opensearch(req) or planned == shards == 1:
            return _rescaled(read_msearch(responses, req, engine.config), scale)
        if planned == 1:  # planned for one shard: its facets counted up to k x shards documents
            lines = build_msearch(req, engine.config, alias, shards=shards)
            responses = await self._msearch(lines, timings)
        first = read_pools(responses, req)
        lines = facet_msearch(req, engine.config, alias, first.ids, first.page_ids(req))
        second = await self._msearch(lines, timings)
        return _rescaled(read_facet_pass(second, req, engine.config, first), scale)

    async def _msearch(self, lines: list[dict[str, Any]], timings: Timings) -> list[dict[str, Any]]:
        """One ``_msearch`` round trip → its responses, in the order of the bodies."""
        started = time.perf_counter()
        answer: dict[str, Any] = await self._backend(lambda: self.client.msearch(body=lines))
        timings.add("opensearch", started)
        responses: list[dict[str, Any]] = answer.get("responses", [])
        took = float(max((r.get("took", 0) for r in responses), default=0))
        timings.parts["opensearch_took"] = timings.parts.get("opensearch_took", 0.0) + took
        return responses

    async def search_text(
        self,
        engine: EngineRuntime,
        text: str | None,
        request: SearchRequest,
        timings: Timings,
    ) -> tuple[SearchResult, str]:
        """Search by words as the engine's ``gateway.text_search`` says; ``None`` browses.

        Returns the result and the mode used: ``hybrid`` (CLIP text tower fused with BM25),
        ``vector``, ``lexical`` (also what ``hybrid`` falls back to on an engine whose vector
        field has no text tower) or ``browse``.
        """
        mode = engine.config.gateway.text_search
        if mode == "off":
            raise FeatureDisabled("Text search is not enabled for this search engine")
        if text is None:
            return await self.search(engine, None, replace(request, keywords=""), timings), "browse"
        has_tower = isinstance(engine.embedder(request.vector_field), TextEmbedder)
        if mode == "hybrid" and not has_tower:
            mode = "lexical"
        query = TextQuery(text) if mode in ("hybrid", "vector") else None
        keywords = text if mode in ("hybrid", "lexical") else None
        req = replace(request, keywords=keywords)
        return await self.search(engine, query, req, timings), mode

    async def within(
        self,
        engine: EngineRuntime,
        query: Query,
        request: SearchRequest,
        *,
        min_score: float,
        timings: Timings,
    ) -> SearchResult:
        """Every item scoring at least ``min_score`` (k-NN radial search), best first.

        At most ``request.rpp`` hits; ``total`` is how many came back.
        """
        req, scale = await self._with_vector(engine, query, request, timings)
        # A MultiQuery's scores are rescaled after the search: search on the raw threshold.
        raw = 0.5 + (min_score - 0.5) / scale
        body = radius_body(req, engine.config, min_score=min(raw, 1.0), size=req.rpp)
        started = time.perf_counter()
        answer: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        timings.add("opensearch", started)
        result = read_hits(answer)
        if req.collapse is not None:
            kept = tuple(collapse_hits(result.hits, req.collapse))
            result = SearchResult(total=len(kept), hits=kept)
        return _rescaled(result, scale)

    async def similarities(
        self,
        engine: EngineRuntime,
        query: Query,
        candidates: Sequence[SingleQuery],
        vector_field: str,
        timings: Timings,
    ) -> list[float | ImgSearchError]:
        """The similarity score ``(1 + cos) / 2`` of each candidate to the query, or its error."""
        target = await self._checked_query_vector(engine, query, vector_field, timings)
        q = np.asarray(target.vector, dtype=np.float64)
        q /= np.linalg.norm(q) or 1.0
        out: list[float | ImgSearchError] = []
        for candidate in candidates:
            try:
                found = await self._query_vector(engine, candidate, vector_field, timings)
            except ImgSearchError as exc:
                out.append(exc)
                continue
            v = np.asarray(found.vector, dtype=np.float64)
            cosine = float(v @ q / (np.linalg.norm(v) or 1.0)) * target.scale
            out.append((1.0 + cosine) / 2.0)
        return out

    async def _with_vector(
        self,
        engine: EngineRuntime,
        query: Query | None,
        request: SearchRequest,
        timings: Timings,
        **changes: Any,
    ) -> tuple[SearchRequest, float]:
        """``request`` with the query's vector (and the ``changes``: one copy, not two)."""
        if query is None:
            if request.keywords is None:
                raise MissingFields(["query"])
            return (replace(request, **changes) if changes else request), 1.0
        found = await self._checked_query_vector(engine, query, request.vector_field, timings)
        excluded = (*request.exclude_ids, *found.exclude_ids)
        request = await self._with_rerank(engine, request, found.scale, timings)
        updated = replace(request, vector=found.vector, exclude_ids=excluded, **changes)
        return updated, found.scale

    async def health(self) -> dict[str, Any]:
        """The cluster's status and, per engine, whether its alias exists."""

        def check() -> dict[str, Any]:
            cluster = self.client.cluster.health()
            engines = {
                engine.hashid: "ok"
                if self.client.indices.exists_alias(name=engine.config.alias)
                else "index missing"
                for engine in self.registry
            }
            return {"cluster": cluster.get("status"), "engines": engines}

        return await self._backend(check)


def _repeats(query: Query | None) -> bool:
    """Whether the same query is likely to come again (an item's "more like this", a text, a
    colour, browsing): uploaded photos and image URLs almost never do."""
    if isinstance(query, MultiQuery):
        return all(_repeats(q) for q in query.queries)
    return not isinstance(query, ImageQuery | ImageUrlQuery)


def _rescaled(result: SearchResult, scale: float) -> SearchResult:
    """Scores against a MultiQuery's unit centroid → scores of the mean cosine."""
    if scale == 1.0:
        return result
    hits = tuple(replace(h, score=(1.0 + (2.0 * h.score - 1.0) * scale) / 2.0) for h in result.hits)
    return replace(result, hits=hits)
