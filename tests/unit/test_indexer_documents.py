"""Documents and content hashes (pure), report lines, and the lifecycle's pure helpers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from imgsearch.embedders.base import EmbedderInfo
from indexer.documents import build_document, content_hash, index_action
from indexer.feeds import FeedRecord
from indexer.lifecycle import embedder_mismatch, version_of
from indexer.report import IndexSummary, Report

INFOS = {
    "clip": EmbedderInfo("clip", "tiny-1", 8, "knn_cosine"),
    "phash": EmbedderInfo("phash", "dct-1", 64, "hamming_long"),
}
FIELDS = {"title": "Shirt", "price": 10}


def test_content_hash_is_stable_and_ignores_field_order() -> None:
    one = content_hash(b"img", "a.jpg", {"title": "Shirt", "price": 10}, INFOS)
    two = content_hash(b"img", "a.jpg", {"price": 10, "title": "Shirt"}, INFOS)
    assert one == two
    assert one.startswith("sha256:") and len(one) == len("sha256:") + 64


@pytest.mark.parametrize(
    ("image", "url", "fields", "infos", "why"),
    [
        (b"img2", "a.jpg", FIELDS, INFOS, "other image bytes"),
        (b"img", "b.jpg", FIELDS, INFOS, "other image URL"),
        (b"img", "a.jpg", {**FIELDS, "price": 11}, INFOS, "a field changed"),
        (b"img", "a.jpg", {"title": "Shirt"}, INFOS, "a field removed"),
        (
            b"img",
            "a.jpg",
            FIELDS,
            {**INFOS, "clip": EmbedderInfo("clip", "tiny-2", 8, "knn_cosine")},
            "a new embedder version",
        ),
        (b"img", "a.jpg", FIELDS, {"clip": INFOS["clip"]}, "an embedder removed"),
    ],
)
def test_content_hash_changes_with(
    image: bytes,
    url: str,
    fields: dict[str, object],
    infos: dict[str, EmbedderInfo],
    why: str,
) -> None:
    assert content_hash(image, url, fields, infos) != content_hash(b"img", "a.jpg", FIELDS, INFOS)


def test_build_document_layout() -> None:
    record = FeedRecord("f:1", "sku-1", "/abs/a.jpg", "a.jpg", {"title": "Shirt", "colors": ["x"]})
    doc = build_document(
        record,
        {"clip": [0.1, 0.2], "phash": -5},
        {"colors": ["red"], "palette": [{"hex": "#ff0000"}]},
        "sha256:abc",
        "2024-01-01T00:00:00+00:00",
    )
    expected = {
        "id": "sku-1",
        "image_url": "a.jpg",
        "content_hash": "sha256:abc",
        "indexed_at": "2024-01-01T00:00:00+00:00",
        "title": "Shirt",
        "colors": ["x"],  # the feed's own value wins over a derived one
        "palette": [{"hex": "#ff0000"}],
        "clip": [0.1, 0.2],
        "phash": -5,
    }
    assert {key: doc[key] for key in expected} == expected
    action = index_action("shop_v1", "sku-1", doc)
    assert action == {"_op_type": "index", "_index": "shop_v1", "_id": "sku-1", "_source": doc}


def test_version_of() -> None:
    assert version_of("shop", "shop_v3") == 3
    assert version_of("shop", "shop_v") is None
    assert version_of("shop", "shopx_v3") is None
    assert version_of("sh.p", "shop_v3") is None  # the alias is matched literally


def test_embedder_mismatch_names_each_difference() -> None:
    assert embedder_mismatch(INFOS, dict(INFOS)) == []
    current = {
        "clip": EmbedderInfo("clip", "tiny-2", 16, "knn_cosine"),
        "color": EmbedderInfo("color", "v1", 48, "knn_cosine"),
    }
    problems = embedder_mismatch(INFOS, current)
    assert problems == [
        "clip: index has clip tiny-1 dim 8, config has clip tiny-2 dim 16",
        "color: not in the index",
        "phash: in the index but not in the config",
    ]


def test_report_lines_and_summary(tmp_path: Path) -> None:
    path = tmp_path / "report.jsonl"
    report = Report(IndexSummary(index="shop_v1", alias="shop"), path, stream=io.StringIO())
    report.record("f:1", "a", "indexed")
    report.record("f:2", "b", "unchanged")
    report.record("f:3", "c", "failed", stage="decode", reason="truncated")
    report.record("f:4", None, "failed", stage="feed", reason="missing id")
    report.record("x", "x", "deleted", stage="prune")
    report.summary.complete = True
    summary = report.close(2.0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[2] == {
        "ref": "f:3",
        "id": "c",
        "status": "failed",
        "stage": "decode",
        "reason": "truncated",
    }
    assert lines[-1]["summary"]["total"] == 4
    assert lines[-1]["summary"]["failed_by_stage"] == {"decode": 1, "feed": 1}
    assert lines[-1]["summary"]["rate_per_s"] == 2.0
    assert (summary.indexed, summary.unchanged, summary.failed, summary.deleted) == (1, 1, 2, 1)
    assert not summary.ok


def test_progress_on_a_terminal_shows_rate_and_eta() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Tty()
    report = Report(IndexSummary(index="i", alias="a"), None, expected=10, stream=stream)
    report._progress.interval_s = 0.0
    report.record("f:1", "a", "indexed")
    report.close(1.0)
    text = stream.getvalue()
    assert "1/10" in text and "/s" in text and "ETA" in text
