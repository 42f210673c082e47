"""Every (probe, hash) pair within ``max_bits`` of each other, without an n² scan. Pure.

Pigeonhole (multi-index hashing): split the 64 bits into ``max_bits + 1`` chunks; two values
that differ in at most ``max_bits`` bits agree exactly on at least one chunk. So the hashes
are sorted once by each chunk, and each probe is compared (numpy popcounts) only with the
hashes sharing one of its chunk values. Exact: every pair within the distance is found. The
work is the number of chunk collisions, about
``(max_bits + 1) * probes * hashes / 2 ** (64 / (max_bits + 1))`` for random hashes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

BITS = 64
# Collisions expanded at once (three 8-byte values each): bounds the memory of one step.
STEP_PAIRS = 4_000_000

Ints = npt.NDArray[np.int64]


def chunks(max_bits: int) -> list[tuple[int, int]]:
    """(shift, width) of ``max_bits + 1`` chunks covering the 64 bits."""
    count = min(max_bits + 1, BITS)
    widths = [BITS // count + (1 if i < BITS % count else 0) for i in range(count)]
    out, shift = [], 0
    for width in widths:
        out.append((shift, width))
        shift += width
    return out


class ChunkIndex:
    """Signed 64-bit hashes, sorted by each chunk once, to look probes up in."""

    def __init__(self, hashes: npt.ArrayLike, max_bits: int) -> None:
        if max_bits < 0:
            raise ValueError("max_bits must be >= 0")
        self.max_bits = max_bits
        self.hashes = np.asarray(hashes, dtype=np.int64).view(np.uint64)
        self._chunks = []
        for shift, width in chunks(max_bits):
            keys = _keys(self.hashes, shift, width)
            order = np.argsort(keys, kind="stable")
            self._chunks.append((shift, width, keys[order], order))

    def near(self, probes: npt.ArrayLike) -> tuple[Ints, Ints, Ints]:
        """``(probe rows, hash rows, bits)`` of every pair within ``max_bits``.

        A pair agreeing on several chunks comes back once per chunk.
        """
        values = np.asarray(probes, dtype=np.int64).view(np.uint64)
        found: list[tuple[Ints, Ints, Ints]] = []
        for shift, width, sorted_keys, order in self._chunks:
            keys = _keys(values, shift, width)
            lo = np.searchsorted(sorted_keys, keys, side="left")
            counts = np.searchsorted(sorted_keys, keys, side="right") - lo
            for start, stop in _steps(counts):
                found.append(self._within(values, order, lo, counts, start, stop))
        if not found:
            empty = np.zeros(0, np.int64)
            return empty, empty, empty
        probe, target, bits = (np.concatenate(parts) for parts in zip(*found, strict=True))
        return probe, target, bits

    def _within(
        self,
        values: npt.NDArray[np.uint64],
        order: Ints,
        lo: Ints,
        counts: Ints,
        start: int,
        stop: int,
    ) -> tuple[Ints, Ints, Ints]:
        span = counts[start:stop]
        probe = np.repeat(np.arange(start, stop), span)
        offsets = np.arange(len(probe)) - np.repeat(np.cumsum(span) - span, span)
        target = order[lo[probe] + offsets]
        bits = np.bitwise_count(values[probe] ^ self.hashes[target]).astype(np.int64)
        keep = bits <= self.max_bits
        return probe[keep], target[keep], bits[keep]


def _keys(values: npt.NDArray[np.uint64], shift: int, width: int) -> npt.NDArray[np.uint64]:
    return (values >> np.uint64(shift)) & np.uint64((1 << width) - 1)


def _steps(counts: Ints) -> list[tuple[int, int]]:
    """Consecutive probe ranges with about ``STEP_PAIRS`` collisions each (at least 1 probe)."""
    ends = np.cumsum(counts)
    out, start = [], 0
    while start < len(counts):
        base = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, base + STEP_PAIRS, side="right")), start + 1)
        out.append((start, stop))
        start = stop
    return out


def fewest_bits(a: Ints, b: Ints, bits: Ints) -> npt.NDArray[np.int64]:
    """``(k, 3)`` rows ``(a, b, bits)``: one per distinct (a, b), its fewest bits, by bits."""
    rows = np.stack([a, b, bits], axis=1).astype(np.int64).reshape(-1, 3)
    if not len(rows):
        return rows
    rows = rows[np.lexsort((rows[:, 2], rows[:, 1], rows[:, 0]))]
    first = np.r_[True, (rows[1:, 0] != rows[:-1, 0]) | (rows[1:, 1] != rows[:-1, 1])]
    rows = rows[first]
    return rows[np.lexsort((rows[:, 1], rows[:, 0], rows[:, 2]))]
