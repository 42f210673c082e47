"""Near-duplicates (``imgsearch.dupes``): of one query image, and every pair of a catalog.

The search compares the query's probes with every item's stored hashes inside OpenSearch
(exact, ``dsl.near_duplicates_body``); the second stage then runs here on the candidates'
stored thumbnails. The all-pairs search reads every stored signature once and does the rest
in numpy (``gateway.search.dupe_pairs``). Both refuse, with a clear error, an index written
by another version of the ``phash`` embedder (rebuild it: ``imgsearch index --rebuild``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.engines import EngineRuntime
from gateway.search.dsl import near_duplicates_body
from gateway.search.dupe_pairs import Progress
from gateway.search.dupe_pairs import near_duplicate_pairs as pairs_of
from gateway.search.model import (
    ID_FIELD,
    FilterTree,
    ImageQuery,
    ImageUrlQuery,
    ItemQuery,
    MultiQuery,
    NearDuplicate,
)
from gateway.search.records import after_body, count_body
from gateway.search.results import read_near_duplicate_candidates
from gateway.service.core import ServiceCore
from gateway.service.timings import Timings
from imgsearch.dupes.hashes import Probe, probes
from imgsearch.dupes.match import Limits, Stored, compare, stored
from imgsearch.dupes.signature import Signature, from_row
from imgsearch.engine_config import EngineConfig, PhashSpec
from imgsearch.errors import ConfigError, FeatureDisabled, InvalidRequest

# Candidates fetched beyond the answer's size: some fail the second stage.
CANDIDATE_SLACK = 100
PAIRS_SCAN_PAGE = 2_000


class DupeOps(ServiceCore):
    async def near_duplicates(
        self,
        engine: EngineRuntime,
        query: ImageQuery | ImageUrlQuery | ItemQuery,
        *,
        max_distance: int | None = None,
        size: int,
        tree: FilterTree | None = None,
        timings: Timings | None = None,
    ) -> tuple[NearDuplicate, ...]:
        """Near-copies of the query image, closest first.

        ``distance`` is in bits between one of the item's stored box hashes and the closest of
        the query's probes (its crops and mirror image); items within ``max_distance`` (default: the
        engine's ``phash.max_distance``) that also pass the second stage
        (``phash.min_similarity``) are returned.
        """
        field, spec = phash_field(engine.config)
        limits = _limits(spec, spec.max_distance if max_distance is None else max_distance)
        await self._ensure_index_matches(engine, field)
        self_id: str | None = None
        if isinstance(query, ItemQuery):
            self_id, value = await self._stored_value(engine, query, field)
            sig = _stored(value, field).signature
        elif isinstance(query, MultiQuery):
            raise InvalidRequest("near-duplicates take one query image")
        else:
            found = await self._query_vector(engine, query, field, timings or self.timings())
            sig = from_row(found.vector)
        query_probes = await self._in_thread(probes, sig)
        body = near_duplicates_body(
            field,
            [p.value for p in query_probes],
            size=size + CANDIDATE_SLACK,
            max_distance=limits.max_distance,
            tree=tree,
            config=engine.config,
        )
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        candidates = read_near_duplicate_candidates(response, field)
        near = await self._in_thread(_verified, sig, query_probes, candidates, field, limits)
        if isinstance(query, ItemQuery) and query.exclude_self:
            near = [hit for hit in near if hit.id != self_id]
        return tuple(near[:size])

    async def near_duplicate_pairs(
        self,
        engine: EngineRuntime,
        *,
        max_distance: int | None = None,
        tree: FilterTree | None = None,
        progress: Progress | None = None,
    ) -> list[tuple[str, str, int]]:
        """Every near-duplicate pair ``(id, id, bits)``, closest first, each pair once.

        Exact within ``max_distance`` (default: the engine's ``phash.pairs_max_distance``);
        ``progress(phase, done, total)`` follows the phases "read", "probes" and "verify".
        """
        field, spec = phash_field(engine.config)
        limits = _limits(spec, spec.pairs_max_distance if max_distance is None else max_distance)
        await self._ensure_index_matches(engine, field)
        ids, items = await self._signatures(engine, field, tree, progress)
        found = await self._in_thread(pairs_of, items, limits, progress)
        return [(ids[i], ids[j], distance) for i, j, distance in found]

    async def _signatures(
        self,
        engine: EngineRuntime,
        field: str,
        tree: FilterTree | None,
        progress: Progress | None,
    ) -> tuple[list[str], list[Stored]]:
        """Ids and stored signatures of every item passing ``tree``, in id order."""
        config, alias = engine.config, engine.config.alias
        query = {"bool": {"filter": [count_body(tree, config)["query"], _has(field)]}}
        counted = await self._backend(lambda: self.client.count(index=alias, body={"query": query}))
        total = int(counted["count"])
        ids: list[str] = []
        items: list[Stored] = []
        after: str | None = None
        while True:
            body = after_body(tree, config, size=PAIRS_SCAN_PAGE, after=after)
            body["_source"] = [ID_FIELD, field]
            body["query"] = query
            hits = await self._page(alias, body)
            for hit in hits:
                source = hit.get("_source") or {}
                ids.append(str(source.get(ID_FIELD, hit["_id"])))
                items.append(_stored(source.get(field), field))
            if progress is not None:
                progress("read", len(ids), max(total, len(ids)))
            if len(hits) < PAIRS_SCAN_PAGE:
                break
            after = ids[-1]
        return ids, items

    async def _page(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=index, body=body)
        )
        hits: list[dict[str, Any]] = response.get("hits", {}).get("hits", [])
        return hits


def _has(field: str) -> dict[str, Any]:
    return {"exists": {"field": f"{field}.centre"}}


def _stored(value: object, field: str) -> Stored:
    try:
        return stored(value)
    except ValueError as exc:
        raise ConfigError(f"Field {field!r}: {exc}; rebuild the index") from exc


def _verified(
    sig: Signature,
    query_probes: Sequence[Probe],
    candidates: list[tuple[str, int, object]],
    field: str,
    limits: Limits,
) -> list[NearDuplicate]:
    """The candidates that pass the second stage, in the search's order (closest first)."""
    out = []
    for item_id, _, value in candidates:
        match = compare(sig, query_probes, _stored(value, field), limits)
        if match is not None and match.near(limits):
            out.append(NearDuplicate(item_id, match.distance))
    return out


def _limits(spec: PhashSpec, max_distance: int) -> Limits:
    return Limits(max_distance, spec.min_similarity, spec.max_colour_difference)


def phash_field(config: EngineConfig) -> tuple[str, PhashSpec]:
    """The engine's near-duplicate (``phash``) field and its settings."""
    for name, spec in config.vectors.items():
        if isinstance(spec, PhashSpec):
            return name, spec
    raise FeatureDisabled(f"Engine {config.hashid!r} has no phash vector field")
