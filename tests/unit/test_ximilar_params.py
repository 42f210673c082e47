"""Ximilar request bodies → neutral parts, and neutral outcomes → Ximilar bodies (pure)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.dialects.ximilar import params as p
from gateway.dialects.ximilar import response as r
from gateway.search.model import ID_FIELD, ImageQuery, ImageUrlQuery, ItemQuery, NearDuplicate
from gateway.search.records import NewRecord, StoredRecord, WriteOutcome, read_bulk_outcomes
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest, MissingFields

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "xcol",
        "alias": "xcol",
        "fields": {"brand": {"type": "keyword"}, "price": {"type": "number"}},
        "vectors": {"color": {"embedder": "color"}},
    }
)
PNG = base64.b64encode(b"\x89PNG fake").decode()

QUERY_CASES: list[tuple[dict[str, Any], object, str]] = [
    ({"_id": "7"}, ItemQuery(ID_FIELD, "7", exclude_self=True), "indexed record, self excluded"),
    ({"_id": 7}, ItemQuery(ID_FIELD, "7", exclude_self=True), "integer ids are strings"),
    ({"_url": "https://x.example/a.jpg"}, ImageUrlQuery("https://x.example/a.jpg"), "url"),
    ({"_base64": PNG}, ImageQuery(b"\x89PNG fake"), "base64"),
    ({"_id": "7", "_url": "https://x.example/a.jpg"}, ImageUrlQuery("https://x.example/a.jpg"),
     "its own image wins over the id"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "expected", "why"), QUERY_CASES)
def test_query_of(record: dict[str, Any], expected: object, why: str) -> None:
    assert p.query_of(record, "query_record") == expected, why


QUERY_ERRORS: list[tuple[object, str]] = [
    ({}, "needs _id, _url or _base64"),
    ({"_file": "/etc/passwd"}, "_file is not supported"),
    ({"_url": "file:///etc/passwd"}, "http(s) URL"),
    ({"_url": "https://a", "_base64": PNG}, "not both"),
    ({"_base64": 5}, "base64 string"),
    ({"_id": ""}, "non-empty"),
    ("7", "must be a record"),
]


@pytest.mark.parametrize(("record", "fragment"), QUERY_ERRORS)
def test_query_of_errors(record: object, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        p.query_of(record, "query_record")


def test_new_records_split_image_and_fields() -> None:
    body = {"records": [{"_id": "1", "_url": "https://x/a.jpg", "brand": "acme", "price": 3}]}
    assert p.new_records(body) == [
        NewRecord("1", ImageUrlQuery("https://x/a.jpg"), {"brand": "acme", "price": 3})
    ]


@pytest.mark.parametrize(
    ("body", "error", "fragment"),
    [
        ({}, MissingFields, "records"),
        ({"records": []}, InvalidRequest, "empty"),
        ({"records": [{"_id": str(i), "_url": "https://x/a"} for i in range(11)]},
         InvalidRequest, "at most 10"),
        ({"records": [{"_id": "1"}]}, InvalidRequest, "needs _url or _base64"),
        ({"records": ["x"]}, InvalidRequest, "list of records"),
    ],
)  # fmt: skip
def test_new_records_errors(body: dict[str, Any], error: type[Exception], fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        p.new_records(body)


def test_updates_refuse_images() -> None:
    assert p.updates({"records": [{"_id": "1", "price": None}]}) == [("1", {"price": None})]
    with pytest.raises(InvalidRequest, match="image cannot be updated"):
        p.updates({"records": [{"_id": "1", "_url": "https://x/a.jpg"}]})


@pytest.mark.parametrize(
    ("value", "ok"), [(5, True), (5.0, True), (0, False), (1001, False), (2.5, False),
                      ("5", False), (True, False), (None, True)]
)  # fmt: skip
def test_integer_bounds(value: object, ok: bool) -> None:
    body = {"k": value}
    if ok:
        assert p.integer(body, "k", 30, 1, 1000) == (30 if value is None else 5)
    else:
        with pytest.raises(InvalidRequest, match="k must be"):
            p.integer(body, "k", 30, 1, 1000)


def test_product_field_must_be_a_keyword_field() -> None:
    assert p.product_field({"product_field": "brand"}, CONFIG) == "brand"
    assert p.product_field({}, CONFIG) is None
    for bad in ("price", "nope", 3):
        with pytest.raises(InvalidRequest, match="product_field"):
            p.product_field({"product_field": bad}, CONFIG)


def test_tags_union_in_order() -> None:
    records = [{"tags": ["a", "b"]}, {"tags": ["b", "c"]}, {}]
    assert p.tags_of(records, "tags") == ("a", "b", "c")
    with pytest.raises(MissingFields):
        p.tags_of([{}], "tags")


def test_project_fields_to_return() -> None:
    record = StoredRecord("1", {"brand": "acme", "image_url": "https://x/a.jpg", "gone": None})
    assert r.project(record, ["*"]) == {"_id": "1", "brand": "acme", "_url": "https://x/a.jpg"}
    assert r.project(record, ["_id"]) == {"_id": "1"}
    assert r.project(record, ["_url", "missing"]) == {"_url": "https://x/a.jpg"}


OK, DUP, NEAR = (WriteOutcome("1", s) for s in ("written", "duplicate", "near_duplicate"))
STATUS_CASES: list[tuple[list[WriteOutcome], tuple[int, str]]] = [
    ([OK], (210, "records inserted")),
    ([OK, DUP], (211, "some records inserted")),
    ([DUP, NEAR], (411, "record duplicate")),
    ([WriteOutcome("1", "invalid", "bad")], (400, "no record inserted")),
]


@pytest.mark.parametrize(("outcomes", "status"), STATUS_CASES)
def test_insert_status(outcomes: list[WriteOutcome], status: tuple[int, str]) -> None:
    assert r.insert_status(outcomes) == status


def test_write_answer_lists_skipped_with_reasons_and_near_copies() -> None:
    outcomes = [
        WriteOutcome("1", "written"),
        WriteOutcome("2", "near_duplicate", "near", (NearDuplicate("9", 3),)),
        WriteOutcome("3", "invalid", "unknown field 'x'"),
    ]
    body = r.write_answer(outcomes, (211, "some records inserted"), 12.4)
    assert body["status"] == {"code": 211, "text": "some records inserted"}
    assert body["statistics"] == {"OperationTime": 12}
    assert body["answer_records"] == [{"_id": "1"}] and body["answer_count"] == 1
    near, invalid = body["skipped_records"]
    assert near["_reason"]["answer_records"] == [{"_id": "9"}]
    assert near["_reason"]["answer_distances"] == [3.0]
    assert invalid["_reason"]["status"] == {"code": 400, "text": "unknown field 'x'"}


def test_error_body_shape() -> None:
    assert r.error_body(404, "collection not found") == {
        "status": {"code": 404, "text": "collection not found"},
        "statistics": {"OperationTime": 0},
    }


def test_bulk_outcomes_per_id() -> None:
    response = {
        "items": [
            {"delete": {"_id": "a", "status": 200}},
            {"delete": {"_id": "b", "status": 404}},
            {"delete": {"_id": "c", "status": 429, "error": {"reason": "too many requests"}}},
        ]
    }
    outcomes = read_bulk_outcomes(response, "delete")
    assert [(o.id, o.status, o.reason) for o in outcomes.values()] == [
        ("a", "written", None),
        ("b", "not_found", "records not found"),
        ("c", "failed", "too many requests"),
    ]
