"""Versioned indexes behind the alias: embedder checks, rebuilds, zero-downtime swaps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opensearchpy import OpenSearch

from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import EmbedderMismatch
from indexer.bulk import BulkSettings
from indexer.pipeline import PipelineSettings
from indexer.runner import IndexOptions, index_feed

pytestmark = pytest.mark.integration


def engine(alias: str, vectors: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": alias,
            "alias": alias,
            "fields": {"category": {"type": "keyword", "facet": True}},
            "vectors": vectors,
            "retain_versions": 1,
        }
    )


COLOR_ONLY = {"color": {"embedder": "color"}}
FAST = {"color": {"embedder": "color"}, "phash": {"embedder": "phash"}}
SETTINGS = PipelineSettings(batch_size=32, workers=4, bulk=BulkSettings(chunk_size=100))


@pytest.fixture(scope="module")
def fast_embedders() -> dict[str, Embedder]:
    return build_embedders(engine("embedders", FAST))


def aliased(client: OpenSearch, alias: str) -> list[str]:
    return sorted(client.indices.get_alias(name=alias))


def versions(client: OpenSearch, alias: str) -> list[str]:
    return sorted(client.indices.get(index=f"{alias}_v*"))


def test_other_embedders_are_refused_until_rebuild(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    fast_embedders: dict[str, Embedder],
) -> None:
    feed = clothing_dataset / "validation" / "hat"
    alias = index_name("mismatch")
    color = {"color": fast_embedders["color"]}
    index_feed(
        feed, engine(alias, COLOR_ONLY), os_client, IndexOptions(pipeline=SETTINGS), embedders=color
    )

    config = engine(alias, FAST)
    with pytest.raises(EmbedderMismatch, match=r"phash: not in the index.*--rebuild"):
        index_feed(
            feed, config, os_client, IndexOptions(pipeline=SETTINGS), embedders=fast_embedders
        )

    rebuild = IndexOptions(rebuild=True, pipeline=SETTINGS)
    summary = index_feed(feed, config, os_client, rebuild, embedders=fast_embedders)
    assert summary.ok and summary.alias_moved and summary.index == f"{alias}_v2"
    assert aliased(os_client, alias) == [f"{alias}_v2"]
    hit = os_client.search(index=alias, body={"size": 1})["hits"]["hits"][0]["_source"]
    assert isinstance(hit["phash"]["centre"], int) and hit["phash"]["thumb"]
    # Normal runs now write into v2 and find nothing to do.
    again = index_feed(
        feed, config, os_client, IndexOptions(pipeline=SETTINGS), embedders=fast_embedders
    )
    assert again.index == f"{alias}_v2" and again.unchanged == summary.indexed


def test_rebuild_swaps_the_alias_without_search_downtime(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    fast_embedders: dict[str, Embedder],
) -> None:
    feed = clothing_dataset / "validation"
    alias = index_name("swap")
    config = engine(alias, FAST)
    first = index_feed(
        feed, config, os_client, IndexOptions(pipeline=SETTINGS), embedders=fast_embedders
    )
    assert first.ok and aliased(os_client, alias) == [f"{alias}_v1"]

    stop = threading.Event()
    problems: list[str] = []
    searches = [0]

    def search_loop() -> None:
        while not stop.is_set():
            try:
                response = os_client.search(
                    index=alias, body={"size": 3, "query": {"term": {"category": "hat"}}}
                )
                if not response["hits"]["hits"]:
                    problems.append("no hits")
                searches[0] += 1
            except Exception as exc:
                problems.append(repr(exc))

    searcher = threading.Thread(target=search_loop)
    searcher.start()
    try:
        rebuild = IndexOptions(rebuild=True, pipeline=SETTINGS)
        second = index_feed(feed, config, os_client, rebuild, embedders=fast_embedders)
        third = index_feed(feed, config, os_client, rebuild, embedders=fast_embedders)
    finally:
        stop.set()
        searcher.join()

    assert problems == []
    assert searches[0] > 10
    assert second.alias_moved and second.indexed == 341
    assert third.alias_moved and third.index == f"{alias}_v3"
    assert aliased(os_client, alias) == [f"{alias}_v3"]
    assert versions(os_client, alias) == [f"{alias}_v2", f"{alias}_v3"]  # retain_versions=1
    assert os_client.count(index=alias)["count"] == 341


def test_rebuild_with_failures_keeps_the_alias_and_resumes(
    os_client: OpenSearch,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    fast_embedders: dict[str, Embedder],
    tmp_path: Path,
) -> None:
    images = sorted((clothing_dataset / "validation" / "hat").iterdir())[:6]
    folder = tmp_path / "hat"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    alias = index_name("resume")
    config = engine(alias, FAST)
    index_feed(
        tmp_path, config, os_client, IndexOptions(pipeline=SETTINGS), embedders=fast_embedders
    )

    broken = folder / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    rebuild = IndexOptions(rebuild=True, pipeline=SETTINGS)
    failed = index_feed(tmp_path, config, os_client, rebuild, embedders=fast_embedders)
    assert failed.failed == 1 and not failed.alias_moved
    assert "NOT moved" in failed.notes[0]
    assert aliased(os_client, alias) == [f"{alias}_v1"]

    broken.unlink()
    resumed = index_feed(tmp_path, config, os_client, rebuild, embedders=fast_embedders)
    assert resumed.index == f"{alias}_v2"  # the unfinished rebuild, not a v3
    assert resumed.unchanged == 6 and resumed.alias_moved
    assert aliased(os_client, alias) == [f"{alias}_v2"]
