"""The collection CSV: table tests of parsing and per-row problems, and a round-trip property
(rows written, read back and turned into records give the same records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest
from indexer.catalog_csv import (
    cell_text,
    columns_of,
    read_table,
    row_of,
    table_items,
    write_table,
)
from indexer.feeds import FeedError, FeedRecord, SeenIds

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "c",
        "alias": "c",
        "fields": {
            "title": {"type": "text"},
            "category": {"type": "keyword"},
            "year": {"type": "number"},
            "public": {"type": "boolean"},
            "made": {"type": "date"},
        },
        "vectors": {"color": {"embedder": "color"}},
    }
)


def read(text: str) -> Any:
    return read_table(text, image_column="image", id_column="id")


@pytest.mark.parametrize(
    ("text", "words", "why"),
    [
        ("", "empty", "no header"),
        ("\n\n", "empty", "blank lines only"),
        (" , \n", "empty", "a header of blank cells"),
        ("id,title\n1,x\n", "'image' column", "no image column"),
        ("id,image,\n", "column 3 has no name", "a blank column name"),
        ("id,image,id\n", "'id' appears twice", "a repeated column"),
    ],
)
def test_a_bad_header_refuses_the_file(text: str, words: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        read(text)


@pytest.mark.parametrize(
    ("text", "rows", "problems", "why"),
    [
        ("image\na.jpg\n", [{"image": "a.jpg", "id": "1"}], [], "ids default to row numbers"),
        ("\ufeffid,image\n7,a.jpg\n", [{"id": "7", "image": "a.jpg"}], [], "a BOM is ignored"),
        ("id,image\r\n7,a.jpg\r\n\r\n8,b.jpg", [{"id": "7", "image": "a.jpg"},
         {"id": "8", "image": "b.jpg"}], [], "CRLF, a blank line, no final line break"),
        ('id,image,title\n1,a.jpg,"x, ""y""\nz"\n2,b.jpg,w\n',
         [{"id": "1", "image": "a.jpg", "title": 'x, "y"\nz'},
          {"id": "2", "image": "b.jpg", "title": "w"}], [], "quoting and a cell over two lines"),
        ("id,image,title\n1,a.jpg\n2,b.jpg,x,y\n", [],
         [("line 2", "1", "2 cells, fewer"), ("line 3", "2", "4 cells, more")], "cell counts"),
        ('id,image,title\n1,a.jpg,"x\ny"\n2,b.jpg,w,extra\n', [{"id": "1", "image": "a.jpg",
         "title": "x\ny"}], [("line 4", "2", "more than the 3")], "lines count from the file"),
    ],
)  # fmt: skip
def test_rows_and_per_row_problems(
    text: str, rows: list[dict[str, str]], problems: list[tuple[str, str, str]], why: str
) -> None:
    table = read(text)
    assert [row.cells for row in table.rows] == rows, why
    got = [(p.ref, p.id, p.reason) for p in table.problems]
    assert len(got) == len(problems), why
    for (ref, row_id, reason), (want_ref, want_id, words) in zip(got, problems, strict=True):
        assert (ref, row_id) == (want_ref, want_id) and words in reason, why


def test_records_check_ids_images_and_types_per_row() -> None:
    text = (
        "id,image,year,public,made\n"
        "a,a.jpg,1901,yes,1901-02-03\n"
        ",b.jpg,1,,\n"
        "c,,1,,\n"
        "a,d.jpg,1,,\n"
        "e,e.jpg,MCM,,\n"
        "f,f.jpg,,maybe,\n"
        "g,g.jpg,,,someday\n"
        "h,https://x.example/h.jpg,,,\n"
    )
    items = list(table_items(read(text), CONFIG, SeenIds(), Path("/media")))
    good = [i for i in items if isinstance(i, FeedRecord)]
    bad = {i.ref: i.reason for i in items if isinstance(i, FeedError)}
    assert [(r.id, r.image, r.image_url) for r in good] == [
        ("a", "/media/a.jpg", "a.jpg"),
        ("h", "https://x.example/h.jpg", "https://x.example/h.jpg"),
    ]
    assert good[0].fields == {"year": 1901, "public": True, "made": "1901-02-03"}
    assert bad == {
        "line 3": "missing id field 'id'",
        "line 4": "missing image field 'image'",
        "line 5": "duplicate id (an earlier row has it)",
        "line 6": "field 'year': expected a number, got 'MCM'",
        "line 7": "field 'public': expected a boolean, got 'maybe'",
        "line 8": "field 'made': expected an ISO 8601 date, got 'someday'",
    }


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, ""), (True, "true"), (False, "false"), (3, "3"), (1.5, "1.5"), (1e20, "1e+20"),
     ("x, y", "x, y"), (["a", "b"], '["a", "b"]')],
)  # fmt: skip
def test_cell_text(value: object, text: str) -> None:
    assert cell_text(value) == text


def test_export_columns_and_rows() -> None:
    assert columns_of(CONFIG) == ["id", "image", "title", "category", "year", "public", "made"]
    source = {"image_url": "a.jpg", "year": 1901, "content_hash": "x", "colors": ["red"]}
    assert row_of("a", source, CONFIG) == {"id": "a", "image": "a.jpg", "year": 1901}


# Cell text as people type it: any printable text, commas, quotes and line breaks included.
_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"), max_size=30
)
_row = st.fixed_dictionaries(
    {
        "image": st.from_regex(r"[a-z0-9]{1,8}/[a-z0-9]{1,8}\.jpg", fullmatch=True),
        "title": _text,
        "category": _text.filter(lambda s: s.strip() == s),
        "year": st.one_of(st.none(), st.integers(-(2**40), 2**40),
                          st.floats(allow_nan=False, allow_infinity=False, width=64)),
        "public": st.one_of(st.none(), st.booleans()),
        "made": st.one_of(st.none(), st.dates().map(lambda d: d.isoformat())),
    }
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.lists(_row, max_size=12))
def test_write_then_read_gives_the_same_records(rows: list[dict[str, Any]]) -> None:
    stored = [{"id": f"r{i}", **row} for i, row in enumerate(rows)]
    text = write_table(columns_of(CONFIG), stored)
    items = list(table_items(read(text), CONFIG, SeenIds(), Path("/m")))
    assert all(isinstance(item, FeedRecord) for item in items), items
    for item, row in zip(items, stored, strict=True):
        assert isinstance(item, FeedRecord)
        assert (item.id, item.image_url) == (row["id"], row["image"])
        want = {k: v for k, v in row.items() if k not in ("id", "image") and v not in (None, "")}
        if (
            isinstance(want.get("year"), float)
            and want["year"].is_integer()
            and abs(want["year"]) < 2**53
        ):
            want["year"] = int(want["year"])  # 2.0 is stored as 2, as the feed reader does
        if isinstance(want.get("category"), str) and not want["category"].strip():
            del want["category"]  # a blank keyword is a missing one
        if isinstance(want.get("title"), str) and not want["title"].strip():
            del want["title"]
        assert item.fields == want
    # the records written out again read back the same: a second round trip changes nothing
    records = [i for i in items if isinstance(i, FeedRecord)]
    again = write_table(
        columns_of(CONFIG), [{"id": r.id, "image": r.image_url, **r.fields} for r in records]
    )
    reread = list(table_items(read(again), CONFIG, SeenIds(), Path("/m")))
    # everything but ``ref``: it names the physical line, and a dropped blank cell that held
    # a line break ("\n") leaves the rewritten file shorter
    assert [_content(r) for r in reread] == [_content(r) for r in records]


def _content(item: object) -> tuple[object, ...]:
    assert isinstance(item, FeedRecord)
    return (item.id, item.image, item.image_url, item.fields)
