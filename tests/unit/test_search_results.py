"""_msearch responses → SearchResult: merging facets, sorting the pool, errors."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search.model import (
    FacetRequest,
    Range,
    RangeFacetResult,
    SearchRequest,
    SortKey,
    TermCount,
    Terms,
    TermsFacetResult,
)
from gateway.search.results import read_facet_pass, read_msearch, read_pools, shards_searched
from imgsearch.errors import BackendUnavailable
from tests.unit.search_config import CONFIG


def request(**kwargs: Any) -> SearchRequest:
    base: dict[str, Any] = {"engine": "abc123", "vector_field": "clip", "k": 50, "vector": [1.0]}
    return SearchRequest(**{**base, **kwargs})


def hit(ident: str, score: float, **source: Any) -> dict[str, Any]:
    return {"_id": f"doc-{ident}", "_score": score, "_source": {"id": ident, **source}}


def response(
    hits: list[dict[str, Any]], total: int, aggs: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"hits": {"total": {"value": total, "relation": "eq"}, "hits": hits}}
    if aggs is not None:
        out["aggregations"] = aggs
    return out


def test_plain_hits_and_total_capped_at_k() -> None:
    result = read_msearch([response([hit("a", 0.9), hit("b", 0.8)], 120)], request(k=100), CONFIG)
    assert [(h.id, h.score) for h in result.hits] == [("a", 0.9), ("b", 0.8)]
    assert result.total == 100, "more than k on several shards: the pool is k"


def test_id_falls_back_to_underscore_id() -> None:
    raw = {"_id": "x1", "_score": 0.5, "_source": {"title": "t"}}
    assert read_msearch([response([raw], 1)], request(), CONFIG).hits[0].id == "x1"


POOL = [
    hit("a", 0.90, price=30.0, brand="b"),
    hit("b", 0.80, price=10.0, brand="a"),
    hit("c", 0.80, price=10.0, brand="c"),
    hit("d", 0.95, brand="z"),
    hit("e", 0.70, price=[5.0, 50.0], brand="a"),
    hit("f", 0.80, price=10.0, brand="c"),
]
SORT_CASES: list[tuple[tuple[SortKey, ...], int, int, list[str], str]] = [
    (
        (SortKey("price", "asc"),),
        1,
        10,
        ["e", "b", "c", "f", "a", "d"],
        "asc; ties by score then id; missing last; multi-valued uses min",
    ),
    (
        (SortKey("price", "desc"),),
        1,
        10,
        ["e", "a", "b", "c", "f", "d"],
        "desc uses max; missing still last",
    ),
    (
        (SortKey("brand", "asc"), SortKey("price", "desc")),
        1,
        10,
        ["e", "b", "a", "c", "f", "d"],
        "two keys",
    ),
    ((SortKey("price", "asc"),), 2, 2, ["c", "f"], "page 2 sliced after sorting"),
    ((SortKey("title", "asc"),), 1, 3, ["d", "a", "b"], "nobody has it: relevance order"),
]


@pytest.mark.parametrize(("sort", "page", "rpp", "expected", "why"), SORT_CASES)
def test_field_sort(
    sort: tuple[SortKey, ...], page: int, rpp: int, expected: list[str], why: str
) -> None:
    req = request(sort=sort, page=page, rpp=rpp)
    result = read_msearch([response(POOL, len(POOL))], req, CONFIG)
    assert [h.id for h in result.hits] == expected, why


def test_sort_keeps_only_top_k_of_several_shards() -> None:
    req = request(k=2, sort=(SortKey("price", "asc"),), rpp=2)
    result = read_msearch([response(POOL, 6)], req, CONFIG)
    assert [h.id for h in result.hits] == ["a", "d"], "pool = top-2 by score, then sorted"


def test_facets_merge_from_their_bodies() -> None:
    req = request(
        filters={
            "brand": Terms("brand", ("nike", "rare")),
            "price": Range("price", gte=10.0, lt=99.0),
        },
        facets=(
            FacetRequest("size", 5, "terms"),
            FacetRequest("brand", 2, "terms"),
            FacetRequest("price", 20, "range"),
            FacetRequest("in_stock", 5, "terms"),
        ),
    )
    main = response(
        [hit("a", 0.9)],
        1,
        {
            "f|size": {"buckets": [{"key": "M", "doc_count": 3}]},
            "f|in_stock": {"buckets": [{"key": 1, "key_as_string": "true", "doc_count": 4}]},
        },
    )
    brand = response(
        [],
        0,
        {
            "f|brand": {
                "buckets": [{"key": "puma", "doc_count": 9}, {"key": "nike", "doc_count": 4}]
            },
            "s|brand": {"buckets": {"0": {"doc_count": 4}, "1": {"doc_count": 1}}},
        },
    )
    price = response([], 0, {"f|price": {"count": 5, "min": 3.0, "max": 120.0}})
    result = read_msearch([main, brand, price], req, CONFIG)
    size, brand_f, price_f, stock = result.facets
    assert size == TermsFacetResult("size", (TermCount("M", 3),), ())
    assert brand_f == TermsFacetResult(
        "brand",
        (TermCount("puma", 9), TermCount("nike", 4), TermCount("rare", 1)),
        (TermCount("nike", 4), TermCount("rare", 1)),
    ), "selected values beyond the top size are still listed, with exact counts"
    assert price_f == RangeFacetResult("price", 3.0, 120.0, 10.0, 99.0)
    assert stock == TermsFacetResult("in_stock", (TermCount(True, 4),), ())


def test_selected_value_with_no_documents_counts_zero() -> None:
    req = request(
        filters={"brand": Terms("brand", ("gone",))}, facets=(FacetRequest("brand", 5, "terms"),)
    )
    brand = response(
        [], 0, {"f|brand": {"buckets": []}, "s|brand": {"buckets": {"0": {"doc_count": 0}}}}
    )
    facet = read_msearch([response([], 0), brand], req, CONFIG).facets[0]
    assert facet == TermsFacetResult("brand", (TermCount("gone", 0),), (TermCount("gone", 0),))


def test_empty_range_facet() -> None:
    req = request(facets=(FacetRequest("price", 20, "range"),))
    main = response([], 0, {"f|price": {"count": 0, "min": None, "max": None}})
    assert read_msearch([main], req, CONFIG).facets == (RangeFacetResult("price", None, None),)


ERROR_CASES: list[tuple[list[dict[str, Any]], str, str]] = [
    (
        [{"error": {"type": "search_phase_execution_exception", "reason": "boom"}, "status": 500}],
        "boom",
        "item error",
    ),
    ([{"error": "plain"}], "plain", "string error"),
    ([response([], 0), response([], 0)], "expected 1", "wrong number of responses"),
]


@pytest.mark.parametrize(("responses", "message", "why"), ERROR_CASES)
def test_backend_errors(responses: list[dict[str, Any]], message: str, why: str) -> None:
    with pytest.raises(BackendUnavailable, match=message):
        read_msearch(responses, request(), CONFIG)


def _ids_only(*pairs: tuple[str, float]) -> dict[str, Any]:
    """Hits without stored fields: the id is the last sort value."""
    return {"hits": {"hits": [{"_score": s, "sort": [s, i]} for i, s in pairs]}}


def test_two_passes_page_from_the_first_and_facets_from_the_second() -> None:
    req = request(
        k=3,
        rpp=2,
        page=1,
        filters={"brand": Terms("brand", ("nike",))},
        facets=(FacetRequest("brand", 5, "terms"), FacetRequest("price", 5, "range")),
    )
    first = read_pools(
        [
            _ids_only(("1", 0.9), ("2", 0.8), ("3", 0.7), ("4", 0.6)),
            _ids_only(("5", 0.95)),
        ],
        req,
    )
    assert first.ids == (("1", "2", "3"), ("5",)), "each pool cut at k"
    assert first.page_ids(req) == ("1", "2")
    page = response([hit("2", 1.0), hit("1", 1.0)], 2)  # the terms query: any order
    main = response([], 0, {"f|price": {"min": 5.0, "max": 9.0}})
    brand = response([], 0, {"f|brand": {"buckets": [{"key": "nike", "doc_count": 1}]}})
    result = read_facet_pass([page, main, brand], req, CONFIG, first)
    assert [(h.id, h.score) for h in result.hits] == [("1", 0.9), ("2", 0.8)]
    assert result.total == 3
    assert result.facets[1] == RangeFacetResult("price", 5.0, 9.0)
    assert result.facets[0].items == (TermCount("nike", 1),)  # type: ignore[union-attr]
    with pytest.raises(BackendUnavailable):
        read_facet_pass([page, main], req, CONFIG, first)


def test_shards_searched() -> None:
    assert shards_searched([{"_shards": {"total": 3}}, {"_shards": {"total": 1}}]) == 3
    assert shards_searched([{"error": "x"}]) == 1
