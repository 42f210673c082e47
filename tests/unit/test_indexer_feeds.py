"""Feed parsing: folder / JSONL / CSV, typed values, and bad rows as FeedError items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgsearch.engine_config import EngineConfig, FieldSpec, FieldType
from imgsearch.errors import ConfigError
from indexer.feeds import (
    FeedError,
    FeedItem,
    FeedRecord,
    FieldTypeError,
    SeenIds,
    coerce_value,
    count_feed,
    read_feed,
)

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "shop",
        "alias": "shop",
        "fields": {
            "title": {"type": "text", "required": True},
            "brand": {"type": "keyword"},
            "tags": {"type": "keyword"},
            "price": {"type": "number"},
            "in_stock": {"type": "boolean"},
            "added": {"type": "date"},
            "category": {"type": "keyword"},
        },
        "vectors": {"color": {"embedder": "color"}},
    }
)


def _spec(kind: str) -> FieldSpec:
    return FieldSpec(type=FieldType(kind))


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("keyword", "red", "red"),
        ("keyword", 42, "42"),
        ("keyword", ["a", "b"], ["a", "b"]),
        ("text", "A shirt", "A shirt"),
        ("text", 3.5, "3.5"),
        ("number", 12, 12),
        ("number", 12.5, 12.5),
        ("number", "12.50", 12.5),
        ("number", "7", 7),
        ("number", " -3e2 ", -300),
        ("boolean", True, True),
        ("boolean", "yes", True),
        ("boolean", "FALSE", False),
        ("boolean", "0", False),
        ("date", "2024-03-01", "2024-03-01"),
        ("date", "2024-03-01T10:20:30Z", "2024-03-01T10:20:30+00:00"),
        ("date", "2024-03-01 10:20:30", "2024-03-01T10:20:30"),
    ],
)
def test_coerce_accepts(kind: str, value: object, expected: object) -> None:
    assert coerce_value(_spec(kind), value) == expected


@pytest.mark.parametrize(
    ("kind", "value", "why"),
    [
        ("keyword", True, "a boolean is not a keyword"),
        ("keyword", {"a": 1}, "objects are not keywords"),
        ("keyword", ["a", 1.5], "lists must hold strings"),
        ("text", ["a"], "lists are not text"),
        ("number", "abc", "not numeric"),
        ("number", True, "booleans are not numbers"),
        ("number", "nan", "NaN is not a usable number"),
        ("number", float("inf"), "infinity is not a usable number"),
        ("boolean", "maybe", "not a boolean word"),
        ("boolean", 1, "JSON numbers are not booleans"),
        ("date", "yesterday", "not ISO 8601"),
        ("date", "2024-13-01", "no 13th month"),
        ("date", 20240301, "numbers are not dates"),
    ],
)
def test_coerce_rejects(kind: str, value: object, why: str) -> None:
    with pytest.raises(FieldTypeError):
        coerce_value(_spec(kind), value)


def _items(path: Path, config: EngineConfig = CONFIG) -> list[FeedItem]:
    return list(read_feed(path, config))


def _by_ref(items: list[FeedItem]) -> dict[str, FeedItem]:
    return {item.ref.split(":")[-1]: item for item in items}


def test_jsonl_good_and_bad_rows(tmp_path: Path) -> None:
    rows = [
        {"id": "a", "image": "img/a.jpg", "title": "A", "price": "9.99", "in_stock": True},
        {"id": 7, "image": "https://cdn.example/7.jpg", "title": "Seven", "tags": ["x", "y"]},
        {"image": "img/b.jpg", "title": "no id"},
        {"id": "c", "title": "no image"},
        {"id": "a", "image": "img/a2.jpg", "title": "duplicate"},
        {"id": "d", "image": "img/d.jpg", "title": "D", "price": "cheap"},
        {"id": "e", "image": "img/e.jpg"},
        {"id": "f", "image": "/abs/f.jpg", "title": "F", "added": "2024-01-02", "unknown": 1},
        {"id": "g", "image": "img/g.jpg", "title": "G", "in_stock": "perhaps"},
    ]
    lines = [json.dumps(row) for row in rows]
    lines.insert(2, "")  # blank lines are skipped, numbering still follows the file
    lines.append("{not json")
    lines.append("[1, 2]")
    feed = tmp_path / "feed.jsonl"
    feed.write_text("\n".join(lines) + "\n")
    items = _by_ref(_items(feed))

    a = items["1"]
    assert isinstance(a, FeedRecord)
    assert a.id == "a"
    assert a.image == str(tmp_path / "img/a.jpg")  # relative to the feed file
    assert a.image_url == "img/a.jpg"
    assert a.fields == {"title": "A", "price": 9.99, "in_stock": True}
    seven = items["2"]
    assert isinstance(seven, FeedRecord)
    assert (seven.id, seven.image) == ("7", "https://cdn.example/7.jpg")
    assert seven.fields == {"title": "Seven", "tags": ["x", "y"]}
    f = items["9"]
    assert isinstance(f, FeedRecord)
    assert f.image == "/abs/f.jpg"
    assert f.fields == {"title": "F", "added": "2024-01-02"}  # undeclared fields are dropped

    expected_errors = {
        "4": (None, "missing id"),
        "5": ("c", "missing image"),
        "6": ("a", "duplicate id"),
        "7": ("d", "field 'price'"),
        "8": ("e", "missing required field 'title'"),
        "10": ("g", "field 'in_stock'"),
        "11": (None, "invalid JSON"),
        "12": (None, "expected a JSON object"),
    }
    for line, (doc_id, reason) in expected_errors.items():
        error = items[line]
        assert isinstance(error, FeedError), line
        assert error.id == doc_id
        assert reason in error.reason
        assert error.ref == f"feed.jsonl:{line}"
    assert len(items) == 11


def test_jsonl_invalid_utf8_line_is_one_error(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    good = json.dumps({"id": "ok", "image": "a.jpg", "title": "t"}).encode()
    feed.write_bytes(b'{"id": "\xff"}\n' + good + b"\n")
    items = _items(feed)
    assert isinstance(items[0], FeedError)
    assert isinstance(items[1], FeedRecord)


def test_csv_types_and_errors(tmp_path: Path) -> None:
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "id,image,title,price,in_stock,added\n"
        "1,a.jpg,First,10,true,2024-05-01\n"
        '2,b.jpg,"Second, with comma",abc,false,\n'
        ",c.jpg,No id,,,\n"
        "4,,No image,,,\n"
        "5,e.jpg,,1,,\n"
        "6,f.jpg,Six,1,yes,May 1st\n"
        "1,g.jpg,Dup,,,\n"
        "8,h.jpg,Eight,,no,,extra\n"
    )
    items = _items(feed)
    first = items[0]
    assert isinstance(first, FeedRecord)
    assert first.fields == {"title": "First", "price": 10, "in_stock": True, "added": "2024-05-01"}
    assert first.image == str(tmp_path / "a.jpg")
    reasons = [(item.id, item.reason) for item in items[1:] if isinstance(item, FeedError)]
    assert [doc_id for doc_id, _ in reasons] == ["2", None, "4", "5", "6", "1", None]
    assert "field 'price'" in reasons[0][1]
    assert "more cells" in reasons[-1][1]
    assert [item.ref for item in items][:2] == ["feed.csv:2", "feed.csv:3"]


def test_folder_feed_ids_and_categories(tmp_path: Path) -> None:
    for rel in ["shoes/b.jpg", "shoes/a.PNG", "hats/x.jpeg", "top.jpg", "hats/notes.txt"]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    items = _items(tmp_path)
    assert all(isinstance(item, FeedRecord) for item in items)
    records = [item for item in items if isinstance(item, FeedRecord)]
    assert [(r.id, r.fields) for r in records] == [
        ("top.jpg", {}),
        ("hats/x.jpeg", {"category": "hats"}),
        ("shoes/a.PNG", {"category": "shoes"}),
        ("shoes/b.jpg", {"category": "shoes"}),
    ]
    assert records[1].image == str(tmp_path / "hats/x.jpeg")
    assert count_feed(tmp_path) == 5  # an upper bound: hidden files included


def test_folder_category_needs_a_declared_field(tmp_path: Path) -> None:
    (tmp_path / "shoes").mkdir()
    (tmp_path / "shoes" / "a.jpg").write_bytes(b"x")
    config = CONFIG.model_copy(update={"fields": {}})
    (record,) = _items(tmp_path, config)
    assert isinstance(record, FeedRecord)
    assert record.fields == {}


def test_seen_ids_collects_every_id_the_feed_mentions(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    rows = [
        {"id": "good", "image": "a.jpg", "title": "t"},
        {"id": "typed-wrong", "image": "a.jpg", "title": "t", "price": "x"},
        {"image": "a.jpg"},
    ]
    feed.write_text("\n".join(json.dumps(r) for r in rows))
    seen = SeenIds()
    list(read_feed(feed, CONFIG, seen))
    assert "good" in seen and "typed-wrong" in seen
    assert "other" not in seen
    assert len(seen) == 2


def test_feed_is_streamed(tmp_path: Path) -> None:
    feed = tmp_path / "feed.jsonl"
    feed.write_text(json.dumps({"id": "1", "image": "a.jpg", "title": "t"}) + "\n")
    iterator = read_feed(feed, CONFIG)
    assert not isinstance(iterator, list)
    assert isinstance(next(iter(iterator)), FeedRecord)


def test_unknown_feed_kinds_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_feed(tmp_path / "missing.jsonl", CONFIG)
    other = tmp_path / "feed.xml"
    other.write_text("<x/>")
    with pytest.raises(ConfigError, match="unknown feed type"):
        read_feed(other, CONFIG)
