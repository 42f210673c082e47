"""The brute-force reference evaluator checks itself on tiny, hand-computed cases."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.search.model import FacetRequest, Range, SearchRequest, SortKey, Terms
from tests.reference_search import evaluate, similarity
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
