"""Exact Hamming search over stored perceptual hashes, on the real node, against brute force."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import pytest
from opensearchpy import OpenSearch
from PIL import Image

from gateway.search.model import ImageQuery, NearDuplicate
from gateway.service import CatalogService
from gateway.settings import GatewaySettings
from imgsearch.embedders.phash import hamming
from imgsearch.engine_config import EngineConfig
from indexer.runner import IndexOptions, index_feed
from tests.integration.test_indexer_lifecycle import FAST, SETTINGS, engine

pytestmark = pytest.mark.integration


def _recompressed(path: Path, scale: float, quality: int) -> bytes:
    with Image.open(path) as image:
        smaller = image.convert("RGB").resize(
            (int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS
        )
    out = io.BytesIO()
    smaller.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _near_duplicates(
    opensearch_url: str, config: EngineConfig, image: bytes, *, max_distance: int, size: int
) -> tuple[NearDuplicate, ...]:
    """The neutral service's operation, as every dialect (and the CLI) calls it."""
    settings = GatewaySettings(opensearch_url=opensearch_url)
    service = CatalogService.create(settings, {config.hashid: config})
    try:
        engine = service.engine(config.hashid)
        search = partial(
            service.near_duplicates, engine, ImageQuery(image), max_distance=max_distance, size=size
        )
        return anyio.run(search)
    finally:
        service.close()


def test_near_duplicates_match_brute_force_hamming(
    os_client: OpenSearch,
    opensearch_url: str,
    index_name: Callable[[str], str],
    clothing_dataset: Path,
    tmp_path: Path,
) -> None:
    # A feed of the validation shoes plus a resized, recompressed copy of one of them.
    shoes = sorted((clothing_dataset / "validation" / "shoes").glob("*.jpg"))
    original = shoes[3]
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(_recompressed(original, 0.6, 45))
    feed = tmp_path / "feed.jsonl"
    rows = [{"id": p.stem, "image": str(p), "category": "shoes"} for p in shoes]
    rows.append({"id": "relisted-copy", "image": str(copy), "category": "shoes"})
    feed.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    config = engine(index_name("dupes"), FAST)
    assert index_feed(feed, config, os_client, IndexOptions(pipeline=SETTINGS)).ok

    stored = {
        hit["_source"]["id"]: int(hit["_source"]["phash"])
        for hit in os_client.search(
            index=config.alias, body={"size": 1000, "_source": ["id", "phash"]}
        )["hits"]["hits"]
    }
    query = original.read_bytes()
    max_distance = 10
    found = _near_duplicates(opensearch_url, config, query, max_distance=max_distance, size=50)

    expected = sorted(
        (
            (hamming(stored[original.stem], value), item_id)
            for item_id, value in stored.items()
            if hamming(stored[original.stem], value) <= max_distance
        ),
    )
    assert [(d.distance, d.id) for d in found] == expected
    assert found[0].id == original.stem and found[0].distance == 0
    assert "relisted-copy" in {d.id for d in found}

    cli = subprocess.run(
        [sys.executable, "-m", "imgsearch.cli", "duplicates", str(copy),
         "--engine", str(_config_file(tmp_path, config.model_dump_json())), "--max-distance", "6"],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    listed = [line.split() for line in cli.stdout.splitlines()]
    assert ["0", "relisted-copy"] in listed and original.stem in {row[1] for row in listed}


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.json"
    path.write_text(text)
    return path
