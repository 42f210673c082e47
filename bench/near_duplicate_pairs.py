"""All near-duplicate pairs of a big catalog: time and memory, and the OpenSearch side.

``imgsearch duplicates --all`` reads every stored signature, looks each photo's 162 probes
up among all stored hashes (``gateway.search.dupe_pairs``, a pigeonhole join: no n² scan)
and runs the second stage on the pairs found. This measures that computation on ``--items``
synthetic signatures (smooth random thumbnails, so their hashes are spread like photos'),
1 % of them planted as cropped or mirrored copies of another, at each radius of ``--radii``:
wall time per phase and the peak memory of the process. With ``--index-docs`` N it also
indexes N of the signatures into OpenSearch and measures the two steps that run there:
reading all signatures (the scan ``--all`` starts with) and one near-duplicate query (the
painless script over every document); both are linear in the catalog, so 100k is
extrapolated from N. Run on an otherwise idle machine::

    python bench/near_duplicate_pairs.py                       # 100k items, radii 3 and 4
    python bench/near_duplicate_pairs.py --items 20000 --radii 3 4 5 --index-docs 0
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, node_url  # noqa: E402
from gateway.search.dsl import near_duplicates_body  # noqa: E402
from gateway.search.dupe_pairs import near_duplicate_pairs  # noqa: E402
from imgsearch.dupes.hashes import area_matrix, probes, stored_hashes  # noqa: E402
from imgsearch.dupes.match import Limits, Stored  # noqa: E402
from imgsearch.dupes.signature import COLOUR_SIDE, SIDE, Signature, to_text  # noqa: E402
from imgsearch.engine_config import PhashSpec  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402

SPEC = PhashSpec()
BLOCK = 4096


def smooth(rng: np.random.Generator, n: int, side: int, channels: int) -> npt.NDArray[np.uint8]:
    """``n`` random images: coarse blobs plus finer texture, upsampled by area."""
    out = np.zeros((n, channels, side, side))
    for cells, weight in ((6, 1.0), (16, 0.5), (32, 0.25)):
        up = area_matrix(side, cells, 0, 1)
        out += weight * (up @ rng.normal(size=(n, channels, cells, cells)) @ up.T)
    scaled = 128 + 40 * out / out.std(axis=(1, 2, 3), keepdims=True)
    return np.clip(scaled, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def copy_of(original: Signature, rng: random.Random) -> Signature:
    """The original cropped by 0-5 % per side (resampled to size), mirrored half the time."""
    x0, y0, x1, y1 = (rng.uniform(0, 0.05) for _ in range(4))
    mirrored = rng.random() < 0.5

    def crop(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        side = image.shape[0]
        rows, cols = area_matrix(side, side, y0, 1 - y1), area_matrix(side, side, x0, 1 - x1)
        out = np.einsum("ij,jk...,lk->il...", rows, image.astype(float), cols)
        out = out[:, ::-1] if mirrored else out
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    return Signature(crop(original.thumb), crop(original.colour))


def catalog(items: int, seed: int) -> tuple[list[Stored], list[tuple[int, int]]]:
    """Synthetic stored signatures, the last 1 % copies of others; the (original, copy) pairs."""
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    copies = items // 100
    out: list[Stored] = []
    for start in range(0, items - copies, BLOCK):
        n = min(BLOCK, items - copies - start)
        grey, colour = smooth(rng, n, SIDE, 1)[..., 0], smooth(rng, n, COLOUR_SIDE, 3)
        out += [Signature(g, c) for g, c in zip(grey, colour, strict=True)]
    planted = [(pick.randrange(len(out)), len(out) + k) for k in range(copies)]
    out += [copy_of(out[original], pick) for original, _ in planted]
    stored = []
    for start in range(0, items, BLOCK):
        block = out[start : start + BLOCK]
        hashes = stored_hashes(np.stack([s.thumb for s in block]))
        stored += [Stored((int(h[0]), int(h[1])), s) for h, s in zip(hashes, block, strict=True)]
    return stored, planted


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def opensearch_side(items: list[Stored], docs: int) -> dict[str, float]:
    """Seconds to scan ``docs`` stored signatures and to run one near-duplicate query."""
    from opensearchpy import helpers

    client = make_client(node_url(), timeout_s=300)
    index = "bench-near-duplicate-pairs"
    client.indices.delete(index=index, ignore_unavailable=True)
    mapping = {
        "id": {"type": "keyword"},
        "phash": {
            "properties": {
                "centre": {"type": "long"},
                "whole": {"type": "long"},
                "thumb": {"type": "binary"},
            }
        },
    }
    client.indices.create(
        index=index,
        body={
            "settings": {"number_of_shards": 1, "refresh_interval": -1},
            "mappings": {"properties": mapping},
        },
    )
    actions = (
        {"_index": index, "_id": str(n), "_source": {"id": f"{n:08d}", "phash": _value(item)}}
        for n, item in enumerate(items[:docs])
    )
    helpers.bulk(client, actions, chunk_size=500)
    client.indices.refresh(index=index)
    client.indices.forcemerge(index=index, max_num_segments=1)
    started = time.perf_counter()
    after: list[str] | None = None
    read = 0
    while True:
        body: dict[str, Any] = {"size": 2000, "sort": [{"id": "asc"}], "_source": ["id", "phash"]}
        if after:
            body["search_after"] = after
        hits = client.search(index=index, body=body)["hits"]["hits"]
        read += len(hits)
        if len(hits) < 2000:
            break
        after = hits[-1]["sort"]
    scan = time.perf_counter() - started
    query = [p.value for p in probes(items[docs // 2].signature)]
    body = near_duplicates_body("phash", query, size=100, max_distance=SPEC.max_distance)
    client.search(index=index, body=body)  # warm up
    took = []
    for _ in range(5):
        started = time.perf_counter()
        client.search(index=index, body=body)
        took.append(time.perf_counter() - started)
    client.indices.delete(index=index)
    return {"docs": read, "scan_s": scan, "query_s": float(np.median(took)), "probes": len(query)}


def _value(item: Stored) -> dict[str, Any]:
    return {"centre": item.hashes[0], "whole": item.hashes[1], "thumb": to_text(item.signature)}


class Phases:
    """Seconds spent per phase, from the search's progress calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.totals: dict[str, int] = {}
        self._last = time.perf_counter()

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self._last
        self._last = now
        self.totals[phase] = total


def search(items: list[Stored], planted: list[tuple[int, int]], radius: int) -> list[str]:
    """One all-pairs search at ``radius``: the cells of its table row."""
    phases = Phases()
    began = time.perf_counter()
    limits = Limits(radius, SPEC.min_similarity, SPEC.max_colour_difference)
    pairs = near_duplicate_pairs(items, limits, phases)
    total = time.perf_counter() - began
    found = {(a, b) for a, b, _ in pairs}
    recall = sum(pair in found for pair in planted) / max(len(planted), 1)
    print(f"radius {radius}: {total:.0f} s", file=sys.stderr)
    return [
        str(radius),
        f"{total:.1f}",
        f"{phases.seconds['probes']:.1f}",
        f"{phases.seconds['verify']:.1f}",
        f"{phases.totals.get('verify', 0):,}",
        f"{len(pairs):,}",
        f"{recall:.3f}",
        f"{rss_mib():.0f}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--radii", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--index-docs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    items, planted = catalog(args.items, args.seed)
    made = time.perf_counter() - started
    baseline = rss_mib()
    print(f"{len(items)} signatures in {made:.0f} s, {baseline:.0f} MiB", file=sys.stderr)

    rows = [search(items, planted, radius) for radius in args.radii]

    side = opensearch_side(items, args.index_docs) if args.index_docs else None

    print(f"## All near-duplicate pairs ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- Command: `python bench/near_duplicate_pairs.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Machine: {machine()}")
    print(
        f"- {len(items):,} synthetic signatures ({len(planted):,} planted crops/mirrors of "
        "others), "
        f"made in {made:.0f} s; the process held {baseline:.0f} MiB before the search\n"
    )
    print(
        "| radius (bits) | total s | probes + join s | second stage s | candidate pairs | pairs "
        "| planted pairs found | peak RSS MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if side is not None:
        scale = args.items / side["docs"]
        print(
            f"\nOpenSearch, {side['docs']:,} documents: reading every signature "
            f"{side['scan_s']:.1f} s (x{scale:.0f} = {side['scan_s'] * scale:.0f} s for "
            f"{args.items:,}); one near-duplicate query ({side['probes']:.0f} probes, painless "
            f"over every document) {side['query_s'] * 1e3:.0f} ms at p50 (x{scale:.0f} = "
            f"{side['query_s'] * scale * 1e3:.0f} ms)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
