"""The brute-force reference evaluator checks itself on tiny, hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search.model import FacetRequest, Range, SearchRequest, SortKey, Terms
from tests.reference_search import evaluate, similarity
from tests.tolerance import SCORE_ATOL, ranking_problems, tie_runs
from tests.unit.search_config import CONFIG

DOCS: list[dict[str, Any]] = [
    {"id": "a", "clip": [1.0, 0.0], "brand": "nike", "price": 10.0, "size": ["M", "L"]},
    {"id": "b", "clip": [0.0, 1.0], "brand": "puma", "price": 20.0, "size": "M"},
    {"id": "c", "clip": [-1.0, 0.0], "brand": "nike", "size": "S"},
    {"id": "d", "clip": [1.0, 1.0], "brand": "adidas", "price": 5.0},
]


def request(**kwargs: Any) -> SearchRequest:
    base: dict[str, Any] = {
        "engine": "abc123",
        "vector_field": "clip",
        "k": 10,
        "vector": [1.0, 0.0],
    }
    return SearchRequest(**{**base, **kwargs})


def test_similarity_is_half_one_plus_cos() -> None:
    assert similarity([1.0, 0.0], [1.0, 0.0]) == pytest.approx(1.0)
    assert similarity([0.0, 1.0], [1.0, 0.0]) == pytest.approx(0.5)
    assert similarity([-1.0, 0.0], [1.0, 0.0]) == pytest.approx(0.0)


CASES: list[tuple[dict[str, Any], list[str], int, str]] = [
    ({}, ["a", "d", "b", "c"], 4, "relevance order"),
    ({"k": 2}, ["a", "d"], 2, "pool of k"),
    ({"rpp": 2, "page": 2}, ["b", "c"], 4, "paging"),
    ({"filters": {"brand": Terms("brand", ("nike",))}}, ["a", "c"], 2, "terms"),
    ({"filters": {"price": Range("price", gt=5.0)}}, ["a", "b"], 2, "range; missing fails"),
    (
        {
            "filters": {"brand": Terms("brand", ("puma",)), "price": Range("price", lte=5.0)},
            "filter_execution": "or",
        },
        ["d", "b"],
        2,
        "or",
    ),
    ({"excludes": (Terms("size", ("M",)),)}, ["d", "c"], 2, "exclude multi-valued"),
    ({"exclude_ids": ("a",)}, ["d", "b", "c"], 3, "exclude ids"),
    ({"sort": (SortKey("price", "asc"),)}, ["d", "a", "b", "c"], 4, "sort asc, missing last"),
    ({"sort": (SortKey("price", "desc"),)}, ["b", "a", "d", "c"], 4, "sort desc, missing last"),
    ({"sort": (SortKey("brand", "desc"),)}, ["b", "a", "c", "d"], 4, "string desc; tie by score"),
]


@pytest.mark.parametrize(("kwargs", "ids", "total", "why"), CASES)
def test_evaluate(kwargs: dict[str, Any], ids: list[str], total: int, why: str) -> None:
    expected = evaluate(DOCS, request(**kwargs), CONFIG)
    assert (expected.ids, expected.total) == (ids, total), why


def test_disjunctive_facets() -> None:
    req = request(
        filters={"brand": Terms("brand", ("nike",)), "price": Range("price", gte=10.0)},
        facets=(
            FacetRequest("brand", 5, "terms"),
            FacetRequest("size", 5, "terms"),
            FacetRequest("price", 5, "range"),
        ),
    )
    expected = evaluate(DOCS, req, CONFIG)
    assert expected.ids == ["a"]
    assert expected.facets["brand"] == {"nike": 1, "puma": 1}, "counted without the brand filter"
    assert expected.facets["size"] == {"M": 1, "L": 1}, "counted over the pool"
    assert expected.facets["price"] == (10.0, 10.0), "min/max without the price filter: nike docs"


def test_near_ties_may_swap_but_nothing_else_may() -> None:
    ids, scores = ["a", "b", "c", "d"], [0.9, 0.9 - SCORE_ATOL / 2, 0.8, 0.7]
    runs = tie_runs(ids, scores)
    score_of = dict(zip(ids, scores, strict=True))
    assert runs[0] == runs[1] == {"a", "b"} and runs[2] == {"c"}
    assert not ranking_problems(["b", "a", "c"], [scores[1], scores[0], 0.8], runs[:3], score_of)
    assert ranking_problems(["a", "c", "b"], [0.9, 0.8, scores[1]], runs[:3], score_of)
    assert ranking_problems(
        ["a", "b", "c"], [0.9, scores[1], 0.8 + 2 * SCORE_ATOL], runs[:3], score_of
    )
    assert ranking_problems(["a", "b"], [0.9, scores[1]], runs[:3], score_of), "page too short"


def test_near_ties_do_not_cross_a_field_sort_key() -> None:
    runs = tie_runs(["a", "b"], [0.5, 0.5], groups=[(0, 10.0), (0, 20.0)])
    assert runs == [{"a"}, {"b"}]


def test_a_near_tie_at_the_pool_boundary_is_flagged() -> None:
    twins = [
        {"id": "x", "clip": [1.0, 0.0]},
        {"id": "y", "clip": [1.0, 1e-6]},  # cos differs from x's by ~5e-13
        {"id": "z", "clip": [0.0, 1.0]},
    ]
    req = request(k=1, facets=(FacetRequest("brand", 5, "terms"),))
    expected = evaluate(twins, req, CONFIG)
    assert expected.pool_ambiguous and expected.ambiguous_facets == {"brand"}
    assert expected.allowed == [{"x", "y"}], "either twin may make the pool"
    clear = evaluate(twins, request(k=2), CONFIG)
    assert not clear.pool_ambiguous and clear.allowed == [{"x", "y"}, {"x", "y"}]
