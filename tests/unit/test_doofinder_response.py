"""SearchResult → Doofinder response JSON, and dfid parsing."""

from __future__ import annotations

import hashlib

import pytest

from gateway.dialects.doofinder.response import (
    DoofinderSearchResponse,
    format_response,
    make_dfid,
    parse_dfid,
)
from gateway.search.model import (
    Hit,
    ItemQuery,
    RangeFacetResult,
    SearchRequest,
    SearchResult,
    TermCount,
    TermsFacetResult,
)
from imgsearch.errors import InvalidRequest
from tests.unit.search_config import CONFIG

MD5 = hashlib.md5(b"sku-1").hexdigest()


def test_format_response_shape() -> None:
    result = SearchResult(
        total=42,
        hits=(
            Hit(
                "sku-1",
                0.93,
                {
                    "id": "sku-1",
                    "title": "Red shoe",
                    "url": "http://x/1",
                    "image_url": "http://x/1.jpg",
                    "brand": "nike",
                    "content_hash": "h",
                    "indexed_at": "2024-01-01",
                },
            ),
        ),
        facets=(
            TermsFacetResult(
                "brand", (TermCount("nike", 5), TermCount("puma", 3)), (TermCount("nike", 5),)
            ),
            TermsFacetResult("in_stock", (TermCount(True, 2),), ()),
            RangeFacetResult("price", 3.0, 120.0, 10.0, None),
        ),
    )
    req = SearchRequest(engine="abc123", vector_field="clip", k=200, page=2, rpp=10)
    body = format_response(result, req, CONFIG, "abc123")
    assert body["results"] == [
        {
            "id": "sku-1",
            "dfid": f"abc123@product@{MD5}",
            "title": "Red shoe",
            "url": "http://x/1",
            "image_url": "http://x/1.jpg",
            "description": None,
            "brand": "nike",
            "score": 0.93,
        }
    ], "internal fields dropped, other stored fields kept"
    assert (body["total"], body["count"], body["page"], body["rpp"]) == (42, 42, 2, 10)
    assert body["query_name"] == "image_search"
    assert body["facets"] == [
        {
            "key": "brand",
            "terms": {
                "items": [{"name": "nike", "count": 5}, {"name": "puma", "count": 3}],
                "selected": [{"name": "nike", "count": 5}],
            },
        },
        {"key": "in_stock", "terms": {"items": [{"name": "true", "count": 2}], "selected": []}},
        {"key": "price", "range": {"min": 3.0, "max": 120.0, "from": 10.0, "to": None}},
    ]
    model = DoofinderSearchResponse.model_validate(body)
    assert model.model_dump(by_alias=True)["facets"][2]["range"]["from"] == 10.0


def test_missing_title_is_empty_string() -> None:
    result = SearchResult(total=1, hits=(Hit("7", 0.5, {"id": "7"}),))
    req = SearchRequest(engine="abc123", vector_field="clip", k=200)
    item = format_response(result, req, CONFIG, "abc123")["results"][0]
    assert item["title"] == ""
    assert item["image_url"] is None


DFID_CASES: list[tuple[str, ItemQuery, str]] = [
    (make_dfid("abc123", "sku-1"), ItemQuery("id_md5", MD5), "full dfid → md5 lookup"),
    ("sku-1", ItemQuery("id", "sku-1"), "plain id"),
    ("a@b", ItemQuery("id", "a@b"), "ids may contain @"),
    ("abc123@product@notmd5", ItemQuery("id", "abc123@product@notmd5"), "not a dfid → id"),
]


@pytest.mark.parametrize(("dfid", "expected", "why"), DFID_CASES)
def test_parse_dfid(dfid: str, expected: ItemQuery, why: str) -> None:
    assert parse_dfid(dfid, "abc123") == expected, why


@pytest.mark.parametrize(
    ("dfid", "message"),
    [
        (f"other@product@{MD5}", "another search engine"),
        (f"abc123@page@{MD5}", "unknown index"),
        ("", "Invalid dfid"),
    ],
)
def test_parse_dfid_errors(dfid: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_dfid(dfid, "abc123")
