"""Near pairs of 64-bit hashes: the pigeonhole search equals the brute-force n² scan."""

from __future__ import annotations

import random

import pytest

from gateway.search.hamming_pairs import near_pairs


def brute_force(hashes: list[int], max_bits: int) -> list[tuple[int, int, int]]:
    out = []
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            distance = ((hashes[i] ^ hashes[j]) & (2**64 - 1)).bit_count()
            if distance <= max_bits:
                out.append((i, j, distance))
    return sorted(out, key=lambda p: (p[2], p[0], p[1]))


def flipped(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


@pytest.mark.parametrize("max_bits", [0, 1, 3, 5, 6, 10, 20])
def test_equals_brute_force_with_planted_copies(max_bits: int) -> None:
    rng = random.Random(max_bits)
    originals = [rng.getrandbits(64) - 2**63 for _ in range(150)]  # signed, as stored
    copies = [flipped(h, rng.randint(0, 12), rng) for h in originals[:60]]
    hashes = originals + copies + [originals[0], originals[0]]  # exact repeats too
    found = near_pairs(hashes, max_bits)
    assert found == brute_force(hashes, max_bits)
    assert any(d <= max_bits for _, _, d in found), "the planted copies make some pairs"


def test_empty_and_single() -> None:
    assert near_pairs([], 5) == []
    assert near_pairs([42], 5) == []
    with pytest.raises(ValueError):
        near_pairs([1, 2], -1)
