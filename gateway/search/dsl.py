"""Neutral ``SearchRequest`` → OpenSearch ``_msearch`` header/body pairs. Pure.

Why the plan is exact on any number of shards: the ``knn`` query returns, *per shard*, the
``k`` nearest documents that pass the filters (efficient filtering inside the knn clause), and
the global top ``k`` is always among their union. Hits sorted by ``(score desc, id asc)`` and
cut at ``k`` are therefore the global pool, and ``total = min(matches, k)`` is its size.
Aggregations are not: they count the whole union, up to ``k x shards`` documents. So facets
are counted over the pool's own ids whenever the index has more than one shard.

One shard (``build_msearch``, read back by ``results.read_msearch`` in the same order):

1. The main body: a ``knn`` query on the request's vector field with ``k`` = pool size and
   the complete filter *inside* the knn clause. On one shard Lucene's knn query matches
   exactly those k documents, so ``track_total_hits`` and the aggregations run over the
   pool. It carries the aggregations of every facet whose field has no selected filter.
   - Relevance order: ``from``/``size`` select the page; ties on score break on ``id``.
   - Field sort: OpenSearch would only sort the returned hits consistently on one shard,
     so the whole pool comes back (``from`` 0, ``size`` k, vectors left out of ``_source``)
     and ``results.py`` re-orders it in Python and slices the page.
2. One more body per facet whose field has a selected filter (disjunctive faceting): the
   same knn query whose filter leaves out that field's own clause, ``size`` 0, and only
   that facet's aggregations (plus exact counts of its selected values).

Several shards, with facets counted by OpenSearch (``counts_pool_in_opensearch``): two passes.

1. ``build_msearch(..., shards=n)``: per pool (the main one, then one per disjunctive facet)
   its ``k`` best ids, best first, read from the sort values: no stored field is loaded
   (the main pool with ``_source`` when it is re-ordered in Python).
2. ``facet_msearch``: the page's documents by id (relevance order), then per pool its
   aggregations over a ``terms`` query on ``id`` listing exactly that pool.

Without facets, with one result per product (facets counted from the pool's hits in
Python) or with keywords (rankings fused in Python), one pass is exact on any number of
shards. BM25 bodies ask for ``dfs_query_then_fetch`` so term statistics are the index's,
not each shard's: their scores, hence the fused order, do not depend on the shard count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.search.distances import score_from_hash_bits
from gateway.search.model import (
    BOOKKEEPING_FIELDS,
    ID_FIELD,
    And,
    Exists,
    FacetRequest,
    FilterTree,
    Or,
    Range,
    SearchRequest,
    Terms,
)
from imgsearch.engine_config import EngineConfig, FieldType
from imgsearch.errors import MissingFields

# Aggregation names: ``f|<field>`` for the facet itself, ``s|<field>`` for selected counts.
FACET_AGG = "f|{}"
SELECTED_AGG = "s|{}"


def field_path(name: str, config: EngineConfig) -> str:
    """The indexed path to filter, sort or aggregate ``name`` on (text → its keyword)."""
    spec = config.searchable_fields().get(name)
    if spec is not None and spec.type is FieldType.TEXT:
        return f"{name}.raw"
    return name


def filter_to_dsl(tree: FilterTree, config: EngineConfig) -> dict[str, Any]:
    """One filter tree as an OpenSearch query clause (filter context)."""
    if isinstance(tree, Terms):
        return {"terms": {field_path(tree.field, config): list(tree.values)}}
    if isinstance(tree, Range):
        bounds = {
            op: value
            for op, value in (
                ("gte", tree.gte),
                ("gt", tree.gt),
                ("lte", tree.lte),
                ("lt", tree.lt),
            )
            if value is not None
        }
        return {"range": {field_path(tree.field, config): bounds}}
    if isinstance(tree, Exists):
        return {"exists": {"field": field_path(tree.field, config)}}
    if isinstance(tree, And):
        return {"bool": {"filter": [filter_to_dsl(child, config) for child in tree.children]}}
    if isinstance(tree, Or):
        return {
            "bool": {
                "should": [filter_to_dsl(child, config) for child in tree.children],
                "minimum_should_match": 1,
            }
        }
    return {"bool": {"must_not": [filter_to_dsl(tree.child, config)]}}


def knn_query(req: SearchRequest, config: EngineConfig, omit: str | None = None) -> dict[str, Any]:
    """The knn clause with the complete filter (less ``omit``'s own clause) inside it."""
    if req.vector is None:
        raise MissingFields(["image"])
    clause: dict[str, Any] = {"vector": list(req.vector), "k": req.k}
    tree = req.filter_tree(omit)
    if tree is not None:
        clause["filter"] = filter_to_dsl(tree, config)
    if config.knn.engine == "lucene" and config.knn.ef_search is not None:
        # a wider graph walk than the pool (OpenSearch >= 2.16); native libraries read theirs
        # from the index settings
        clause["method_parameters"] = {"ef_search": max(config.knn.ef_search, req.k)}
    if req.rerank is not None:
        return reranked_knn(clause, req)
    return {"knn": {req.vector_field: clause}}


def reranked_knn(clause: dict[str, Any], req: SearchRequest) -> dict[str, Any]:
    """The same knn pool re-scored ``(1 - w) * knn score + w * (1 + cos) / 2`` against the
    rerank vector (``VectorRerank``): the knn clause is boosted by ``1 - w`` and the k-NN
    plugin's exact ``knn_score`` script (``(1 + cos) / 2`` for cosine, 0 for a document
    without the field) is added with weight ``w``."""
    rerank = req.rerank
    assert rerank is not None
    if rerank.weight <= 0.0:
        return {"knn": {req.vector_field: clause}}
    if rerank.vector is None:
        raise MissingFields([rerank.vector_field])
    script = {
        "lang": "knn",
        "source": "knn_score",
        "params": {
            "field": rerank.vector_field,
            "query_value": list(rerank.vector),
            "space_type": "cosinesimil",
        },
    }
    return {
        "function_score": {
            "query": {"knn": {req.vector_field: {**clause, "boost": 1.0 - rerank.weight}}},
            "functions": [{"script_score": {"script": script}, "weight": rerank.weight}],
            "boost_mode": "sum",
        }
    }


def radius_body(
    req: SearchRequest, config: EngineConfig, *, min_score: float, size: int
) -> dict[str, Any]:
    """Every document passing the filter whose score is at least ``min_score`` (k-NN radial
    search), best first, at most ``size``."""
    if req.vector is None:
        raise MissingFields(["image"])
    clause: dict[str, Any] = {"vector": list(req.vector), "min_score": min_score}
    tree = req.filter_tree()
    if tree is not None:
        clause["filter"] = filter_to_dsl(tree, config)
    return {
        "query": {"knn": {req.vector_field: clause}},
        "size": size,
        "sort": [{"_score": {"order": "desc"}}, {ID_FIELD: {"order": "asc"}}],
        "_source": source_filter(config),
    }


def facet_aggs(facet: FacetRequest, req: SearchRequest, config: EngineConfig) -> dict[str, Any]:
    """The aggregations of one facet: top terms or stats, plus selected-value counts."""
    path = field_path(facet.field, config)
    if facet.type == "range":
        return {FACET_AGG.format(facet.field): {"stats": {"field": path}}}
    aggs: dict[str, Any] = {
        FACET_AGG.format(facet.field): {
            "terms": {
                "field": path,
                "size": facet.size,
                "order": [{"_count": "desc"}, {"_key": "asc"}],
            }
        }
    }
    selected = req.filters.get(facet.field)
    if isinstance(selected, Terms):
        aggs[SELECTED_AGG.format(facet.field)] = {
            "filters": {
                "filters": {
                    str(i): {"term": {path: value}} for i, value in enumerate(selected.values)
                }
            }
        }
    return aggs


def _boost(req: SearchRequest) -> tuple[str, ...]:
    return (req.terms_boost.field,) if req.terms_boost is not None else ()


def _collapse(req: SearchRequest) -> tuple[str, ...]:
    return (req.collapse,) if req.collapse is not None else ()


def source_filter(config: EngineConfig) -> dict[str, Any]:
    """``_source`` of hits: catalog fields only (no vectors, no bookkeeping)."""
    return {"excludes": sorted({*config.vectors, *BOOKKEEPING_FIELDS})}


def main_body(req: SearchRequest, config: EngineConfig) -> dict[str, Any]:
    """Body 1: the page (or the whole pool when sorting by field) plus plain facets."""
    sorting = req.reorders_pool
    body: dict[str, Any] = {
        "query": knn_query(req, config),
        "from": 0 if sorting else req.offset,
        "size": req.k if sorting else req.rpp,
        "sort": [{"_score": {"order": "desc"}}, {ID_FIELD: {"order": "asc"}}],
        "track_total_hits": True,
        "_source": source_filter(config),
    }
    if req.collapse is not None:
        return body  # facets are counted per product from the pool itself (results.py)
    disjunctive = {facet.field for facet in req.disjunctive_facets()}
    aggs: dict[str, Any] = {}
    for facet in req.facets:
        if facet.field not in disjunctive:
            aggs.update(facet_aggs(facet, req, config))
    if aggs:
        body["aggs"] = aggs
    return body


def disjunctive_body(
    facet: FacetRequest, req: SearchRequest, config: EngineConfig
) -> dict[str, Any]:
    """A facet counted with every filter except its own."""
    if req.collapse is not None:  # its pool comes back, to be counted per product
        return {
            "query": knn_query(req, config, omit=facet.field),
            "size": req.k,
            "sort": [{"_score": {"order": "desc"}}, {ID_FIELD: {"order": "asc"}}],
            "track_total_hits": False,
            "_source": {"includes": sorted({ID_FIELD, facet.field, *_collapse(req), *_boost(req)})},
        }
    return {
        "query": knn_query(req, config, omit=facet.field),
        "size": 0,
        "track_total_hits": False,
        "aggs": facet_aggs(facet, req, config),
    }


def lexical_fields(config: EngineConfig) -> list[str]:
    """The fields words are matched in: the engine's text and keyword fields."""
    kinds = (FieldType.TEXT, FieldType.KEYWORD)
    return sorted(name for name, spec in config.fields.items() if spec.type in kinds)


def lexical_query(
    req: SearchRequest, config: EngineConfig, omit: str | None = None
) -> dict[str, Any]:
    """BM25 over the text fields, with the complete filter (less ``omit``'s own clause).

    Blank words (or an engine without text fields) match every document: browsing.
    """
    words = (req.keywords or "").strip()
    fields = lexical_fields(config)
    match: dict[str, Any] = (
        {"multi_match": {"query": words, "fields": fields, "lenient": True}}
        if words and fields
        else {"match_all": {}}
    )
    tree = req.filter_tree(omit)
    filters = [filter_to_dsl(tree, config)] if tree is not None else []
    return {"bool": {"must": [match], "filter": filters}}


def _pool_body(query: dict[str, Any], req: SearchRequest, source: Any) -> dict[str, Any]:
    return {
        "query": query,
        "size": req.k,
        "sort": [{"_score": {"order": "desc"}}, {ID_FIELD: {"order": "asc"}}],
        "track_total_hits": False,
        "_source": source,
    }


def ranked_lines(req: SearchRequest, config: EngineConfig, index: str) -> list[dict[str, Any]]:
    """With ``keywords``: per pool (the main one, then one per disjunctive facet) the k-NN
    ranking (when there is a vector) and the BM25 ranking, each the top ``k``, to be fused
    and counted in ``results.py``. BM25 bodies use the index's term statistics (DFS)."""
    lines: list[dict[str, Any]] = []
    for facet in (None, *req.disjunctive_facets()):
        omit = facet.field if facet is not None else None
        source: Any = source_filter(config)
        if facet is not None:
            source = {"includes": sorted({ID_FIELD, facet.field, *_boost(req), *_collapse(req)})}
        if req.vector is not None:
            lines += [_header(index, req), _pool_body(knn_query(req, config, omit), req, source)]
        if lexical_fields(config) or req.vector is None:
            header = _header(index, req, search_type="dfs_query_then_fetch")
            lines += [header, _pool_body(lexical_query(req, config, omit), req, source)]
    return lines


def rankings_per_pool(req: SearchRequest, config: EngineConfig) -> int:
    """How many bodies ``ranked_lines`` writes for each pool (1 or 2)."""
    return int(req.vector is not None) + int(bool(lexical_fields(config)) or req.vector is None)


def counts_pool_in_opensearch(req: SearchRequest) -> bool:
    """Facets are counted by OpenSearch aggregations (not from the pool's hits in Python)."""
    return bool(req.facets) and req.collapse is None and req.keywords is None


def _header(index: str, req: SearchRequest, **extra: str) -> dict[str, Any]:
    """One ``_msearch`` header; a ``cacheable`` request asks for the shard request cache
    (it is only used for ``size`` 0 unless asked), which OpenSearch empties on refresh."""
    header: dict[str, Any] = {"index": index, **extra}
    if req.cacheable:
        header["request_cache"] = True
    if req.preference is not None:
        header["preference"] = req.preference
    return header


def _lines(
    index: str, req: SearchRequest, bodies: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for body in bodies:
        lines.append(_header(index, req))
        lines.append(body)
    return lines


def build_msearch(
    req: SearchRequest, config: EngineConfig, index: str, *, shards: int = 1
) -> list[dict[str, Any]]:
    """Header/body pairs for ``_msearch``: the main body, then one per disjunctive facet
    (with ``keywords``: the rankings of ``ranked_lines``; on ``shards`` > 1 with facets
    counted by OpenSearch: the first pass, ``pool_bodies``)."""
    if req.keywords is not None:
        return ranked_lines(req, config, index)
    if shards > 1 and counts_pool_in_opensearch(req):
        return _lines(index, req, pool_bodies(req, config))
    bodies = [main_body(req, config)]
    bodies.extend(disjunctive_body(facet, req, config) for facet in req.disjunctive_facets())
    return _lines(index, req, bodies)


def pool_bodies(req: SearchRequest, config: EngineConfig) -> list[dict[str, Any]]:
    """First pass on several shards: per pool (main, then each disjunctive facet) its ``k``
    best documents, best first; only ids and scores, except a main pool re-ordered in
    Python, which needs its fields."""
    pools: list[dict[str, Any]] = []
    for facet in (None, *req.disjunctive_facets()):
        omit = facet.field if facet is not None else None
        if facet is None and req.reorders_pool:
            pools.append(_pool_body(knn_query(req, config, omit), req, source_filter(config)))
            continue
        body = _pool_body(knn_query(req, config, omit), req, False)
        del body["_source"]
        # No stored field is read (not even ``_id``, stored beside the vectors): each hit's
        # id comes back in its sort values, from doc values.
        body["stored_fields"] = "_none_"
        pools.append(body)
    return pools


def facet_msearch(
    req: SearchRequest,
    config: EngineConfig,
    index: str,
    pools: Sequence[Sequence[str]],
    page_ids: Sequence[str],
) -> list[dict[str, Any]]:
    """Second pass on several shards: the page's documents by id (none when the first pass
    brought them), then per pool of ``pools`` (ids, in ``pool_bodies`` order) its facets
    counted over exactly those documents."""
    disjunctive = req.disjunctive_facets()
    if len(pools) != 1 + len(disjunctive):
        raise ValueError(f"expected {1 + len(disjunctive)} pools, got {len(pools)}")
    page = {
        "query": {"terms": {ID_FIELD: list(page_ids)}},
        "size": len(page_ids),
        "track_total_hits": False,
        "_source": source_filter(config),
    }
    own = {facet.field for facet in disjunctive}
    plain: dict[str, Any] = {}
    for facet in req.facets:
        if facet.field not in own:
            plain.update(facet_aggs(facet, req, config))
    aggs = [plain, *(facet_aggs(facet, req, config) for facet in disjunctive)]
    bodies = [page]
    for ids, pool_aggs in zip(pools, aggs, strict=True):
        body: dict[str, Any] = {
            "query": {"terms": {ID_FIELD: list(ids)}},
            "size": 0,
            "track_total_hits": False,
        }
        if pool_aggs:
            body["aggs"] = pool_aggs
        bodies.append(body)
    return _lines(index, req, bodies)


def item_lookup_body(field: str, value: str) -> dict[str, Any]:
    """Search body fetching one stored item with its vectors (for "more like this")."""
    return {"query": {"term": {field: value}}, "size": 1}


# The fewest bits between a stored hash (centre, whole) and any probe, scored ``64 - bits``.
NEAR_DUPLICATES_SCRIPT = (
    "long c = doc[params.centre].value; long w = doc[params.whole].value; int best = 64; "
    "for (def p : params.probes) { long v = (long) p; "
    "best = (int) Math.min(best, Math.min(Long.bitCount(c ^ v), Long.bitCount(w ^ v))); } "
    "return 64 - best;"
)


def near_duplicates_body(
    field: str,
    probes: Sequence[int],
    *,
    size: int,
    max_distance: int,
    tree: FilterTree | None = None,
    config: EngineConfig | None = None,
) -> dict[str, Any]:
    """Items with a stored hash (``<field>.centre``/``.whole``) within ``max_distance`` of a probe.

    Exact: a painless script compares every probe (the query's crops, see
    ``imgsearch.dupes.hashes``) with every item passing ``tree`` (with its ``config``);
    ``score_from_hash_bits`` turns the bound into ``min_score``. The stored signature comes
    back in ``_source`` for the second stage.
    """
    hashed = {"centre": f"{field}.centre", "whole": f"{field}.whole"}
    candidates: dict[str, Any] = {"exists": {"field": hashed["centre"]}}
    if tree is not None:
        if config is None:
            raise ValueError("a filter tree needs the engine config")
        candidates = {"bool": {"filter": [candidates, filter_to_dsl(tree, config)]}}
    script = {"source": NEAR_DUPLICATES_SCRIPT, "params": {**hashed, "probes": list(probes)}}
    return {
        "size": size,
        "_source": {"includes": [ID_FIELD, field]},
        "query": {"script_score": {"query": candidates, "script": script}},
        "min_score": score_from_hash_bits(max_distance),
        "sort": [{"_score": {"order": "desc"}}, {ID_FIELD: {"order": "asc"}}],
    }
