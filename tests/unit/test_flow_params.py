"""Table tests of the Flow ``/image`` parameter parser and response formatter (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from gateway.dialect import Dialect
from gateway.dialects.flow.params import FieldList, FlowParams, parse_fl, parse_params, parse_sort
from gateway.dialects.flow.response import (
    SOLR_STATUSES,
    error_body,
    format_doc,
    format_response,
    page,
)
from gateway.errors import ErrorShapes, install_error_handlers
from gateway.search.model import And, ColorQuery, Hit, Range, SearchResult, SortKey, Terms
from imgsearch import errors as e
from imgsearch.errors import InvalidRequest, UnknownField
from tests.unit.search_config import CONFIG

Pairs = list[tuple[str, str]]


def parse(pairs: Pairs) -> FlowParams:
    return parse_params(pairs, CONFIG)


# ---------------------------------------------------------------- query image and colours


@pytest.mark.parametrize(
    ("pairs", "attrs", "why"),
    [
        ([("id", "111")], {"item_id": "111", "url": None, "base64": None}, "indexed id"),
        ([("url", "https://x.example/a.jpg")], {"url": "https://x.example/a.jpg"}, "web image"),
        ([("base64", "aGVsbG8=")], {"base64": "aGVsbG8="}, "uploaded image"),
        ([("id", ""), ("url", "https://x/a.jpg")], {"item_id": None}, "blank ones do not count"),
        ([("id", "1"), ("id", "2")], {"item_id": "1"}, "Solr takes the first value"),
        ([("color", "#0a7e8c")], {"colors": ColorQuery((("#0a7e8c", 1.0),))}, "colour alone"),
        ([("id", "1"), ("color", "")], {"colors": None}, "blank colour is none"),
        ([], {"item_id": None, "colors": None}, "nothing (the route refuses)"),
    ],
)
def test_query_parameters(pairs: Pairs, attrs: dict[str, Any], why: str) -> None:
    params = parse(pairs)
    for name, value in attrs.items():
        assert getattr(params, name) == value, why


# ---------------------------------------------------------------- fq, q, paging, sort, fl


def test_fq_are_anded_and_q_is_one_more() -> None:
    params = parse([("id", "1"), ("fq", "brand:acme"), ("fq", "price:[100 TO *]"), ("fq", " ")])
    assert params.filter == And((Terms("brand", ("acme",)), Range("price", gte=100.0)))
    assert parse([("id", "1"), ("q", "*:*")]).filter is None
    assert parse([("id", "1"), ("q", "brand:acme")]).filter == Terms("brand", ("acme",))
    req = params.search_request(CONFIG, 0, 10)
    assert req.filter_tree() == params.filter and req.vector_field == "clip"
    assert (req.k, req.offset, req.rpp, req.collapse) == (200, 0, 10, None)


@pytest.mark.parametrize(
    ("pairs", "rows", "start"),
    [
        ([], 10, 0),
        ([("rows", "3"), ("start", "6")], 3, 6),
        ([("rows", "0")], 0, 0),
        ([("rows", " 25 "), ("start", "")], 25, 0),
        ([("rows", "9990"), ("start", "10")], 9990, 10),
    ],
)
def test_rows_and_start(pairs: Pairs, rows: int, start: int) -> None:
    params = parse([("id", "1"), *pairs])
    assert (params.rows, params.start) == (rows, start)


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("rows", "ten")], "Invalid rows"),
        ([("rows", "-1")], "negative"),
        ([("start", "1.5")], "Invalid start"),
        ([("rows", "9000"), ("start", "1001")], "at most 10000"),
        ([("wt", "xml")], "json only"),
        ([("facet", "true")], "facet=true is not supported"),
        ([("group", "on")], "group=on is not supported"),
        ([("hl", "true")], "hl=true is not supported"),
        ([("url", "https://a/b.jpg"), ("base64", "aGk=")], "Give one query image"),
        ([("fq", "brand:acme~")], "fuzzy"),
        ([("fq", "nosuch:1")], "nosuch"),
        ([("color", "teal")], "Invalid color"),
        ([("sort", "price")], "Can't determine a Sort Order"),
        ([("sort", "price up")], "Can't determine a Sort Order"),
        ([("sort", "score asc")], "score asc is not supported"),
        ([("sort", "nosuch asc")], "sort param field can't be found: nosuch"),
        ([("sort", "sum(price,1) asc")], "function sorts are not supported"),
        ([("sort", "a-b asc")], "not a field name"),
        ([("sort", "price asc,price desc")], "more than once"),
        ([("sort", "price asc,,score desc")], "empty sort clause"),
        ([("fl", "id,p:price")], "Invalid fl"),
        ([("fl", "[docid]")], "Invalid fl"),
        ([("fl", "sum(price,1)")], "Invalid fl"),
    ],
)
def test_refusals(pairs: Pairs, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse([("id", "1"), *pairs])
    assert message in caught.value.message


def test_unknown_sort_field_is_an_unknown_field() -> None:
    with pytest.raises(UnknownField):
        parse_sort("nosuch desc", CONFIG)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("price asc", (SortKey("price", "asc"),)),
        ("price asc, brand DESC", (SortKey("price", "asc"), SortKey("brand", "desc"))),
        ("price desc,score desc,brand asc", (SortKey("price", "desc"),)),
        ("score desc", ()),
        ("id asc", (SortKey("id", "asc"),)),
    ],
)
def test_sort(text: str | None, expected: tuple[SortKey, ...]) -> None:
    assert parse_sort(text, CONFIG) == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], FieldList(True, (), (), True)),
        (["id,score"], FieldList(False, ("id",), (), True)),
        (["id price", "color_*"], FieldList(False, ("id", "price"), ("color_*",), False)),
        (["*"], FieldList(True, (), (), False)),
        ([" , "], FieldList(True, (), (), True)),
    ],
)
def test_fl(values: list[str], expected: FieldList) -> None:
    assert parse_fl(values) == expected


def test_echo_params_shortens_images_and_can_be_off() -> None:
    image = "A" * 5000
    params = parse([("base64", image), ("fq", "brand:acme"), ("fq", "price:[1 TO 2]")])
    assert params.echo["fq"] == ["brand:acme", "price:[1 TO 2]"]
    echoed = params.echo["base64"]
    assert isinstance(echoed, str) and len(echoed) < 100 and "5000 characters" in echoed
    assert parse([("id", "1"), ("echoParams", "none")]).echo == {}


@pytest.mark.parametrize(
    ("pairs", "window"),
    [
        ([("rows", "5"), ("start", "10")], (0, 15)),  # relevance: the top start + rows
        ([("rows", "0")], (0, 1)),  # maxScore still needs the best hit
        ([("sort", "price asc")], (0, 200)),  # field sort: the whole pool
        ([("fl", "id"), ("rows", "5"), ("start", "10")], (10, 5)),  # no score: just the page
    ],
)
def test_window(pairs: Pairs, window: tuple[int, int]) -> None:
    assert parse([("id", "1"), *pairs]).window(CONFIG.gateway.k) == window


# ---------------------------------------------------------------- response


def _hit(i: int, score: float) -> Hit:
    source: dict[str, object] = {
        "id": f"sku-{i}",
        "brand": "acme",
        "price": 10.0 * i,
        "clip": [0.1, 0.2],
        "color": [0.3],
        "palette": [{"hex": "#ffffff", "name": "white", "fraction": 1.0}],
        "color_palette_hex": ["#ffffff"],
        "color_palette_freq": [1.0],
        "color_names": ["white"],
        "color_isolated": True,
        "content_hash": "sha256:x",
        "indexed_at": "2026-01-01T00:00:00Z",
        "id_md5": "abc",
        "title": None,
    }
    return Hit(id=f"sku-{i}", score=score, source=source)


def test_docs_carry_stored_fields_without_vectors_or_bookkeeping() -> None:
    doc = format_doc(_hit(1, 0.9), parse([("id", "1")]), CONFIG)
    assert doc == {
        "id": "sku-1",
        "brand": "acme",
        "price": 10.0,
        "color_palette_hex": ["#ffffff"],
        "color_palette_freq": [1.0],
        "color_names": ["white"],
        "color_isolated": True,
        "score": 0.9,
    }
    assert next(iter(doc)) == "id" and list(doc)[-1] == "score"
    chosen = format_doc(_hit(1, 0.9), parse([("id", "1"), ("fl", "color_*,price")]), CONFIG)
    assert chosen == {
        "price": 10.0,
        "color_palette_hex": ["#ffffff"],
        "color_palette_freq": [1.0],
        "color_names": ["white"],
        "color_isolated": True,
    }
    assert format_doc(_hit(1, 0.9), parse([("id", "1"), ("fl", "id,nosuch")]), CONFIG) == {
        "id": "sku-1"
    }


def test_response_shape_paging_and_max_score() -> None:
    hits = tuple(_hit(i, 1.0 - i / 100) for i in range(15))
    params = parse([("id", "1"), ("rows", "5"), ("start", "10"), ("fl", "id,score")])
    offset, size = params.window(200)
    body = format_response(
        SearchResult(total=57, hits=hits[offset : offset + size]),
        params,
        CONFIG,
        offset=offset,
        qtime_ms=12.4,
    )
    assert body["responseHeader"] == {
        "status": 0,
        "QTime": 12,
        "params": {"id": "1", "rows": "5", "start": "10", "fl": "id,score"},
    }
    response = body["response"]
    assert list(response) == ["numFound", "start", "maxScore", "numFoundExact", "docs"]
    assert (response["numFound"], response["start"], response["numFoundExact"]) == (57, 10, True)
    assert response["maxScore"] == 1.0
    assert [d["id"] for d in response["docs"]] == [f"sku-{i}" for i in range(10, 15)]


def test_no_score_no_max_score_and_empty_results() -> None:
    params = parse([("id", "1"), ("fl", "id")])
    body = format_response(SearchResult(total=0, hits=()), params, CONFIG, offset=0, qtime_ms=0)
    assert body["response"] == {"numFound": 0, "start": 0, "numFoundExact": True, "docs": []}
    scored = format_response(
        SearchResult(total=0, hits=()), parse([("id", "1")]), CONFIG, offset=0, qtime_ms=0
    )
    assert scored["response"]["maxScore"] == 0.0


def test_page_slices_from_the_fetch_offset() -> None:
    hits = tuple(_hit(i, 0.5) for i in range(20))
    params = parse([("id", "1"), ("rows", "3"), ("start", "4")])
    assert [h.id for h in page(hits, params, 0)] == ["sku-4", "sku-5", "sku-6"]
    assert [h.id for h in page(hits[4:7], params, 4)] == ["sku-4", "sku-5", "sku-6"]


# ---------------------------------------------------------------- errors in Solr's shape

router = APIRouter()
_ERRORS: dict[str, e.ImgSearchError] = {
    "bad": e.InvalidRequest("Invalid rows: 'x' is not an integer"),
    "engine": e.UnknownEngine("Unknown search engine 'x'"),
    "embed": e.EmbeddingFailed("CUDA out of memory"),
    "slow": e.BackendTimeout("search backend timed out"),
    "down": e.BackendUnavailable("search backend unavailable"),
    "big": e.PayloadTooLarge("Image too large"),
}


@router.get("/api/cores/{what}/image")
async def fails(what: str) -> None:
    raise _ERRORS[what]


@pytest.mark.parametrize(
    ("what", "status"),
    [("bad", 400), ("engine", 404), ("embed", 500), ("slow", 503), ("down", 503), ("big", 400)],
)
def test_errors_in_solr_shape_with_solr_statuses(what: str, status: int) -> None:
    toy = Dialect("flow", router, "/api/cores/", error_body=error_body, statuses=SOLR_STATUSES)
    app = FastAPI()
    install_error_handlers(app, ErrorShapes([toy]))
    app.include_router(router)
    response = TestClient(app, raise_server_exceptions=False).get(f"/api/cores/{what}/image")
    assert response.status_code == status
    body = response.json()
    assert body["responseHeader"] == {"status": status, "QTime": 0}
    assert body["error"]["code"] == status and body["error"]["msg"]
    assert body["error"]["metadata"][:2] == ["error-class", "org.apache.solr.common.SolrException"]
    assert "CUDA" not in body["error"]["msg"], "internals stay hidden"


def test_error_body() -> None:
    assert error_body(400, "boom") == {
        "responseHeader": {"status": 400, "QTime": 0},
        "error": {
            "metadata": [
                "error-class",
                "org.apache.solr.common.SolrException",
                "root-error-class",
                "org.apache.solr.common.SolrException",
            ],
            "msg": "boom",
            "code": 400,
        },
    }
