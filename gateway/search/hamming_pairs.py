"""Every pair of 64-bit hashes within ``max_bits`` of each other, without an n² scan. Pure.

Pigeonhole (multi-index hashing): split the 64 bits into ``max_bits + 1`` chunks; two hashes
that differ in at most ``max_bits`` bits agree exactly on at least one chunk. So only hashes
sharing a chunk value are compared, bucket by bucket, with numpy popcounts. Exact: every
pair within the distance is found, and each is reported once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

BITS = 64


def _chunks(max_bits: int) -> list[tuple[int, int]]:
    """(shift, width) of ``max_bits + 1`` chunks covering the 64 bits."""
    count = min(max_bits + 1, BITS)
    widths = [BITS // count + (1 if i < BITS % count else 0) for i in range(count)]
    out, shift = [], 0
    for width in widths:
        out.append((shift, width))
        shift += width
    return out


def _popcount(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    as_bytes = values.view(np.uint8).reshape(-1, 8)
    counts: npt.NDArray[np.int64] = np.unpackbits(as_bytes, axis=1).sum(axis=1, dtype=np.int64)
    return counts


def near_pairs(hashes: Sequence[int], max_bits: int) -> list[tuple[int, int, int]]:
    """``(i, j, distance)`` with ``i < j`` for every pair within ``max_bits``, sorted."""
    if max_bits < 0:
        raise ValueError("max_bits must be >= 0")
    values = np.array([h & (2**BITS - 1) for h in hashes], dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for shift, width in _chunks(max_bits):
        keys = (values >> np.uint64(shift)) & np.uint64((1 << width) - 1)
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        ends = np.r_[starts[1:], len(order)]
        for start, end in zip(starts, ends, strict=True):
            if end - start < 2:
                continue
            members = np.sort(order[start:end])
            group = values[members]
            for a in range(len(members) - 1):
                distances = _popcount(group[a + 1 :] ^ group[a])
                for b in np.flatnonzero(distances <= max_bits):
                    found.add((int(members[a]), int(members[a + 1 + b])))
    pairs = [(i, j, int(_popcount(values[[i]] ^ values[[j]])[0])) for i, j in found]
    return sorted(pairs, key=lambda p: (p[2], p[0], p[1]))
