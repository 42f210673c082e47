"""OpenSearch ``_msearch`` responses → neutral ``SearchResult``. Pure.

Reads the bodies in the order ``dsl.build_msearch`` wrote them. For a field sort the main
body returned the whole pool; it is re-ordered here (sort keys in turn, documents missing
a key last whatever the order, then similarity, then id) and the page sliced out. On several
shards (see ``dsl``'s docstring) ``read_pools`` reads the first pass and
``read_facet_pass`` the second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gateway.search.distances import hash_bits_from_score
from gateway.search.dsl import FACET_AGG, SELECTED_AGG, rankings_per_pool
from gateway.search.fusion import reciprocal_rank_fusion
from gateway.search.model import (
    ID_FIELD,
    FacetRequest,
    FacetResult,
    Hit,
    Range,
    RangeFacetResult,
    Scalar,
    SearchRequest,
    SearchResult,
    SortKey,
    TermCount,
    Terms,
    TermsBoost,
    TermsFacetResult,
)
from imgsearch.engine_config import EngineConfig, FieldType
from imgsearch.errors import BackendUnavailable


def _check(response: dict[str, Any]) -> None:
    error = response.get("error")
    if error is not None:
        if isinstance(error, dict):
            reason = f"{error.get('type', 'error')}: {error.get('reason', '')}".rstrip(": ")
        else:
            reason = str(error)
        raise BackendUnavailable(f"search backend error: {reason}")


def _hit(raw: dict[str, Any]) -> Hit:
    # The parsed response is ours alone and nothing mutates a hit's source: no copy.
    source: dict[str, object] = raw.get("_source") or {}
    ident = source.get(ID_FIELD)
    if ident is None:
        ident = raw.get("_id")
    score = raw.get("_score")
    return Hit(str(ident), float(score) if score is not None else 0.0, source)


def _sort_value(value: object, kind: FieldType | None) -> float | str | None:
    """A comparable value for one document field; ``None`` when missing or unusable."""
    if value is None or isinstance(value, dict):
        return None
    if kind is FieldType.NUMBER or kind is FieldType.BOOLEAN:
        if isinstance(value, bool):
            return float(value)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and kind is FieldType.BOOLEAN:
            return {"true": 1.0, "false": 0.0}.get(value.lower())
        try:
            return float(str(value))
        except ValueError:
            return None
    return str(value)


def _field_value(hit: Hit, key: SortKey, kind: FieldType | None) -> float | str | None:
    """Multi-valued fields sort on their min (asc) or max (desc), like OpenSearch."""
    raw = hit.source.get(key.field)
    values = raw if isinstance(raw, list) else [raw]
    usable = [v for v in (_sort_value(item, kind) for item in values) if v is not None]
    if not usable:
        return None
    if all(isinstance(v, float) for v in usable) or all(isinstance(v, str) for v in usable):
        return min(usable) if key.order == "asc" else max(usable)
    return None


def sort_pool(hits: Sequence[Hit], sort: Sequence[SortKey], config: EngineConfig) -> list[Hit]:
    """Order hits by the sort keys, missing values last; then score desc, then id asc."""
    fields = config.searchable_fields()
    ordered = sorted(hits, key=lambda hit: (-hit.score, hit.id))
    # Stable sorts from the least significant key to the most significant.
    for key in reversed(sort):
        spec = fields.get(key.field)
        kind = spec.type if spec is not None else None
        present = [(hit, _field_value(hit, key, kind)) for hit in ordered]
        with_value = [pair for pair in present if pair[1] is not None]
        missing = [hit for hit, value in present if value is None]
        with_value.sort(key=lambda pair: pair[1], reverse=key.order == "desc")  # type: ignore[arg-type,return-value]
        ordered = [hit for hit, _ in with_value] + missing
    return ordered


def _bucket_value(bucket: dict[str, Any], kind: FieldType | None) -> Scalar:
    if kind is FieldType.BOOLEAN:
        text = str(bucket.get("key_as_string", bucket.get("key")))
        return text.lower() in ("true", "1")
    key = bucket.get("key")
    if kind is FieldType.NUMBER and isinstance(key, int | float):
        return float(key)
    if isinstance(key, str):
        return key
    return str(bucket.get("key_as_string", key))


def _terms_facet(
    facet: FacetRequest, aggs: dict[str, Any], req: SearchRequest, kind: FieldType | None
) -> TermsFacetResult:
    buckets = aggs.get(FACET_AGG.format(facet.field), {}).get("buckets", [])
    items = [TermCount(_bucket_value(b, kind), int(b.get("doc_count", 0))) for b in buckets]
    selected: list[TermCount] = []
    clause = req.filters.get(facet.field)
    if isinstance(clause, Terms):
        counts = aggs.get(SELECTED_AGG.format(facet.field), {}).get("buckets", {})
        for i, value in enumerate(clause.values):
            count = int(counts.get(str(i), {}).get("doc_count", 0))
            selected.append(TermCount(value, count))
        listed = {item.value for item in items}
        items.extend(item for item in selected if item.value not in listed)
    return TermsFacetResult(field=facet.field, items=tuple(items), selected=tuple(selected))


def _range_facet(facet: FacetRequest, aggs: dict[str, Any], req: SearchRequest) -> RangeFacetResult:
    stats = aggs.get(FACET_AGG.format(facet.field), {})
    low, high = stats.get("min"), stats.get("max")
    clause = req.filters.get(facet.field)
    start = end = None
    if isinstance(clause, Range):
        start = clause.gte if clause.gte is not None else clause.gt
        end = clause.lte if clause.lte is not None else clause.lt
    return RangeFacetResult(
        field=facet.field,
        min=float(low) if low is not None else None,
        max=float(high) if high is not None else None,
        selected_from=start,
        selected_to=end,
    )


def read_msearch(
    responses: Sequence[dict[str, Any]], req: SearchRequest, config: EngineConfig
) -> SearchResult:
    """Merge the ``_msearch`` ``responses`` items (same order as the bodies) into a result."""
    if req.keywords is not None:
        return _read_ranked(responses, req, config)
    disjunctive = req.disjunctive_facets()
    if len(responses) != 1 + len(disjunctive):
        raise BackendUnavailable(
            f"search backend answered {len(responses)} responses, expected {1 + len(disjunctive)}"
        )
    for response in responses:
        _check(response)
    main = responses[0]
    hits_part = main.get("hits", {})
    total_raw = hits_part.get("total", 0)
    total = int(total_raw.get("value", 0) if isinstance(total_raw, dict) else total_raw)
    hits = [_hit(raw) for raw in hits_part.get("hits", [])]
    if req.reorders_pool:
        pool = _pool(hits, req)
        hits = sort_pool(pool, req.sort, config)[req.offset : req.offset + req.rpp]
        if req.collapse is not None:
            pools = {
                facet.field: _pool([_hit(raw) for raw in r.get("hits", {}).get("hits", [])], req)
                for facet, r in zip(disjunctive, responses[1:], strict=True)
            }
            counted = tuple(
                _product_facet(facet, pools.get(facet.field, pool), req, config)
                for facet in req.facets
            )
            return SearchResult(total=len(pool), hits=tuple(hits), facets=counted)

    aggs_by_field = {
        facet.field: response.get("aggregations", {})
        for facet, response in zip(disjunctive, responses[1:], strict=True)
    }
    facets = _facets(req, config, main.get("aggregations", {}), aggs_by_field)
    return SearchResult(total=min(total, req.k), hits=tuple(hits), facets=facets)


def _facets(
    req: SearchRequest,
    config: EngineConfig,
    main_aggs: dict[str, Any],
    aggs_by_field: dict[str, dict[str, Any]],
) -> tuple[FacetResult, ...]:
    """Every requested facet from its aggregations (its own body's when disjunctive)."""
    fields = config.searchable_fields()
    facets: list[FacetResult] = []
    for facet in req.facets:
        aggs = aggs_by_field.get(facet.field, main_aggs)
        spec = fields.get(facet.field)
        if facet.type == "range":
            facets.append(_range_facet(facet, aggs, req))
        else:
            facets.append(_terms_facet(facet, aggs, req, spec.type if spec else None))
    return tuple(facets)


def shards_searched(responses: Sequence[dict[str, Any]]) -> int:
    """The most shards any of the ``_msearch`` responses ran on (1 when none says)."""
    return max((int(r.get("_shards", {}).get("total", 1)) for r in responses), default=1)


@dataclass(frozen=True)
class PoolPass:
    """The first pass on several shards: per pool (main, then each disjunctive facet) the
    ids of its ``k`` best documents, best first; the main pool's hits beside them."""

    ids: tuple[tuple[str, ...], ...]
    main: tuple[Hit, ...]

    def page_ids(self, req: SearchRequest) -> tuple[str, ...]:
        """The ids of the page to fetch; none when the main pool came with its fields."""
        if req.reorders_pool:
            return ()
        return self.ids[0][req.offset : req.offset + req.rpp]


def read_pools(responses: Sequence[dict[str, Any]], req: SearchRequest) -> PoolPass:
    """``dsl.pool_bodies`` responses → each pool's ids (at most ``k``, best first)."""
    if len(responses) != 1 + len(req.disjunctive_facets()):
        raise BackendUnavailable(f"search backend answered {len(responses)} responses")
    for response in responses:
        _check(response)
    pools = [
        tuple(_pool_hit(raw) for raw in r.get("hits", {}).get("hits", [])[: req.k])
        for r in responses
    ]
    return PoolPass(ids=tuple(tuple(h.id for h in pool) for pool in pools), main=pools[0])


def _pool_hit(raw: dict[str, Any]) -> Hit:
    """A hit with no stored fields carries its id as its last sort value."""
    if "_source" in raw or not raw.get("sort"):
        return _hit(raw)
    return _hit({**raw, "_source": {ID_FIELD: raw["sort"][-1]}})


def read_facet_pass(
    responses: Sequence[dict[str, Any]], req: SearchRequest, config: EngineConfig, first: PoolPass
) -> SearchResult:
    """``dsl.facet_msearch`` responses (the page's documents, then per pool its aggregations)
    with the first pass → the result. A page document deleted between the passes is left out.
    """
    disjunctive = req.disjunctive_facets()
    if len(responses) != 2 + len(disjunctive):
        raise BackendUnavailable(f"search backend answered {len(responses)} responses")
    for response in responses:
        _check(response)
    if req.reorders_pool:
        hits = sort_pool(_pool(first.main, req), req.sort, config)[
            req.offset : req.offset + req.rpp
        ]
    else:
        fetched = {h.id: h for h in map(_hit, responses[0].get("hits", {}).get("hits", []))}
        scored = dict(zip(first.ids[0], first.main, strict=True))
        hits = [
            replace(fetched[i], score=scored[i].score) for i in first.page_ids(req) if i in fetched
        ]
    aggs_by_field = {
        facet.field: response.get("aggregations", {})
        for facet, response in zip(disjunctive, responses[2:], strict=True)
    }
    facets = _facets(req, config, responses[1].get("aggregations", {}), aggs_by_field)
    return SearchResult(total=len(first.ids[0]), hits=tuple(hits), facets=facets)


def _read_ranked(
    responses: Sequence[dict[str, Any]], req: SearchRequest, config: EngineConfig
) -> SearchResult:
    """``ranked_lines`` responses: fuse each pool's rankings, then page and count."""
    per_pool = rankings_per_pool(req, config)
    disjunctive = req.disjunctive_facets()
    if len(responses) != per_pool * (1 + len(disjunctive)):
        raise BackendUnavailable(f"search backend answered {len(responses)} responses")
    for response in responses:
        _check(response)
    pools: list[list[Hit]] = []
    for start in range(0, len(responses), per_pool):
        rankings = [
            [_hit(raw) for raw in r.get("hits", {}).get("hits", [])]
            for r in responses[start : start + per_pool]
        ]
        fused = reciprocal_rank_fusion(rankings)[: req.k]
        pools.append(_pool(fused, req, ordered=True))
    main = pools[0]
    hits = sort_pool(main, req.sort, config)[req.offset : req.offset + req.rpp]
    own = {facet.field: pool for facet, pool in zip(disjunctive, pools[1:], strict=True)}
    facets = tuple(
        _product_facet(facet, own.get(facet.field, main), req, config) for facet in req.facets
    )
    return SearchResult(total=len(main), hits=tuple(hits), facets=facets)


def _pool(hits: Sequence[Hit], req: SearchRequest, ordered: bool = False) -> list[Hit]:
    """The request's pool, best first: the top ``k``, boosted, one hit per product.

    ``ordered`` hits are already ranked (fused), so their order is kept as it is.
    """
    pool = list(hits[: req.k]) if ordered else sorted(hits, key=lambda h: (-h.score, h.id))[: req.k]
    if req.terms_boost is not None:
        pool = boost_by_terms(pool, req.terms_boost)
    if req.collapse is not None:
        pool = collapse_hits(pool, req.collapse)
    return pool


def collapse_hits(hits: Sequence[Hit], field: str) -> list[Hit]:
    """The first (best) hit per value of ``field``; a hit without one is its own product."""
    seen: set[str] = set()
    kept: list[Hit] = []
    for hit in hits:
        value = hit.source.get(field)
        if isinstance(value, list):
            value = value[0] if value else None
        key = f"v:{value}" if value is not None else f"id:{hit.id}"
        if key not in seen:
            seen.add(key)
            kept.append(hit)
    return kept


def _scalar(value: object, kind: FieldType | None) -> Scalar | None:
    if value is None or isinstance(value, dict | list):
        return None
    if kind is FieldType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    if kind is FieldType.NUMBER:
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None
    return str(value)


def _values_of(hit: Hit, field: str, kind: FieldType | None) -> set[Scalar]:
    raw = hit.source.get(field)
    items = raw if isinstance(raw, list) else [raw]
    return {v for v in (_scalar(item, kind) for item in items) if v is not None}


def _product_facet(
    facet: FacetRequest, pool: Sequence[Hit], req: SearchRequest, config: EngineConfig
) -> FacetResult:
    """A facet counted over a collapsed pool: each hit is one product."""
    spec = config.searchable_fields().get(facet.field)
    kind = spec.type if spec is not None else None
    if facet.type == "range":
        numbers = [
            v
            for hit in pool
            for v in _values_of(hit, facet.field, FieldType.NUMBER)
            if isinstance(v, float)
        ]
        stats = {"min": min(numbers), "max": max(numbers)} if numbers else {}
        return _range_facet(facet, {FACET_AGG.format(facet.field): stats}, req)
    counts: dict[Scalar, int] = {}
    for hit in pool:
        for value in _values_of(hit, facet.field, kind):
            counts[value] = counts.get(value, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[: facet.size]
    items = [TermCount(value, count) for value, count in ranked]
    selected: list[TermCount] = []
    clause = req.filters.get(facet.field)
    if isinstance(clause, Terms):
        for value in clause.values:
            typed = _scalar(value, kind)
            selected.append(TermCount(value, counts.get(typed, 0) if typed is not None else 0))
        listed = {item.value for item in items}
        items.extend(item for item in selected if item.value not in listed)
    return TermsFacetResult(field=facet.field, items=tuple(items), selected=tuple(selected))


def read_hits(response: dict[str, Any]) -> SearchResult:
    """A plain search response (no pool, no facets) → its hits in order; total = their count."""
    _check(response)
    hits = tuple(_hit(raw) for raw in response.get("hits", {}).get("hits", []))
    return SearchResult(total=len(hits), hits=hits)


def jaccard(values: Sequence[object], other: object) -> float:
    mine = {str(v) for v in values}
    theirs = {str(v) for v in (other if isinstance(other, list) else [other]) if v is not None}
    union = mine | theirs
    return len(mine & theirs) / len(union) if union else 0.0


def boost_by_terms(hits: Sequence[Hit], boost: TermsBoost) -> list[Hit]:
    """Hits re-scored by ``TermsBoost``, best first (ties: id)."""
    rescored = [
        replace(
            hit,
            score=(1 - boost.weight) * hit.score
            + boost.weight * jaccard(boost.values, hit.source.get(boost.field)),
        )
        for hit in hits
    ]
    return sorted(rescored, key=lambda hit: (-hit.score, hit.id))


def read_near_duplicate_candidates(
    response: dict[str, Any], field: str
) -> list[tuple[str, int, object]]:
    """A ``near_duplicates_body`` response → (id, bits, stored signature) per candidate."""
    _check(response)
    out = []
    for hit in response.get("hits", {}).get("hits", []):
        source = hit.get("_source", {})
        item_id = str(source.get(ID_FIELD, hit["_id"]))
        out.append((item_id, hash_bits_from_score(hit["_score"]), source.get(field)))
    return out
