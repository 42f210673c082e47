"""Neutral request → _msearch bodies: which clauses and aggregations each body has."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gateway.search.distances import hash_bits_from_score
from gateway.search.dsl import (
    NEAR_DUPLICATES_SCRIPT,
    build_msearch,
    facet_msearch,
    filter_to_dsl,
    near_duplicates_body,
)
from gateway.search.model import (
    And,
    Exists,
    FacetRequest,
    FilterTree,
    Not,
    Or,
    Range,
    SearchRequest,
    SortKey,
    Terms,
)
from gateway.search.results import read_near_duplicate_candidates
from imgsearch.engine_config import KnnMethod
from imgsearch.errors import BackendUnavailable, MissingFields
from tests.unit.search_config import CONFIG

# Hits carry catalog fields only: no vectors, no bookkeeping.
EXCLUDED = {"excludes": ["clip", "color", "content_hash", "id_md5", "indexed_at"]}
BRAND = Terms("brand", ("nike",))
PRICE = Range("price", gte=10.0)


def request(**kwargs: Any) -> SearchRequest:
    base: dict[str, Any] = {"engine": "abc123", "vector_field": "clip", "k": 50, "vector": [1.0]}
    return SearchRequest(**{**base, **kwargs})


DSL_CASES: list[tuple[FilterTree, dict[str, Any], str]] = [
    (BRAND, {"terms": {"brand": ["nike"]}}, "terms"),
    (Terms("title", ("A",)), {"terms": {"title.raw": ["A"]}}, "text → keyword sub-field"),
    (Range("price", gt=1.0, lt=2.0), {"range": {"price": {"gt": 1.0, "lt": 2.0}}}, "range"),
    (
        And((BRAND, PRICE)),
        {"bool": {"filter": [{"terms": {"brand": ["nike"]}}, {"range": {"price": {"gte": 10.0}}}]}},
        "and",
    ),
    (
        Or((BRAND, PRICE)),
        {
            "bool": {
                "should": [{"terms": {"brand": ["nike"]}}, {"range": {"price": {"gte": 10.0}}}],
                "minimum_should_match": 1,
            }
        },
        "or",
    ),
    (Not(BRAND), {"bool": {"must_not": [{"terms": {"brand": ["nike"]}}]}}, "not"),
    (Exists("price"), {"exists": {"field": "price"}}, "exists"),
    (Exists("title"), {"exists": {"field": "title.raw"}}, "exists on text → keyword sub-field"),
]


@pytest.mark.parametrize(("tree", "expected", "why"), DSL_CASES)
def test_filter_to_dsl(tree: FilterTree, expected: dict[str, Any], why: str) -> None:
    assert filter_to_dsl(tree, CONFIG) == expected, why


TREE_CASES: list[tuple[dict[str, Any], str | None, FilterTree | None, str]] = [
    ({}, None, None, "no filter at all"),
    ({"filters": {"brand": BRAND}}, None, BRAND, "one clause stands alone"),
    ({"filters": {"brand": BRAND, "price": PRICE}}, None, And((BRAND, PRICE)), "and"),
    (
        {"filters": {"brand": BRAND, "price": PRICE}, "filter_execution": "or"},
        None,
        Or((BRAND, PRICE)),
        "or",
    ),
    ({"filters": {"brand": BRAND, "price": PRICE}}, "brand", PRICE, "omit own clause"),
    ({"filters": {"brand": BRAND}}, "brand", None, "omit the only clause"),
    (
        {"filters": {"brand": BRAND}, "excludes": (PRICE,), "exclude_ids": ("7",)},
        "brand",
        And((Not(PRICE), Not(Terms("id", ("7",))))),
        "excludes and ids are never omitted",
    ),
]


@pytest.mark.parametrize(("kwargs", "omit", "expected", "why"), TREE_CASES)
def test_filter_tree(
    kwargs: dict[str, Any], omit: str | None, expected: FilterTree | None, why: str
) -> None:
    assert request(**kwargs).filter_tree(omit) == expected, why


def _knn(body: dict[str, Any]) -> dict[str, Any]:
    clause: dict[str, Any] = body["query"]["knn"]["clip"]
    return clause


def test_plain_page() -> None:
    lines = build_msearch(request(page=3, rpp=10), CONFIG, "shop")
    assert lines[0] == {"index": "shop"}
    body = lines[1]
    assert len(lines) == 2
    assert (body["from"], body["size"]) == (20, 10)
    assert _knn(body) == {"vector": [1.0], "k": 50}
    assert body["track_total_hits"] is True
    assert body["_source"] == EXCLUDED
    assert body["sort"] == [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
    assert "aggs" not in body


@pytest.mark.parametrize(
    ("knn", "expected"),
    [
        ({}, None),
        ({"ef_search": 400}, {"ef_search": 400}),
        ({"ef_search": 20}, {"ef_search": 50}),  # never narrower than the pool (k 50)
        ({"engine": "faiss", "ef_search": 400}, None),  # an index setting there
    ],
)
def test_lucene_ef_search_travels_with_every_knn_clause(
    knn: dict[str, Any], expected: dict[str, int] | None
) -> None:
    config = CONFIG.model_copy(update={"knn": KnnMethod.model_validate(knn)})
    req = request(facets=(FacetRequest("brand", 5, "terms"),), filters={"brand": BRAND})
    lines = build_msearch(req, config, "shop")
    bodies = [line for line in lines if "query" in line]
    assert len(bodies) == 2  # the page and the disjunctive brand facet
    for body in bodies:
        assert _knn(body).get("method_parameters") == expected


@pytest.mark.parametrize("keywords", [None, "red dress"])
@pytest.mark.parametrize(("cacheable", "preference"), [(False, None), (True, "session:abc")])
def test_every_header_of_a_search_carries_its_cache_and_shard_copy_choice(
    cacheable: bool, preference: str | None, keywords: str | None
) -> None:
    """The request cache when asked; one ``preference`` for every body and pass, so they all
    read the same copy of each shard (copies build their own HNSW graphs)."""
    req = request(
        cacheable=cacheable,
        preference=preference,
        keywords=keywords,
        facets=(FacetRequest("brand", 5, "terms"),),
        filters={"brand": BRAND},
    )
    # The page's pool and the disjunctive brand facet's pool (brand is filtered and faceted).
    second_pass = facet_msearch(req, CONFIG, "shop", [("a", "b"), ("a",)], ("a",))
    for lines in (*(build_msearch(req, CONFIG, "shop", shards=n) for n in (1, 3)), second_pass):
        headers = [line for line in lines if "index" in line]
        assert len(headers) == len(lines) // 2 >= 2
        assert all(h.get("request_cache", False) is cacheable for h in headers), headers
        assert all(h.get("preference") == preference for h in headers), headers


def test_field_sort_fetches_whole_pool() -> None:
    body = build_msearch(request(page=2, rpp=10, sort=(SortKey("price"),)), CONFIG, "s")[1]
    assert (body["from"], body["size"]) == (0, 50)


def test_disjunctive_facets() -> None:
    req = request(
        filters={"brand": BRAND, "price": PRICE},
        excludes=(Terms("size", ("XL",)),),
        exclude_ids=("9",),
        facets=(
            FacetRequest("brand", 5, "terms"),
            FacetRequest("size", 7, "terms"),
            FacetRequest("price", 20, "range"),
        ),
    )
    lines = build_msearch(req, CONFIG, "shop")
    assert len(lines) == 6, "main body + one per facet with a selected filter (brand, price)"
    main, brand, price = lines[1], lines[3], lines[5]
    excl = [{"bool": {"must_not": [{"terms": {"size": ["XL"]}}]}}]
    ids = [{"bool": {"must_not": [{"terms": {"id": ["9"]}}]}}]
    both = {
        "bool": {"filter": [{"terms": {"brand": ["nike"]}}, {"range": {"price": {"gte": 10.0}}}]}
    }
    assert _knn(main)["filter"] == {"bool": {"filter": [both, *excl, *ids]}}
    assert set(main["aggs"]) == {"f|size"}, "size has no selected filter: counted in main"
    assert main["aggs"]["f|size"]["terms"]["size"] == 7
    assert _knn(brand)["filter"] == {
        "bool": {"filter": [{"range": {"price": {"gte": 10.0}}}, *excl, *ids]}
    }, "brand's own clause dropped, everything else kept"
    assert brand["size"] == 0
    assert set(brand["aggs"]) == {"f|brand", "s|brand"}
    assert brand["aggs"]["s|brand"] == {"filters": {"filters": {"0": {"term": {"brand": "nike"}}}}}
    assert _knn(price)["filter"] == {
        "bool": {"filter": [{"terms": {"brand": ["nike"]}}, *excl, *ids]}
    }
    assert price["aggs"] == {"f|price": {"stats": {"field": "price"}}}
    assert all(_knn(b)["k"] == 50 for b in (main, brand, price))


def test_selected_filter_without_facet_adds_no_body() -> None:
    lines = build_msearch(request(filters={"brand": BRAND}), CONFIG, "shop")
    assert len(lines) == 2


def test_vector_required() -> None:
    with pytest.raises(MissingFields, match="image"):
        build_msearch(request(vector=None), CONFIG, "shop")


@pytest.mark.parametrize("max_distance", [0, 6, 8])
def test_near_duplicates_body(max_distance: int) -> None:
    body = near_duplicates_body("phash", [-42, 7], size=5, max_distance=max_distance)
    script = body["query"]["script_score"]["script"]
    assert script["source"] == NEAR_DUPLICATES_SCRIPT and "lang" not in script  # painless
    assert script["params"] == {
        "centre": "phash.centre",
        "whole": "phash.whole",
        "probes": [-42, 7],
    }
    assert body["query"]["script_score"]["query"] == {"exists": {"field": "phash.centre"}}
    assert body["size"] == 5 and body["_source"] == {"includes": ["id", "phash"]}
    # min_score keeps exactly the items within max_distance bits, float32 scores or not
    for bits in range(65):
        score = float(np.float32(64 - bits))
        assert (score >= body["min_score"]) == (bits <= max_distance)
        assert hash_bits_from_score(score) == bits


def test_read_near_duplicate_candidates() -> None:
    response = {
        "hits": {
            "hits": [
                {"_id": "x", "_score": 64.0, "_source": {"id": "sku-1", "phash": {"centre": 1}}},
                {"_id": "y", "_score": float(np.float32(60)), "_source": {}},
            ]
        }
    }
    found = read_near_duplicate_candidates(response, "phash")
    assert found == [("sku-1", 0, {"centre": 1}), ("y", 4, None)]
    with pytest.raises(BackendUnavailable):
        read_near_duplicate_candidates({"error": {"type": "x", "reason": "broken"}}, "phash")


def _facet_request(**kwargs: Any) -> SearchRequest:
    return request(
        filters={"brand": BRAND},
        facets=(FacetRequest("brand", 5, "terms"), FacetRequest("price", 20, "range")),
        **kwargs,
    )


def test_several_shards_first_pass_reads_each_pools_ids() -> None:
    lines = build_msearch(_facet_request(page=2, rpp=10), CONFIG, "shop", shards=3)
    assert len(lines) == 4, "the main pool, then brand's own (disjunctive) pool"
    main, brand = lines[1], lines[3]
    for body in (main, brand):
        assert (body["size"], body["stored_fields"], "aggs" in body) == (50, "_none_", False)
        assert body["sort"] == [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}]
    assert _knn(main)["filter"] == {"terms": {"brand": ["nike"]}}
    assert "filter" not in _knn(brand)
    sorted_lines = build_msearch(_facet_request(sort=(SortKey("price"),)), CONFIG, "s", shards=3)
    assert sorted_lines[1]["_source"] == EXCLUDED, "sorted in Python"


def test_one_pass_wherever_python_counts_or_there_are_no_facets() -> None:
    plain = build_msearch(request(), CONFIG, "shop", shards=6)
    assert plain == build_msearch(request(), CONFIG, "shop")
    products = _facet_request(collapse="product")
    assert build_msearch(products, CONFIG, "s", shards=6) == build_msearch(products, CONFIG, "s")


def test_several_shards_second_pass_counts_each_pool_by_id() -> None:
    req = _facet_request()
    lines = facet_msearch(req, CONFIG, "shop", [("a", "b", "c"), ("a", "d")], ("b", "c"))
    assert len(lines) == 6
    page, main, brand = lines[1], lines[3], lines[5]
    assert page["query"] == {"terms": {"id": ["b", "c"]}}
    assert (page["size"], page["_source"]) == (2, EXCLUDED)
    assert main["query"] == {"terms": {"id": ["a", "b", "c"]}}
    assert set(main["aggs"]) == {"f|price"}, "plain facets over the main pool"
    assert brand["query"] == {"terms": {"id": ["a", "d"]}}
    assert set(brand["aggs"]) == {"f|brand", "s|brand"}
    assert main["size"] == brand["size"] == 0
    with pytest.raises(ValueError, match="pools"):
        facet_msearch(req, CONFIG, "shop", [("a",)], ())


def test_bm25_rankings_use_the_index_term_statistics() -> None:
    lines = build_msearch(request(keywords="red dress"), CONFIG, "shop")
    headers = lines[0::2]
    assert headers[0] == {"index": "shop"}, "the k-NN ranking"
    assert headers[1] == {"index": "shop", "search_type": "dfs_query_then_fetch"}
