"""Near pairs without an n² scan: the pigeonhole join and the all-pairs search = brute force."""

from __future__ import annotations

import io
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

import gateway.search.hamming_pairs as hamming_pairs
from gateway.search.dupe_pairs import groups, near_duplicate_pairs
from gateway.search.hamming_pairs import ChunkIndex, fewest_bits
from imgsearch.dupes.hashes import probes, stored_hashes
from imgsearch.dupes.match import Limits, Stored, compare
from imgsearch.dupes.signature import signature
from imgsearch.engine_config import PhashSpec
from imgsearch.images import ImageLimits, decode_image

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"


def bits(a: int, b: int) -> int:
    return ((a ^ b) & (2**64 - 1)).bit_count()


def flipped(value: int, count: int, rng: random.Random) -> int:
    value &= 2**64 - 1
    for bit in rng.sample(range(64), count):
        value ^= 1 << bit
    return signed(value)


def signed(value: int) -> int:
    value &= 2**64 - 1
    return value - 2**64 if value >= 2**63 else value


@pytest.mark.parametrize("max_bits", [0, 1, 3, 5, 6, 10, 20])
def test_chunk_index_equals_brute_force(max_bits: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hamming_pairs, "STEP_PAIRS", 50)  # many small steps, as on big catalogs
    rng = random.Random(max_bits)
    hashes = [signed(rng.getrandbits(64)) for _ in range(120)]
    probes = [flipped(h, rng.randint(0, 12), rng) for h in hashes[:70]]
    probes += [signed(rng.getrandbits(64)) for _ in range(30)] + [hashes[0], hashes[0]]
    index = ChunkIndex(hashes, max_bits)
    probe, target, distance = index.near(probes)
    got = set(zip(probe.tolist(), target.tolist(), distance.tolist(), strict=True))
    expected = {
        (i, j, bits(p, h))
        for (i, p), (j, h) in itertools.product(enumerate(probes), enumerate(hashes))
        if bits(p, h) <= max_bits
    }
    assert got == expected
    assert any(d <= max_bits for _, _, d in expected), "the planted copies make some pairs"


def test_chunk_index_edges() -> None:
    empty = ChunkIndex([], 5).near([1, 2])
    assert [len(part) for part in empty] == [0, 0, 0]
    assert [len(part) for part in ChunkIndex([1, 2], 5).near([])] == [0, 0, 0]
    with pytest.raises(ValueError):
        ChunkIndex([1, 2], -1)


def test_fewest_bits_keeps_one_row_per_pair() -> None:
    a, b, d = np.array([3, 1, 3, 1, 2]), np.array([4, 2, 4, 2, 0]), np.array([5, 2, 1, 2, 1])
    rows = fewest_bits(a, b, d)
    assert rows.tolist() == [[2, 0, 1], [3, 4, 1], [1, 2, 2]]
    assert fewest_bits(a[:0], b[:0], d[:0]).shape == (0, 3)


def copies(photo: Image.Image) -> list[Image.Image]:
    out = io.BytesIO()
    photo.resize((photo.width // 2, photo.height // 2)).save(out, "JPEG", quality=40)
    w, h = photo.size
    return [
        decode_image(out.getvalue(), ImageLimits()),
        photo.crop((w // 20, h // 20, w, h)),
        ImageOps.mirror(photo),
        ImageOps.expand(photo, border=w // 16, fill=(255, 255, 255)),
    ]


def test_all_pairs_equal_every_comparison(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("gateway.search.dupe_pairs.BLOCK", 7)  # several probe blocks
    paths = sorted(DATASET.glob("*/*.jpg"))[3::41][:8]
    photos = [decode_image(path.read_bytes(), ImageLimits()) for path in paths]
    images = photos + copies(photos[0]) + copies(photos[1])[:2]
    signatures = [signature(image) for image in images]
    hashes = stored_hashes(np.stack([sig.thumb for sig in signatures]))
    items = [Stored((int(h[0]), int(h[1])), sig) for h, sig in zip(hashes, signatures, strict=True)]
    seen: list[tuple[str, int, int]] = []
    spec = PhashSpec()
    limits = Limits(6, spec.min_similarity, spec.max_colour_difference)
    found = near_duplicate_pairs(
        items, limits, lambda phase, done, total: seen.append((phase, done, total))
    )
    expected: dict[tuple[int, int], int] = {}
    for i, j in itertools.permutations(range(len(images)), 2):
        query = items[i].signature
        match = compare(query, probes(query), items[j], limits)
        if match is not None and match.near(limits):
            pair = (min(i, j), max(i, j))
            expected[pair] = min(expected.get(pair, 64), match.distance)
    assert found == sorted(((a, b, d) for (a, b), d in expected.items()), key=lambda p: (p[2], p))
    planted = {(0, j) for j in range(8, 12)} | {(1, 12), (1, 13)}
    assert planted <= {(a, b) for a, b, _ in found}
    assert ("probes", len(images), len(images)) in seen and seen[-1][0] == "verify"
    tight = Limits(0, spec.min_similarity, spec.max_colour_difference)
    assert near_duplicate_pairs(items[:2], tight) == []
    assert near_duplicate_pairs([], limits) == []


def test_groups_are_connected_components() -> None:
    pairs = [("b", "a", 1), ("c", "b", 2), ("x", "y", 0), ("d", "e", 3), ("e", "f", 3)]
    assert groups(pairs) == [["a", "b", "c"], ["d", "e", "f"], ["x", "y"]]
    assert groups([]) == []
