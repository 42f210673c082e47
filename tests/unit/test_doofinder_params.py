"""Doofinder parameters → neutral request parts: tables of (input, expected, why)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dialects.doofinder.params import DoofinderParams, parse_params
from gateway.search.model import FacetRequest, Range, SortKey, Terms
from imgsearch.errors import InvalidRequest, UnknownField
from tests.unit.search_config import CONFIG

Pairs = list[tuple[str, str]]


def parse(pairs: Pairs, body: dict[str, Any] | None = None) -> DoofinderParams:
    return parse_params(pairs, CONFIG, body)


FILTER_CASES: list[tuple[Pairs, dict[str, object], str]] = [
    ([("filter[brand][]", "nike")], {"brand": Terms("brand", ("nike",))}, "append form"),
    ([("filter[brand]", "nike")], {"brand": Terms("brand", ("nike",))}, "plain form"),
    (
        [("filter[brand][]", "nike"), ("filter[brand][]", "puma")],
        {"brand": Terms("brand", ("nike", "puma"))},
        "values of one field are ORed",
    ),
    (
        [("filter[size]", "M"), ("filter[size]", "S")],
        {"size": Terms("size", ("M", "S"))},
        "repeated plain key collects values (reference example)",
    ),
    (
        [("filter[brand][]", "nike"), ("filter[brand]", "puma")],
        {"brand": Terms("brand", ("nike", "puma"))},
        "append and plain forms mix",
    ),
    (
        [("filter[brand][1]", "puma"), ("filter[brand][0]", "nike")],
        {"brand": Terms("brand", ("nike", "puma"))},
        "indexed values are ordered by index",
    ),
    (
        [("filter[brand][]", "nike"), ("filter[brand][]", "nike")],
        {"brand": Terms("brand", ("nike",))},
        "duplicates collapse",
    ),
    ([("filter[brand]", "")], {}, "empty values are ignored"),
    (
        [("filter[price][gte]", "4.36"), ("filter[price][lt]", "99")],
        {"price": Range("price", gte=4.36, lt=99.0)},
        "range bounds are numbers",
    ),
    (
        [("filter[price][gt]", "1"), ("filter[price][lte]", "2")],
        {"price": Range("price", gt=1.0, lte=2.0)},
        "gt and lte",
    ),
    ([("filter[price]", "10")], {"price": Terms("price", (10.0,))}, "exact number"),
    (
        [("filter[in_stock]", "1")],
        {"in_stock": Terms("in_stock", (True,))},
        "booleans accept 1/0",
    ),
    (
        [("filter[in_stock]", "FALSE")],
        {"in_stock": Terms("in_stock", (False,))},
        "booleans are case-insensitive",
    ),
    (
        [("filter[released][gte]", "2024-01-01")],
        {"released": Range("released", gte="2024-01-01")},
        "date ranges keep ISO text",
    ),
    (
        [("filter[colors][]", "red")],
        {"colors": Terms("colors", ("red",))},
        "derived colour field is filterable",
    ),
    (
        [("filter[title]", "Red Shoe")],
        {"title": Terms("title", ("Red Shoe",))},
        "text field: exact value (on its keyword sub-field in the DSL)",
    ),
]


@pytest.mark.parametrize(("pairs", "expected", "why"), FILTER_CASES)
def test_filters(pairs: Pairs, expected: dict[str, object], why: str) -> None:
    assert dict(parse(pairs).filters) == expected, why


def test_excludes_are_separate_negative_clauses() -> None:
    params = parse(
        [("exclude[brand][]", "nike"), ("exclude[price][gte]", "100"), ("filter[size]", "M")]
    )
    assert params.excludes == (Terms("brand", ("nike",)), Range("price", gte=100.0))
    assert dict(params.filters) == {"size": Terms("size", ("M",))}


ERROR_CASES: list[tuple[Pairs, type[Exception], str, str]] = [
    ([("rpp", "0")], InvalidRequest, "Invalid rpp", "rpp below 1"),
    ([("rpp", "101")], InvalidRequest, "Invalid rpp", "rpp above 100"),
    ([("rpp", "ten")], InvalidRequest, "Invalid rpp", "rpp not an integer"),
    ([("rpp", "1.5")], InvalidRequest, "Invalid rpp", "rpp fractional"),
    ([("rpp", "10"), ("rpp", "20")], InvalidRequest, "more than once", "conflicting scalars"),
    ([("rpp[x]", "10")], InvalidRequest, "Invalid rpp", "scalar given as a group"),
    ([("page", "0")], InvalidRequest, "Invalid page", "page below 1"),
    ([("page", "11"), ("rpp", "20")], InvalidRequest, "at most 200", "page beyond pool k"),
    ([("filter[nope]", "x")], UnknownField, "Unknown field 'nope'", "unknown filter field"),
    ([("exclude[nope]", "x")], UnknownField, "Unknown field 'nope'", "unknown exclude field"),
    ([("filter[brand][gte]", "a")], InvalidRequest, "number or date", "range on keyword"),
    ([("filter[price][foo]", "1")], InvalidRequest, "range operator 'foo'", "bad operator"),
    ([("filter[price]", "cheap")], InvalidRequest, "Invalid number", "number parse"),
    ([("filter[price]", "nan")], InvalidRequest, "Invalid number", "non-finite number"),
    ([("filter[price][gte]", "")], InvalidRequest, "Invalid number", "empty bound"),
    ([("filter[in_stock]", "yes")], InvalidRequest, "Invalid boolean", "boolean parse"),
    ([("filter[released]", "tomorrow")], InvalidRequest, "Invalid date", "date parse"),
    ([("filter", "red")], InvalidRequest, "Invalid filter", "filter without field"),
    ([("filter[brand", "x")], InvalidRequest, "Malformed", "unclosed bracket"),
    ([("filter]brand[", "x")], InvalidRequest, "Malformed", "brackets reversed"),
    ([("filter[brand]x", "x")], InvalidRequest, "Malformed", "text after a group"),
    ([("[brand]", "x")], InvalidRequest, "Malformed", "no parameter name"),
    ([("filter[][brand]", "x")], InvalidRequest, "'[]' must come last", "inner append"),
    ([("filter%5Bbrand%5D", "x")], InvalidRequest, "encoded twice", "double-encoded brackets"),
    (
        [("filter[brand]", "x"), ("filter[brand][y]", "z")],
        InvalidRequest,
        "Conflicting",
        "leaf then group",
    ),
    (
        [("filter[price][gte]", "1"), ("filter[price]", "2")],
        InvalidRequest,
        "Conflicting",
        "group then leaf",
    ),
    ([("filter[brand][a]", "x")], InvalidRequest, "range operator 'a'", "non-integer index"),
    ([("filter[price][gte][x]", "1")], InvalidRequest, "Invalid", "nested bound"),
    ([("filter_execution", "xor")], InvalidRequest, "filter_execution", "bad execution"),
    ([("session_id", "x" * 33)], InvalidRequest, "session_id", "session id too long"),
    ([("user_id", "x" * 37)], InvalidRequest, "user_id", "user id too long"),
    ([("stats", "maybe")], InvalidRequest, "Invalid stats", "bad boolean"),
    ([("exclude_self", "2")], InvalidRequest, "Invalid exclude_self", "bad boolean"),
    ([("facets[0][field]", "nope")], UnknownField, "Unknown field", "unknown facet"),
    ([("facets[0][field]", "sku")], UnknownField, "not a facet", "non-facet field"),
    ([("facets[0][size]", "5")], InvalidRequest, "Missing field", "facet without field"),
    ([("facets[x][field]", "brand")], InvalidRequest, "Invalid index 'x'", "non-integer index"),
    (
        [("facets[0][field]", "brand"), ("facets[0][type]", "range")],
        InvalidRequest,
        "Invalid facet type",
        "range facet on keyword",
    ),
    (
        [("facets[0][field]", "price"), ("facets[0][type]", "term")],
        InvalidRequest,
        "Invalid facet type",
        "term facet on number",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[0][size]", "51")],
        InvalidRequest,
        "Invalid facet size",
        "facet size above 50",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[0][size]", "0")],
        InvalidRequest,
        "Invalid facet size",
        "facet size below 1",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[0][color]", "x")],
        InvalidRequest,
        "Invalid key 'color'",
        "unknown facet key",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[1][field]", "brand")],
        InvalidRequest,
        "more than once",
        "duplicate facet",
    ),
    ([("sort[0][price]", "up")], InvalidRequest, "Invalid sort order", "bad order"),
    ([("sort[0][nope]", "asc")], UnknownField, "Unknown field 'nope' in sort", "unknown sort"),
    (
        [("sort[0][price]", "asc"), ("sort[1][price]", "desc")],
        InvalidRequest,
        "more than once",
        "duplicate sort field",
    ),
    ([("sort[0][price][x]", "asc")], InvalidRequest, "Invalid", "nested sort"),
    ([("sort[0][_score]", "asc")], InvalidRequest, "relevance sorts desc", "score asc"),
]


@pytest.mark.parametrize(("pairs", "error", "message", "why"), ERROR_CASES)
def test_errors(pairs: Pairs, error: type[Exception], message: str, why: str) -> None:
    with pytest.raises(error) as info:
        parse(pairs)
    assert message in str(info.value), why


SCALAR_CASES: list[tuple[Pairs, dict[str, object], str]] = [
    ([], {"rpp": 20, "page": 1, "filter_execution": "and"}, "defaults"),
    ([("rpp", "100"), ("page", "2")], {"rpp": 100, "page": 2}, "page*rpp == k is allowed"),
    ([("rpp", "20"), ("rpp", "20")], {"rpp": 20}, "repeated identical scalar is fine"),
    ([("rpp", " 7 ")], {"rpp": 7}, "whitespace around integers"),
    ([("filter_execution", "OR")], {"filter_execution": "or"}, "case-insensitive"),
    ([("session_id", "s" * 32), ("user_id", "u" * 36)], {"session_id": "s" * 32}, "limits"),
    ([("stats", "false"), ("excluded_results", "0")], {"stats": False}, "booleans"),
    ([("exclude_self", "false")], {"exclude_self": False}, "more-like-this keeps the item"),
    ([("dfid", "abc123@product@x")], {"dfid": "abc123@product@x"}, "dfid kept as given"),
    ([("query", "shoes"), ("utm[x]", "1")], {"rpp": 20}, "unknown parameters ignored"),
    ([("", "x")], {"rpp": 20}, "empty key ignored"),
]


@pytest.mark.parametrize(("pairs", "expected", "why"), SCALAR_CASES)
def test_scalars(pairs: Pairs, expected: dict[str, object], why: str) -> None:
    params = parse(pairs)
    assert {key: getattr(params, key) for key in expected} == expected, why


def test_page_window_is_min_of_k_and_1000() -> None:
    big = CONFIG.model_copy(update={"gateway": CONFIG.gateway.model_copy(update={"k": 5000})})
    assert parse_params([("rpp", "100"), ("page", "10")], big).page == 10
    with pytest.raises(InvalidRequest, match="at most 1000"):
        parse_params([("rpp", "100"), ("page", "11")], big)


FACET_CASES: list[tuple[Pairs, tuple[FacetRequest, ...], str]] = [
    (
        [],
        (FacetRequest("brand", 5, "terms"), FacetRequest("price", 20, "range")),
        "defaults from config",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[0][size]", "10"), ("facets[1][field]", "price")],
        (FacetRequest("brand", 10, "terms"), FacetRequest("price", 20, "range")),
        "reference example; type inferred",
    ),
    (
        [("facets[1][field]", "size"), ("facets[0][field]", "in_stock")],
        (FacetRequest("in_stock", 20, "terms"), FacetRequest("size", 20, "terms")),
        "ordered by index; boolean → terms",
    ),
    (
        [("facets[0][field]", "brand"), ("facets[0][type]", "term")],
        (FacetRequest("brand", 5, "terms"),),
        "explicit matching type; config default size",
    ),
    (
        [("facets[0][field]", "released"), ("facets[0][type]", "range")],
        (FacetRequest("released", 20, "range"),),
        "date → range",
    ),
    ([("facets[]", "colors")], (FacetRequest("colors", 20, "terms"),), "list of names"),
    ([("facets", "")], (), "empty facets switch off defaults"),
]


@pytest.mark.parametrize(("pairs", "expected", "why"), FACET_CASES)
def test_facets(pairs: Pairs, expected: tuple[FacetRequest, ...], why: str) -> None:
    assert parse(pairs).facets == expected, why


SORT_CASES: list[tuple[Pairs, tuple[SortKey, ...], str]] = [
    ([("sort[0][price]", "asc")], (SortKey("price", "asc"),), "reference form"),
    (
        [("sort[0][price]", "asc"), ("sort[1][brand]", "desc")],
        (SortKey("price", "asc"), SortKey("brand", "desc")),
        "reference two keys",
    ),
    ([("sort[price]", "desc")], (SortKey("price", "desc"),), "field-keyed form"),
    ([("sort", "price")], (SortKey("price", "asc"),), "bare field name sorts asc"),
    ([("sort[0][price]", "DESC")], (SortKey("price", "desc"),), "order case-insensitive"),
    ([("sort[0][_score]", "desc")], (), "relevance is the default order"),
    (
        [("sort[0][price]", "asc"), ("sort[1][_score]", "desc"), ("sort[2][brand]", "asc")],
        (SortKey("price", "asc"),),
        "keys after relevance never apply",
    ),
    ([("sort[0][title]", "asc")], (SortKey("title", "asc"),), "text sorts by keyword"),
]


@pytest.mark.parametrize(("pairs", "expected", "why"), SORT_CASES)
def test_sort(pairs: Pairs, expected: tuple[SortKey, ...], why: str) -> None:
    assert parse(pairs).sort == expected, why


def test_json_body_means_the_same_as_the_query() -> None:
    body = {
        "filter": {"brand": ["nike", "puma"], "price": {"gte": 10, "lt": 99.5}},
        "exclude": {"in_stock": False},
        "facets": [{"field": "brand", "size": 3}, {"field": "price"}],
        "sort": [{"price": "desc"}],
        "rpp": 10,
        "page": 2,
        "filter_execution": "or",
        "stats": False,
        "image": "iVBOR...",
    }
    query = [
        ("filter[brand][]", "nike"),
        ("filter[brand][]", "puma"),
        ("filter[price][gte]", "10"),
        ("filter[price][lt]", "99.5"),
        ("exclude[in_stock]", "false"),
        ("facets[0][field]", "brand"),
        ("facets[0][size]", "3"),
        ("facets[1][field]", "price"),
        ("sort[0][price]", "desc"),
        ("rpp", "10"),
        ("page", "2"),
        ("filter_execution", "or"),
        ("stats", "false"),
    ]
    assert parse([], body) == parse(query)


def test_query_and_body_combine() -> None:
    params = parse([("filter[brand]", "nike"), ("rpp", "10")], {"filter": {"brand": ["puma"]}})
    assert params.filters["brand"] == Terms("brand", ("nike", "puma"))
    with pytest.raises(InvalidRequest, match="more than once"):
        parse([("rpp", "10")], {"rpp": 30})


BODY_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"rpp": 10.5}, "Invalid rpp", "fractional JSON number"),
    ({"rpp": 10**20}, "Invalid rpp", "huge JSON number"),
    ({"filter": "red"}, "Invalid filter", "filter must be an object"),
    ({"filter": {"price": {"gte": float("inf")}}}, "Invalid number", "infinite bound"),
    ({"sort": [{"price": ["asc", "desc"]}]}, "Invalid", "conflicting orders"),
    ({"facets": [{"field": ["brand", "size"]}]}, "Invalid", "two names in one facet"),
]


@pytest.mark.parametrize(("body", "message", "why"), BODY_ERRORS)
def test_body_errors(body: dict[str, Any], message: str, why: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse([], body)
    assert message in str(info.value), why


def test_search_request_carries_everything() -> None:
    params = parse([("filter[brand]", "nike"), ("exclude[size]", "S"), ("rpp", "5")])
    req = params.search_request(CONFIG, [1.0, 0.0], exclude_ids=["42"])
    assert req.vector_field == "clip"
    assert req.k == 200
    assert req.exclude_ids == ("42",)
    assert req.excludes == (Terms("size", ("S",)),)
    assert req.rpp == 5
    assert req.engine == "abc123"


_KEYS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(
        ["filter", "exclude", "facets", "sort", "rpp", "page", "stats", "filter_execution"]
    ).flatmap(
        lambda base: st.lists(
            st.one_of(
                st.just("[]"),
                st.sampled_from(
                    ["brand", "price", "0", "1", "gte", "field", "size", "x", "type"]
                ).map(lambda s: f"[{s}]"),
                st.text(alphabet="[]%5Bd0x", max_size=3),
            ),
            max_size=4,
        ).map(lambda parts: base + "".join(parts))
    ),
)
_VALUES = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["1", "0", "true", "asc", "desc", "brand", "price", "10", "-1", "1e999"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=8))
def test_parser_only_raises_invalid_request(pairs: Pairs) -> None:
    with contextlib.suppress(InvalidRequest):
        parse(pairs)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["filter", "brand", "price", "gte", "field", "sort", "facets", "0", "rpp"]
            ),
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["filter", "exclude", "facets", "sort", "rpp", "page"]), _JSON)
)
def test_body_parser_only_raises_invalid_request(body: dict[str, Any]) -> None:
    with contextlib.suppress(InvalidRequest):
        parse([], body)


@pytest.mark.parametrize(
    ("pairs", "preference"),
    [([], None), ([("session_id", "s1")], "session:s1"), ([("session_id", "")], None)],
)
def test_a_session_reads_the_same_shard_copies_page_after_page(
    pairs: Pairs, preference: str | None
) -> None:
    for page in ("1", "2"):
        req = parse([*pairs, ("page", page)]).search_request(CONFIG)
        assert req.preference == preference
