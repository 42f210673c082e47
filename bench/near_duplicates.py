"""Near-duplicate detection quality: recall per transform and false matches, methods side by side.

The catalog is the clothing ``train/`` photos, each reduced to what the ``phash`` embedder
stores (``PhashEmbedder.field_value``) plus, for the other methods, its classic 64-bit pHash
and its colour descriptor. In the same run:

* **positives**: ``--positives`` catalog photos (fixed seed), each transformed the ways
  sellers re-list a photo (half size, JPEG q40, crops of 0-5 % per side and of 5 % on every
  side, 15 % brighter or darker, mirrored, a 3-8 % border of a random colour) and queried
  against the catalog: recall is the share whose original is matched;
* **negatives**: every ``validation/`` photo (never indexed): a query matching anything is a
  false match (as is a positive matching another photo than its original);
* **methods**: the classic pHash of the whole photo within 6 and 10 bits (the v1 method);
  several hashes (whole photo, content inside its frame, mirror) within 8 bits; the aligned
  probes of ``imgsearch.dupes`` alone; the probes with the colour descriptor as second stage
  (cosine threshold at the positives' 1st percentile, its best shot at 99 % recall); the
  probes with the detail check (the engine's defaults: the method ``imgsearch`` uses);
* **all pairs**: the catalog plus ``--planted`` copies per transform, searched for every pair
  (``gateway.search.dupe_pairs``, the engine's ``pairs_max_distance``) beside the v1 pairs
  within 6 bits: recall of the planted (copy, original) pairs and pairs between unrelated
  photos.

Everything runs in this process on the same pure functions the service uses (the search in
OpenSearch is exact and tested equal to them in ``tests/integration/test_near_duplicates.py``)::

    python bench/near_duplicates.py                 # ~10 min on 2 cores
    python bench/near_duplicates.py --positives 100 --planted 25
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageEnhance, ImageOps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402
from gateway.search.dupe_pairs import near_duplicate_pairs  # noqa: E402
from gateway.search.hamming_pairs import ChunkIndex, fewest_bits  # noqa: E402
from imgsearch.dupes.hashes import probes, stored_hashes  # noqa: E402
from imgsearch.dupes.match import Limits, Match, Stored, compare, stored  # noqa: E402
from imgsearch.dupes.signature import Signature  # noqa: E402
from imgsearch.embedders.color import ColorEmbedder  # noqa: E402
from imgsearch.embedders.phash import PhashEmbedder, bits_to_long, phash_bits  # noqa: E402
from imgsearch.engine_config import PhashSpec  # noqa: E402
from imgsearch.images import ImageLimits, decode_image  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing"
SPEC = PhashSpec()
SEVERAL_BITS = 8
Transform = Callable[[Image.Image, random.Random], Image.Image]


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return decode_image(out.getvalue(), ImageLimits())


def _crop(image: Image.Image, sides: tuple[float, float, float, float]) -> Image.Image:
    w, h = image.size
    left, top, right, bottom = sides
    box = (left * w, top * h, w - right * w, h - bottom * h)
    return image.crop(tuple(round(v) for v in box))


def _border(image: Image.Image, rng: random.Random) -> Image.Image:
    width = round(rng.uniform(0.03, 0.08) * max(image.size))
    colour = rng.choice([(255, 255, 255), (0, 0, 0), (128, 128, 128), (200, 30, 30)])
    return ImageOps.expand(image, border=width, fill=colour)


TRANSFORMS: dict[str, Transform] = {
    "half size": lambda im, rng: im.resize((im.width // 2, im.height // 2)),
    "JPEG q40": lambda im, rng: _jpeg(im, 40),
    "crop 0-5 % per side": lambda im, rng: _crop(im, tuple(rng.uniform(0, 0.05) for _ in "ltrb")),  # type: ignore[arg-type]
    "crop 5 % every side": lambda im, rng: _crop(im, (0.05, 0.05, 0.05, 0.05)),
    "15 % brighter": lambda im, rng: ImageEnhance.Brightness(im).enhance(1.15),
    "15 % darker": lambda im, rng: ImageEnhance.Brightness(im).enhance(0.85),
    "mirrored": lambda im, rng: ImageOps.mirror(im),
    "border 3-8 %": _border,
}
LIMITS = Limits(SPEC.max_distance, SPEC.min_similarity, SPEC.max_colour_difference)
DETAILS_ONLY = Limits(SPEC.max_distance, SPEC.min_similarity, 2.0)
METHODS = [
    "v1 pHash <= 6",
    "v1 pHash <= 10",
    f"several hashes <= {SEVERAL_BITS}",
    f"aligned probes <= {SPEC.max_distance}",
    "probes + colour descriptor",
    "probes + details",
    "probes + details + colours (chosen)",
]


@dataclass
class Photo:
    """What every method keeps of one photo."""

    sig: Signature
    item: Stored
    v1: tuple[int, int]  # classic pHash of the photo and of its mirror image
    colour: npt.NDArray[np.float32]


def describe(image: Image.Image, embedder: PhashEmbedder, colour: ColorEmbedder) -> Photo:
    row = embedder.embed_images([image])[0]
    item = stored(embedder.field_value(row))
    v1 = phash_bits([image, ImageOps.mirror(image)])
    vector = colour.embed_images([image])[0]
    return Photo(item.signature, item, (bits_to_long(v1[0]), bits_to_long(v1[1])), vector)


@dataclass
class Catalog:
    photos: list[Photo]
    v1: npt.NDArray[np.int64] = field(init=False)
    several: npt.NDArray[np.int64] = field(init=False)
    hashes: npt.NDArray[np.int64] = field(init=False)
    colours: npt.NDArray[np.float32] = field(init=False)

    def __post_init__(self) -> None:
        self.v1 = np.array([p.v1[0] for p in self.photos], dtype=np.int64)
        self.several = np.array([p.item.hashes[1] for p in self.photos], dtype=np.int64)
        self.hashes = np.array([p.item.hashes for p in self.photos], dtype=np.int64)
        self.colours = np.stack([p.colour for p in self.photos])


def matches(
    query: Photo, catalog: Catalog, colour_min: float, stages: dict[int, Match]
) -> dict[str, set[int]]:
    """The catalog items each method matches for one query; ``stages`` gets the chosen
    method's second-stage measures of every candidate."""

    def popcount(values: npt.NDArray[np.int64], value: int) -> npt.NDArray[np.int64]:
        return np.bitwise_count(values ^ np.int64(value)).astype(np.int64)

    v1 = popcount(catalog.v1, query.v1[0])
    mirrored_whole = int(stored_hashes(np.ascontiguousarray(query.sig.thumb[None, :, ::-1]))[0, 1])
    several = np.minimum.reduce(
        [
            v1,
            popcount(catalog.v1, query.v1[1]),
            popcount(catalog.several, query.item.hashes[1]),
            popcount(catalog.several, mirrored_whole),
        ]
    )
    query_probes = probes(query.sig)
    values = np.array([p.value for p in query_probes], dtype=np.int64)
    aligned = np.bitwise_count(values[:, None, None] ^ catalog.hashes[None]).min(axis=(0, 2))
    candidates = np.flatnonzero(aligned <= SPEC.max_distance)
    colour = catalog.colours[candidates] @ query.colour
    verified: tuple[set[int], set[int]] = (set(), set())
    for j in candidates.tolist():
        for found, limits in zip(verified, (DETAILS_ONLY, LIMITS), strict=True):
            match = compare(query.sig, query_probes, catalog.photos[j].item, limits)
            if match is not None and match.near(limits):
                found.add(j)
        if match is not None:
            stages[j] = match
    return {
        METHODS[0]: set(np.flatnonzero(v1 <= 6).tolist()),
        METHODS[1]: set(np.flatnonzero(v1 <= 10).tolist()),
        METHODS[2]: set(np.flatnonzero(several <= SEVERAL_BITS).tolist()),
        METHODS[3]: set(candidates.tolist()),
        METHODS[4]: set(candidates[colour >= colour_min].tolist()),
        METHODS[5]: verified[0],
        METHODS[6]: verified[1],
    }


def margins(copies: list[Match], others: list[Match]) -> str:
    """How far the second-stage thresholds sit from copies and from other photos."""
    sims = np.array([m.similarity for m in copies])
    colours = np.array([m.colour_difference for m in copies])
    similar = [m.colour_difference for m in others if m.similarity >= SPEC.min_similarity]
    alike = [m.similarity for m in others if m.colour_difference <= SPEC.max_colour_difference]
    return (
        f"Second stage. Copies (positives within {SPEC.max_distance} bits of their original, "
        f"{len(copies)}): detail correlation min {sims.min():.3f} (1st percentile "
        f"{np.percentile(sims, 1):.3f}), colour difference max {colours.max():.3f} (99th "
        f"percentile {np.percentile(colours, 99):.3f}). Other photos within "
        f"{SPEC.max_distance} bits of a query ({len(others)}): {len(similar)} correlate by >= "
        f"{SPEC.min_similarity}, their smallest colour difference "
        f"{min(similar, default=float('nan')):.3f}; {len(alike)} differ in colour by <= "
        f"{SPEC.max_colour_difference}, their highest correlation "
        f"{max(alike, default=float('nan')):.3f}."
    )


def load(path: Path) -> Image.Image:
    return decode_image(path.read_bytes(), ImageLimits())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--positives", type=int, default=400, help="photos per transform")
    parser.add_argument("--planted", type=int, default=100, help="all-pairs copies per transform")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    embedder, colour = PhashEmbedder(), ColorEmbedder()
    train = sorted(DATASET.glob("train/*/*.jpg"))
    validation = sorted(DATASET.glob("validation/*/*.jpg"))
    began = time.perf_counter()
    catalog = Catalog([describe(load(p), embedder, colour) for p in train])
    print(
        f"catalog of {len(train)} described in {time.perf_counter() - began:.0f} s", file=sys.stderr
    )

    chosen = sorted(random.Random(args.seed).sample(range(len(train)), args.positives))
    positives: dict[str, list[tuple[int, Photo]]] = {}
    for name, transform in TRANSFORMS.items():
        rng = random.Random(f"{args.seed}:{name}")
        positives[name] = [
            (i, describe(transform(load(train[i]), rng), embedder, colour)) for i in chosen
        ]
    negatives = [describe(load(p), embedder, colour) for p in validation]
    print(f"queries described at {time.perf_counter() - began:.0f} s", file=sys.stderr)

    # The colour second stage at its best shot at 99 % recall: the positives' 1st percentile.
    cosines = [float(q.colour @ catalog.colours[i]) for rows in positives.values() for i, q in rows]
    colour_min = float(np.percentile(cosines, 1))

    found = {m: {name: 0 for name in TRANSFORMS} for m in METHODS}
    wrong = dict.fromkeys(METHODS, 0)
    copies: list[Match] = []  # second stage of each positive against its original
    others: list[Match] = []  # and of every candidate that is another photo
    timing = time.perf_counter()
    for name, rows in positives.items():
        for i, query in rows:
            stages: dict[int, Match] = {}
            for method, items in matches(query, catalog, colour_min, stages).items():
                found[method][name] += i in items
                wrong[method] += len(items - {i})
            copies += [stages[i]] if i in stages else []
            others += [m for j, m in stages.items() if j != i]
    per_query_ms = (time.perf_counter() - timing) / sum(len(r) for r in positives.values()) * 1e3
    false_queries = dict.fromkeys(METHODS, 0)
    false_pairs = dict.fromkeys(METHODS, 0)
    for query in negatives:
        stages = {}
        for method, items in matches(query, catalog, colour_min, stages).items():
            false_queries[method] += bool(items)
            false_pairs[method] += len(items)
        others += stages.values()
    print(f"queries done at {time.perf_counter() - began:.0f} s", file=sys.stderr)

    pairs_table = all_pairs(catalog, positives, args.planted)
    print(f"all pairs done at {time.perf_counter() - began:.0f} s", file=sys.stderr)

    print(f"## Near-duplicates ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- Command: `python bench/near_duplicates.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Machine: {machine()}")
    print(f"- Catalog: {len(train)} clothing train photos; positives: {args.positives} of them")
    print(f"  per transform; negatives: {len(validation)} validation photos (never indexed)")
    print(
        f"- Engine defaults: max_distance {SPEC.max_distance} bits, min_similarity "
        f"{SPEC.min_similarity}, max_colour_difference {SPEC.max_colour_difference}, "
        f"pairs_max_distance {SPEC.pairs_max_distance}; colour descriptor second stage: "
        f"cosine >= {colour_min:.3f}\n"
    )
    print("| recall | " + " | ".join(METHODS) + " |")
    print("|---|" + "---:|" * len(METHODS))
    for name in TRANSFORMS:
        cells = [f"{found[m][name] / args.positives:.3f}" for m in METHODS]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        f"| **negatives matching anything** (of {len(negatives)}) | "
        + " | ".join(str(false_queries[m]) for m in METHODS)
        + " |"
    )
    print(
        "| false pairs from negatives | " + " | ".join(str(false_pairs[m]) for m in METHODS) + " |"
    )
    print(
        "| other photos matched by positives | " + " | ".join(str(wrong[m]) for m in METHODS) + " |"
    )
    print(f"\nAll methods, one query against {len(train)} photos: {per_query_ms:.0f} ms")
    print("(describing the query excluded; the detail check dominates).\n")
    print(margins(copies, others) + "\n")
    print(pairs_table)
    return 0


def all_pairs(catalog: Catalog, positives: dict[str, list[tuple[int, Photo]]], planted: int) -> str:
    """Every pair of the catalog plus planted copies (v2 at the all-pairs and the query radius),
    beside the v1 pairs within 6 bits."""
    photos = list(catalog.photos)
    origin = list(range(len(photos)))  # which catalog photo each item is a copy of
    kinds: list[str | None] = [None] * len(photos)
    for name, rows in positives.items():
        for i, query in rows[:planted]:
            photos.append(query)
            origin.append(i)
            kinds.append(name)
    items = [photo.item for photo in photos]
    found: dict[str, set[tuple[int, int]]] = {}
    notes = []
    for radius in sorted({3, SPEC.pairs_max_distance, SPEC.max_distance}):
        started = time.perf_counter()
        limits = Limits(radius, SPEC.min_similarity, SPEC.max_colour_difference)
        pairs = near_duplicate_pairs(items, limits)
        label = f"v2 <= {radius} bits"
        found[label] = {(a, b) for a, b, _ in pairs}
        notes.append(f"{label}: {len(pairs)} pairs in {time.perf_counter() - started:.1f} s")
    v1 = np.array([p.v1[0] for p in photos], dtype=np.int64)
    probe, target, bits = ChunkIndex(v1, 6).near(v1)
    rows = fewest_bits(probe, target, bits)
    found["v1 pHash <= 6"] = {(min(a, b), max(a, b)) for a, b, _ in rows.tolist() if a != b}
    out = [
        f"All pairs of {len(photos)} photos ({len(catalog.photos)} + {planted} planted copies "
        f"per transform); {'; '.join(notes)}.\n",
        "| all pairs: recall | " + " | ".join(found) + " |",
        "|---|" + "---:|" * len(found),
    ]
    for name in positives:
        wanted = {
            (origin[k], k) for k in range(len(catalog.photos), len(photos)) if kinds[k] == name
        }
        cells = [
            f"{sum(pair in got for pair in wanted) / len(wanted):.3f}" for got in found.values()
        ]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    unrelated = [str(sum(origin[a] != origin[b] for a, b in got)) for got in found.values()]
    out.append("| pairs of different photos | " + " | ".join(unrelated) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
