"""The indexer against the real node: counts, report, incremental runs, prune, resume, failures."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch
from opensearchpy.exceptions import TransportError

from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from indexer import cli as indexer_cli
from indexer.bulk import BulkSettings
from indexer.pipeline import PipelineSettings
from indexer.runner import IndexOptions, index_feed
from tests.tolerance import assert_same_vector

pytestmark = pytest.mark.integration

VALIDATION_FILES = 341


def engine(alias: str, vectors: dict[str, Any], **fields: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": alias,
            "alias": alias,
            "fields": {"category": {"type": "keyword", "facet": True}, **fields},
            "vectors": vectors,
        }
    )


FAST_VECTORS = {"color": {"embedder": "color"}, "phash": {"embedder": "phash"}}


@pytest.fixture(scope="module")
def clip_vectors(tiny_clip_checkpoint: Path) -> dict[str, Any]:
    return {
        "clip": {
            "embedder": "clip",
            "model": "imgsearch-tiny",
            "pretrained": None,
            "checkpoint": str(tiny_clip_checkpoint),
            "device": "cpu",
        },
        **FAST_VECTORS,
    }


@pytest.fixture(scope="module")
def clip_embedders(clip_vectors: dict[str, Any]) -> dict[str, Embedder]:
    return build_embedders(engine("embedders", clip_vectors))


@pytest.fixture(scope="module")
def fast_embedders() -> dict[str, Embedder]:
    return build_embedders(engine("embedders", FAST_VECTORS))


def options(report: Path | None = None, **pipeline: Any) -> IndexOptions:
    bulk = pipeline.pop("bulk", BulkSettings(chunk_size=100))
    settings = PipelineSettings(batch_size=32, workers=4, bulk=bulk, **pipeline)
    return IndexOptions(report_path=report, pipeline=settings)


def read_report(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return lines[:-1], lines[-1]["summary"]


def index_writes(client: OpenSearch, index: str) -> int:
    stats = client.indices.stats(index=index, metric="indexing")
    return int(stats["_all"]["primaries"]["indexing"]["index_total"])


def doc_count(client: OpenSearch, alias: str) -> int:
    return int(client.count(index=alias)["count"])


def copy_images(source: Path, target: Path, per_category: int) -> list[Path]:
    copied = []
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        for image in sorted(folder.iterdir())[:per_category]:
            destination = target / folder.name / image.name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, destination)
            copied.append(destination)
    return copied


def test_folder_feed_counts_report_and_unchanged_rerun(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    clip_vectors: dict[str, Any],
    clip_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    feed = clothing_dataset / "validation"
    config = engine(index_name("clothing"), clip_vectors)
    report = tmp_path / "first.jsonl"
    summary = index_feed(feed, config, os_client, options(report), embedders=clip_embedders)

    assert summary.ok and summary.indexed == VALIDATION_FILES
    on_disk = Counter(p.parent.name for p in feed.glob("*/*") if p.is_file())
    response = os_client.search(
        index=config.alias,
        body={"size": 0, "aggs": {"c": {"terms": {"field": "category", "size": 50}}}},
    )
    buckets = {b["key"]: b["doc_count"] for b in response["aggregations"]["c"]["buckets"]}
    assert buckets == dict(on_disk)
    assert sum(on_disk.values()) == VALIDATION_FILES

    lines, totals = read_report(report)
    assert len(lines) == VALIDATION_FILES
    assert len({line["id"] for line in lines}) == VALIDATION_FILES
    assert {line["status"] for line in lines} == {"indexed"}
    assert totals["total"] == totals["indexed"] == VALIDATION_FILES
    assert totals["failed"] == 0 and totals["complete"] is True
    assert totals["index"] == f"{config.alias}_v1"

    doc = os_client.get(index=config.alias, id=lines[0]["id"])["_source"]
    assert len(doc["clip"]) == clip_embedders["clip"].info.dim
    assert isinstance(doc["phash"]["centre"], int) and doc["colors"] and doc["palette"]
    assert doc["category"] == lines[0]["id"].split("/")[0]

    writes = index_writes(os_client, summary.index)
    again = tmp_path / "second.jsonl"
    summary = index_feed(feed, config, os_client, options(again), embedders=clip_embedders)
    assert summary.ok and summary.unchanged == VALIDATION_FILES and summary.indexed == 0
    assert index_writes(os_client, summary.index) == writes
    lines, totals = read_report(again)
    assert {line["status"] for line in lines} == {"unchanged"} and len(lines) == VALIDATION_FILES
    assert totals["unchanged"] == VALIDATION_FILES


def test_changed_records_are_reembedded_alone(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    clip_vectors: dict[str, Any],
    clip_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    images = copy_images(clothing_dataset / "validation", tmp_path / "img", per_category=2)
    feed = tmp_path / "feed.jsonl"
    rows = [
        {"id": f"sku-{i}", "image": str(p.relative_to(tmp_path)), "price": i, "category": "x"}
        for i, p in enumerate(images)
    ]
    feed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = engine(index_name("shop"), clip_vectors, price={"type": "number"})
    first = index_feed(feed, config, os_client, options(), embedders=clip_embedders)
    assert first.indexed == len(rows)
    before = os_client.get(index=config.alias, id="sku-3")["_source"]

    rows[1]["price"] = 999  # a field change
    shutil.copyfile(images[9], images[3])  # an image change under the same path
    feed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    report = tmp_path / "report.jsonl"
    second = index_feed(feed, config, os_client, options(report), embedders=clip_embedders)
    lines, _ = read_report(report)
    assert {line["id"] for line in lines if line["status"] == "indexed"} == {"sku-1", "sku-3"}
    assert (second.indexed, second.unchanged) == (2, len(rows) - 2)
    assert os_client.get(index=config.alias, id="sku-1")["_source"]["price"] == 999
    after = os_client.get(index=config.alias, id="sku-3")["_source"]
    # sku-3 now holds sku-9's picture: its vector is sku-9's up to float noise (embedded in
    # another batch), and no longer its old one.
    same_picture = os_client.get(index=config.alias, id="sku-9")["_source"]["clip"]
    assert_same_vector(after["clip"], same_picture, others=[before["clip"]])


def test_prune_removes_vanished_ids_only_after_a_full_scan(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    fast_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    images = copy_images(clothing_dataset / "validation", tmp_path, per_category=3)
    config = engine(index_name("prune"), FAST_VECTORS)
    index_feed(tmp_path, config, os_client, options(), embedders=fast_embedders)
    for gone in images[:4]:
        gone.unlink()

    kept = index_feed(tmp_path, config, os_client, options(), embedders=fast_embedders)
    assert kept.deleted == 0 and doc_count(os_client, config.alias) == len(images)

    limited = IndexOptions(prune=True, limit=5, pipeline=options().pipeline)
    partial = index_feed(tmp_path, config, os_client, limited, embedders=fast_embedders)
    assert partial.deleted == 0 and "prune skipped" in partial.notes[0]

    report = tmp_path / "report.jsonl"
    pruning = IndexOptions(prune=True, report_path=report, pipeline=options().pipeline)
    summary = index_feed(tmp_path, config, os_client, pruning, embedders=fast_embedders)
    assert summary.ok and summary.deleted == 4
    assert doc_count(os_client, config.alias) == len(images) - 4
    lines, totals = read_report(report)
    deleted = {line["id"] for line in lines if line["status"] == "deleted"}
    assert deleted == {p.relative_to(tmp_path).as_posix() for p in images[:4]}
    assert totals["deleted"] == 4 and totals["total"] == len(images) - 4


class CrashError(Exception):
    """Simulated crash in the middle of a run."""


def test_interrupted_run_then_rerun_has_every_doc_once(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    clip_vectors: dict[str, Any],
    clip_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    feed = clothing_dataset / "validation"
    config = engine(index_name("crash"), clip_vectors)

    def crash_after_150(written: int) -> None:
        if written == 150:
            raise CrashError

    report = tmp_path / "crashed.jsonl"
    crashing = options(report, on_written=crash_after_150, bulk=BulkSettings(chunk_size=50))
    with pytest.raises(CrashError):
        index_feed(feed, config, os_client, crashing, embedders=clip_embedders)
    _, totals = read_report(report)
    assert totals["complete"] is False
    os_client.indices.refresh(index=config.alias)
    assert 150 <= doc_count(os_client, config.alias) < VALIDATION_FILES

    summary = index_feed(feed, config, os_client, options(), embedders=clip_embedders)
    assert summary.ok
    assert summary.indexed + summary.unchanged == VALIDATION_FILES
    assert summary.unchanged >= 150
    assert doc_count(os_client, config.alias) == VALIDATION_FILES
    response = os_client.search(
        index=config.alias,
        body={"size": 0, "aggs": {"ids": {"cardinality": {"field": "id"}}}},
    )
    assert response["aggregations"]["ids"]["value"] == VALIDATION_FILES
    assert os_client.indices.get_alias(name=config.alias) == {
        f"{config.alias}_v1": {"aliases": {config.alias: {}}}
    }


KILLABLE_RUN = """
import argparse, sys
from indexer import cli
parser = cli.add_parser(argparse.ArgumentParser().add_subparsers())
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def test_killed_process_then_rerun_has_every_doc_once(
    os_client: OpenSearch,
    opensearch_url: str,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    clip_vectors: dict[str, Any],
    clip_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    feed = clothing_dataset / "validation"
    config = engine(index_name("killed"), clip_vectors)
    engine_file = tmp_path / "engine.json"
    engine_file.write_text(config.model_dump_json())
    report = tmp_path / "report.jsonl"
    command = [sys.executable, "-c", KILLABLE_RUN, str(feed), "--engine", str(engine_file)]
    command += ["--report", str(report), "--bulk-size", "20", "--batch-size", "16"]
    command += ["--opensearch-url", opensearch_url]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if report.exists() and len(report.read_text().splitlines()) >= 60:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    lines = report.read_text().splitlines()
    assert 60 <= len(lines) < VALIDATION_FILES, "the run should have died half-way"

    summary = index_feed(feed, config, os_client, options(), embedders=clip_embedders)
    assert summary.ok and summary.indexed + summary.unchanged == VALIDATION_FILES
    assert summary.unchanged >= 60
    assert doc_count(os_client, config.alias) == VALIDATION_FILES


def test_bad_records_fail_with_reasons_and_the_rest_index(
    os_client: OpenSearch,
    opensearch_url: str,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    tmp_path: Path,
) -> None:
    good = sorted((clothing_dataset / "validation" / "hat").iterdir())[:5]
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(good[0].read_bytes()[:300])  # a JPEG cut short
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"this is not an image at all")
    rows: list[dict[str, Any]] = [
        {"id": f"ok-{i}", "image": str(path), "price": i} for i, path in enumerate(good)
    ]
    rows += [
        {"id": "missing-file", "image": "nowhere/missing.jpg"},
        {"id": "corrupt", "image": "corrupt.jpg"},
        {"id": "garbage", "image": "garbage.jpg"},
        {"id": "bad-price", "image": str(good[0]), "price": "twelve"},
        {"image": str(good[0])},
        {"id": "ok-0", "image": str(good[1])},
        {"id": "no-image"},
    ]
    feed = tmp_path / "feed.jsonl"
    feed.write_text("".join(json.dumps(row) + "\n" for row in rows))
    alias = index_name("bad")
    engine_file = tmp_path / "engine.json"
    engine_file.write_text(engine(alias, FAST_VECTORS, price={"type": "number"}).model_dump_json())
    report = tmp_path / "report.jsonl"
    parser = indexer_cli.add_parser(_subparsers())
    args = parser.parse_args(
        [str(feed), "--engine", str(engine_file), "--report", str(report), "--workers", "2"]
    )
    args.opensearch_url = opensearch_url

    assert args.handler(args) == 1  # something failed

    lines, totals = read_report(report)
    assert len(lines) == len(rows)
    outcome = {
        line["id"]: (line["status"], line.get("stage"), line.get("reason", "")) for line in lines
    }
    for i in range(len(good)):
        assert outcome[f"ok-{i}"][0] == "indexed"
    assert (
        outcome["missing-file"][:2] == ("failed", "fetch")
        and "not found" in outcome["missing-file"][2]
    )
    assert outcome["corrupt"][:2] == ("failed", "decode")
    assert outcome["garbage"][:2] == ("failed", "decode")
    assert outcome["bad-price"][:2] == ("failed", "feed") and "price" in outcome["bad-price"][2]
    assert outcome["no-image"][:2] == ("failed", "feed")
    no_id = [line for line in lines if line["id"] is None]
    assert len(no_id) == 1 and "missing id" in no_id[0]["reason"]
    duplicate = [line for line in lines if line.get("reason", "").startswith("duplicate")]
    assert len(duplicate) == 1
    assert totals["indexed"] == len(good) and totals["failed"] == 7
    assert totals["failed_by_stage"] == {"feed": 4, "fetch": 1, "decode": 2}
    assert doc_count(os_client, alias) == len(good)


def test_bulk_429s_are_retried_and_final_failures_reported(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    fast_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    copy_images(clothing_dataset / "validation", tmp_path, per_category=2)
    no_wait = BulkSettings(chunk_size=5, max_retries=2, initial_backoff_s=0)

    flaky = FailingBulkClient(os_client, failures=2)
    config = engine(index_name("flaky"), FAST_VECTORS)
    summary = index_feed(
        tmp_path,
        config,
        flaky,
        options(bulk=no_wait),
        embedders=fast_embedders,  # type: ignore[arg-type]
    )
    assert summary.ok and summary.indexed == 20 and flaky.calls >= 6

    broken = FailingBulkClient(os_client, failures=10_000)
    config = engine(index_name("broken"), FAST_VECTORS)
    report = tmp_path / "report.jsonl"
    summary = index_feed(
        tmp_path,
        config,
        broken,
        options(report, bulk=no_wait),
        embedders=fast_embedders,  # type: ignore[arg-type]
    )
    assert summary.failed == 20 and not summary.ok
    lines, _ = read_report(report)
    assert all(line["stage"] == "bulk" and "429" in line["reason"] for line in lines)
    assert all("clip" not in line["reason"] and "[" not in line["reason"] for line in lines)


class FailingBulkClient:
    """A real client whose first ``failures`` bulk calls are rejected with 429."""

    def __init__(self, client: OpenSearch, failures: int) -> None:
        self._client = client
        self.failures = failures
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def bulk(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise TransportError(429, "es_rejected_execution_exception", {"error": "busy"})
        return self._client.bulk(*args, **kwargs)


def _subparsers() -> Any:
    return argparse.ArgumentParser(prog="imgsearch").add_subparsers()
