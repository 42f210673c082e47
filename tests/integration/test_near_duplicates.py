"""Near-duplicates on the real node: the service and the CLI against the pure detector run on
every stored signature (brute force), the painless script against plain popcounts."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from opensearchpy import OpenSearch
from PIL import Image, ImageEnhance, ImageOps

from gateway.search.dsl import near_duplicates_body
from gateway.search.dupe_pairs import groups
from gateway.search.model import ImageQuery, ItemQuery, NearDuplicate
from gateway.search.results import read_near_duplicate_candidates
from gateway.service import CatalogService
from gateway.settings import GatewaySettings
from imgsearch.dupes.hashes import probes
from imgsearch.dupes.match import Limits, Stored, compare, stored
from imgsearch.dupes.signature import signature
from imgsearch.engine_config import EngineConfig, PhashSpec
from imgsearch.errors import EmbedderMismatch
from imgsearch.images import ImageLimits, decode_image
from indexer.runner import IndexOptions, index_feed
from tests.integration.test_indexer_lifecycle import FAST, SETTINGS, engine

pytestmark = pytest.mark.integration

SPEC = PhashSpec()


def limits(max_distance: int) -> Limits:
    return Limits(max_distance, SPEC.min_similarity, SPEC.max_colour_difference)


def _jpeg(image: Image.Image, scale: float, quality: int) -> bytes:
    small = image.resize((int(image.width * scale), int(image.height * scale)))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _open(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def _cropped(
    image: Image.Image, left: float, top: float, right: float, bottom: float
) -> Image.Image:
    w, h = image.size
    return image.crop((int(left * w), int(top * h), w - int(right * w), h - int(bottom * h)))


@pytest.fixture(scope="module")
def catalog(
    os_client: OpenSearch, clothing_dataset: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """Validation shoes plus copies of two of them (re-listed by other sellers)."""
    tmp = tmp_path_factory.mktemp("dupes")
    shoes = sorted((clothing_dataset / "validation" / "shoes").glob("*.jpg"))
    first, second = _open(shoes[3]), _open(shoes[7])
    copies = {
        "relisted-copy": _jpeg(first, 0.6, 45),
        "cropped-copy": _png(_cropped(first, 0.05, 0.0, 0.02, 0.04)),
        "framed-copy": _png(ImageOps.expand(first, border=30, fill=(255, 255, 255))),
        "mirrored-copy": _png(ImageOps.mirror(second)),
    }
    rows = [{"id": p.stem, "image": str(p), "category": "shoes"} for p in shoes]
    for name, data in copies.items():
        (tmp / f"{name}.img").write_bytes(data)
        rows.append({"id": name, "image": str(tmp / f"{name}.img"), "category": "copies"})
    feed = tmp / "feed.jsonl"
    feed.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    alias = f"t-dupes-{tmp.name[-6:].lower()}"
    config = engine(alias, FAST)
    assert index_feed(feed, config, os_client, IndexOptions(pipeline=SETTINGS)).ok
    hits = os_client.search(index=alias, body={"size": 1000, "_source": ["id", "phash"]})
    stored_items = {h["_source"]["id"]: stored(h["_source"]["phash"]) for h in hits["hits"]["hits"]}
    assert len(stored_items) == len(rows)
    yield config, stored_items, shoes, tmp
    os_client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)


def reference(
    image: bytes, items: dict[str, Stored], max_distance: int = SPEC.max_distance
) -> list[tuple[int, str]]:
    """The detector, by brute force: every stored item compared with the query."""
    sig = signature(decode_image(image, ImageLimits()))
    query_probes = probes(sig)
    found = []
    for item_id, item in items.items():
        match = compare(sig, query_probes, item, limits(max_distance))
        if match is not None and match.near(limits(max_distance)):
            found.append((match.distance, item_id))
    return sorted(found)


def run(opensearch_url: str, config: EngineConfig, call: Callable[..., Any], **kwargs: Any) -> Any:
    """A neutral-service operation, as every dialect (and the CLI) calls it."""
    service = CatalogService.create(
        GatewaySettings(opensearch_url=opensearch_url), {config.hashid: config}
    )
    try:
        engine_ = service.engine(config.hashid)
        return anyio.run(partial(call(service), engine_, **kwargs))
    finally:
        service.close()


def near(
    opensearch_url: str, config: EngineConfig, query: Any, **kwargs: Any
) -> list[tuple[int, str]]:
    found: tuple[NearDuplicate, ...] = run(
        opensearch_url, config, lambda s: s.near_duplicates, query=query, size=50, **kwargs
    )
    return [(d.distance, d.id) for d in found]


def test_near_duplicates_match_the_detector_run_on_every_item(
    catalog: Any, opensearch_url: str, clothing_dataset: Path
) -> None:
    config, items, shoes, _ = catalog
    first = _open(shoes[3])
    queries = {
        "the indexed photo": shoes[3].read_bytes(),
        "never indexed: brighter, cropped": _png(
            _cropped(ImageEnhance.Brightness(first).enhance(1.15), 0.0, 0.05, 0.05, 0.0)
        ),
        "never indexed: mirrored": _png(ImageOps.mirror(first)),
        "the mirrored copy's original": shoes[7].read_bytes(),
        "an unrelated photo": sorted((clothing_dataset / "validation" / "hat").glob("*.jpg"))[
            0
        ].read_bytes(),
    }
    for name, data in queries.items():
        found = near(opensearch_url, config, ImageQuery(data))
        assert found == reference(data, items), name
    found = {
        item
        for _, item in near(opensearch_url, config, ImageQuery(queries["never indexed: mirrored"]))
    }
    assert {shoes[3].stem, "relisted-copy", "cropped-copy", "framed-copy"} <= found
    assert "mirrored-copy" in {
        i
        for _, i in near(
            opensearch_url, config, ImageQuery(queries["the mirrored copy's original"])
        )
    }
    assert near(opensearch_url, config, ImageQuery(queries["an unrelated photo"])) == []
    # A radius given by the caller overrides the engine's.
    tight = near(opensearch_url, config, ImageQuery(queries["the indexed photo"]), max_distance=0)
    assert tight == reference(queries["the indexed photo"], items, max_distance=0)


def test_an_indexed_item_as_the_query_leaves_itself_out(catalog: Any, opensearch_url: str) -> None:
    config, items, shoes, _ = catalog
    query = ItemQuery("id", shoes[3].stem, exclude_self=True)
    found = near(opensearch_url, config, query)
    expected = [hit for hit in reference(shoes[3].read_bytes(), items) if hit[1] != shoes[3].stem]
    assert [i for _, i in found] == [i for _, i in expected] and found


def test_the_script_finds_exactly_the_items_within_the_radius(
    os_client: OpenSearch, index_name: Callable[[str], str]
) -> None:
    index = index_name("script")
    hashes = {"centre": {"type": "long"}, "whole": {"type": "long"}}
    os_client.indices.create(
        index=index,
        body={"mappings": {"properties": {"id": {"type": "keyword"}, "p": {"properties": hashes}}}},
    )
    rng = random.Random(3)
    values = [0, 5, -1, 2**40 + 3, -(2**63), 2**63 - 1, 12345678901234]
    values += [rng.getrandbits(64) - 2**63 for _ in range(7)]
    stored = {str(n): (value, values[-1 - n]) for n, value in enumerate(values)}
    for item_id, (centre, whole) in stored.items():
        body = {"id": item_id, "p": {"centre": centre, "whole": whole}}
        os_client.index(index=index, id=item_id, body=body)
    os_client.index(index=index, id="none", body={"id": "none"})  # no signature: never a hit
    os_client.indices.refresh(index=index)
    query = [4, 7, -2, 2**40, values[9] ^ 0b111]  # small values travel as JSON ints
    bits = {
        item_id: min(((v ^ q) & (2**64 - 1)).bit_count() for q in query for v in pair)
        for item_id, pair in stored.items()
    }
    for radius in (0, 2, 3, 40):
        body = near_duplicates_body("p", query, size=20, max_distance=radius)
        got = read_near_duplicate_candidates(os_client.search(index=index, body=body), "p")
        expected = sorted((b, i) for i, b in bits.items() if b <= radius)
        assert [(b, i) for i, b, _ in got] == expected


def test_all_pairs_and_the_cli(catalog: Any, opensearch_url: str) -> None:
    config, items, shoes, tmp = catalog
    pairs = run(opensearch_url, config, lambda s: s.near_duplicate_pairs)
    expected: dict[tuple[str, str], int] = {}
    for a, item_a in items.items():
        query = item_a.signature
        query_probes = probes(query)
        for b, item_b in items.items():
            match = compare(query, query_probes, item_b, limits(SPEC.pairs_max_distance))
            if a != b and match is not None and match.near(limits(SPEC.pairs_max_distance)):
                key = (min(a, b), max(a, b))
                expected[key] = min(expected.get(key, 64), match.distance)
    assert {(a, b): d for a, b, d in pairs} == expected
    assert {(shoes[3].stem, "relisted-copy"), ("cropped-copy", "framed-copy")} <= set(expected)

    engine_file = tmp / "engine.json"
    engine_file.write_text(config.model_dump_json())
    out = tmp / "pairs.jsonl"
    command = [sys.executable, "-m", "imgsearch.cli", "duplicates", "--engine", str(engine_file)]
    cli = subprocess.run(
        [*command, "--all", "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(*line["pair"], line["distance"]) for line in lines if "pair" in line] == [
        tuple(p) for p in pairs
    ]
    assert [line["group"] for line in lines if "group" in line] == groups(pairs)
    assert lines[-1]["summary"]["pairs"] == len(pairs) and lines[-1]["summary"]["items"] == len(
        items
    )
    assert "looking up probes" in cli.stderr and "100.0%" in cli.stderr

    cli = subprocess.run(
        [*command, str(tmp / "relisted-copy.img")], capture_output=True, text=True, timeout=60
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    listed = [line.split() for line in cli.stdout.splitlines()]
    expected_cli = reference((tmp / "relisted-copy.img").read_bytes(), items)
    assert [[str(d), i] for d, i in expected_cli] == listed and ["0", "relisted-copy"] in listed


def test_an_index_written_by_phash_v1_is_refused(
    os_client: OpenSearch, index_name: Callable[[str], str], opensearch_url: str
) -> None:
    alias = index_name("v1")
    meta = {
        "vectors": {
            "phash": {
                "embedder": "phash",
                "version": "dct-phash-32x32-8x8/v1",
                "dim": 64,
                "storage": "hamming_long",
            }
        }
    }
    os_client.indices.create(
        index=f"{alias}_v1",
        body={
            "mappings": {"_meta": meta, "properties": {"phash": {"type": "long"}}},
            "aliases": {alias: {}},
        },
    )
    config = EngineConfig.model_validate(
        {
            "hashid": alias,
            "alias": alias,
            "vectors": {"phash": {"embedder": "phash"}},
            "gateway": {"image_search": False},
        }
    )
    with pytest.raises(EmbedderMismatch, match=r"v1.*Rebuild the index"):
        near(opensearch_url, config, ImageQuery(_png(Image.new("RGB", (40, 40), (9, 9, 9)))))
