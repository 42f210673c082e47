"""Neutral read operations that rank by similarity: k-NN search, near-duplicates, health."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from anyio import to_thread

from gateway.engines import EngineRuntime
from gateway.search.dsl import build_msearch, near_duplicates_body, radius_body
from gateway.search.hamming_pairs import near_pairs
from gateway.search.model import (
    ID_FIELD,
    FilterTree,
    ImageQuery,
    ImageUrlQuery,
    ItemQuery,
    MultiQuery,
    NearDuplicate,
    Query,
    SearchRequest,
    SearchResult,
    SingleQuery,
    TextQuery,
)
from gateway.search.records import after_body
from gateway.search.results import collapse_hits, read_hits, read_msearch, read_near_duplicates
from gateway.service.core import ServiceCore
from gateway.service.timings import Timings
from imgsearch.embedders.base import TextEmbedder
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import (
    ConfigError,
    FeatureDisabled,
    ImgSearchError,
    InvalidRequest,
    MissingFields,
)

PAIRS_SCAN_PAGE = 5_000


class SearchOps(ServiceCore):
    async def search(
        self, engine: EngineRuntime, query: Query | None, request: SearchRequest, timings: Timings
    ) -> SearchResult:
        """k-NN search with the request's pool, filters, facets, sort and page.

        With ``request.keywords`` the BM25 ranking is fused in; without a ``query`` only the
        words rank (blank words: the catalog in id order).
        """
        req, scale = await self._with_vector(engine, query, request, timings)
        lines = build_msearch(req, engine.config, engine.config.alias)
        started = time.perf_counter()
        answer: dict[str, Any] = await self._backend(lambda: self.client.msearch(body=lines))
        timings.add("opensearch", started)
        timings.parts["opensearch_took"] = float(
            max((r.get("took", 0) for r in answer.get("responses", [])), default=0)
        )
        return _rescaled(read_msearch(answer.get("responses", []), req, engine.config), scale)

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
        await self._ensure_index_matches(engine, vector_field)
        target = await self._query_vector(engine, query, vector_field, timings)
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
        self, engine: EngineRuntime, query: Query | None, request: SearchRequest, timings: Timings
    ) -> tuple[SearchRequest, float]:
        if query is None:
            if request.keywords is None:
                raise MissingFields(["query"])
            return request, 1.0
        await self._ensure_index_matches(engine, request.vector_field)
        found = await self._query_vector(engine, query, request.vector_field, timings)
        excluded = (*request.exclude_ids, *found.exclude_ids)
        request = await self._with_rerank(engine, request, found.scale, timings)
        return replace(request, vector=found.vector, exclude_ids=excluded), found.scale

    async def near_duplicates(
        self,
        engine: EngineRuntime,
        query: ImageQuery | ImageUrlQuery | ItemQuery,
        *,
        max_distance: int,
        size: int,
        tree: FilterTree | None = None,
        timings: Timings | None = None,
    ) -> tuple[NearDuplicate, ...]:
        """Items whose perceptual hash is within ``max_distance`` bits of the query's."""
        field = phash_field(engine.config)
        await self._ensure_index_matches(engine, field)
        self_id: str | None = None
        if isinstance(query, ItemQuery):
            self_id, value = await self._stored_value(engine, query, field)
        elif isinstance(query, MultiQuery):
            raise InvalidRequest("near-duplicates take one query image")
        else:
            found = await self._query_vector(engine, query, field, timings or self.timings())
            value = engine.embedder(field).field_value(np.asarray(found.vector, dtype=np.float32))
        if not isinstance(value, int):
            raise ConfigError(f"Field {field!r} does not hold a perceptual hash")
        body = near_duplicates_body(
            field, value, size=size, max_distance=max_distance, tree=tree, config=engine.config
        )
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        hits = read_near_duplicates(response)
        if isinstance(query, ItemQuery) and query.exclude_self:
            hits = tuple(hit for hit in hits if hit.id != self_id)
        return hits

    async def near_duplicate_pairs(
        self, engine: EngineRuntime, *, max_distance: int, tree: FilterTree | None = None
    ) -> list[tuple[str, str, int]]:
        """Every pair of items within ``max_distance`` bits, closest first (exact)."""
        field = phash_field(engine.config)
        await self._ensure_index_matches(engine, field)
        ids: list[str] = []
        hashes: list[int] = []
        after: str | None = None
        while True:
            body = after_body(tree, engine.config, size=PAIRS_SCAN_PAGE, after=after)
            body["_source"] = [ID_FIELD, field]
            body["query"] = {"bool": {"filter": [body["query"], {"exists": {"field": field}}]}}
            hits = await self._hits_page(engine.config.alias, body)
            for hit in hits:
                source = hit.get("_source") or {}
                ids.append(str(source.get(ID_FIELD, hit["_id"])))
                hashes.append(int(source[field]))
            if len(hits) < PAIRS_SCAN_PAGE:
                break
            after = ids[-1]
        pairs = await to_thread.run_sync(near_pairs, hashes, max_distance)
        return [(ids[i], ids[j], distance) for i, j, distance in pairs]

    async def _hits_page(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=index, body=body)
        )
        hits: list[dict[str, Any]] = response.get("hits", {}).get("hits", [])
        return hits

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


def _rescaled(result: SearchResult, scale: float) -> SearchResult:
    """Scores against a MultiQuery's unit centroid → scores of the mean cosine."""
    if scale == 1.0:
        return result
    hits = tuple(replace(h, score=(1.0 + (2.0 * h.score - 1.0) * scale) / 2.0) for h in result.hits)
    return replace(result, hits=hits)


def phash_field(config: EngineConfig) -> str:
    """The engine's perceptual-hash vector field (near-duplicates need one)."""
    fields = [name for name, spec in config.vectors.items() if spec.embedder == "phash"]
    if not fields:
        raise FeatureDisabled(f"Engine {config.hashid!r} has no phash vector field")
    return fields[0]
