"""Operators can list an engine's versions and move the alias back and forth without loss."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from imgsearch.errors import NotFound
from indexer.runner import IndexOptions, index_feed
from indexer.versions import list_versions, set_live
from tests.integration.test_indexer_lifecycle import FAST, SETTINGS, engine

pytestmark = pytest.mark.integration


def test_versions_rollback_and_roll_forward(
    os_client: OpenSearch, index_name: Callable[[str], str], clothing_dataset: Path, tmp_path: Path
) -> None:
    alias = index_name("versions")
    config = engine(alias, FAST).model_copy(update={"retain_versions": 2})
    hats = clothing_dataset / "validation" / "hat"
    shoes = clothing_dataset / "validation" / "shoes"
    index_feed(hats, config, os_client, IndexOptions(pipeline=SETTINGS))
    index_feed(shoes, config, os_client, IndexOptions(rebuild=True, pipeline=SETTINGS))

    versions = list_versions(os_client, alias)
    assert [(v.version, v.live) for v in versions] == [(1, False), (2, True)]
    assert [v.docs for v in versions] == [
        len(list(hats.glob("*.jpg"))),
        len(list(shoes.glob("*.jpg"))),
    ]
    assert all("phash=" in v.embedders and v.size_bytes > 0 for v in versions)

    back = set_live(os_client, alias)
    assert back.index == f"{alias}_v1"
    assert sorted(os_client.indices.get_alias(name=alias)) == [f"{alias}_v1"]
    assert os_client.count(index=alias)["count"] == len(list(hats.glob("*.jpg")))
    with pytest.raises(NotFound):
        set_live(os_client, alias)  # nothing older than v1

    forward = set_live(os_client, alias, 2)
    assert forward.index == f"{alias}_v2"
    assert [v.version for v in list_versions(os_client, alias)] == [1, 2]  # nothing deleted

    config_path = tmp_path / "engine.json"
    config_path.write_text(config.model_dump_json())
    shown = subprocess.run(
        [sys.executable, "-m", "imgsearch.cli", "versions", "--engine", str(config_path)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    live_lines = [line for line in shown.stdout.splitlines() if line.startswith("* ")]
    assert len(live_lines) == 1 and f"{alias}_v2" in live_lines[0]
