"""Every near-duplicate pair of a catalog, from its stored signatures, and their groups. Pure.

Each item's probes (``imgsearch.dupes.hashes.probe_matrix``: 81 crops of its thumbnail,
mirrored or not) are looked up among every item's stored hashes (``hamming_pairs``, exact
within the radius, no n² scan); each pair found goes through the query's second stage, so a
pair is one exactly when one of its two photos, as a query, finds the other.
Probes are made block by block, so memory stays bounded whatever the catalog size.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from gateway.search.hamming_pairs import ChunkIndex, fewest_bits
from imgsearch.dupes.hashes import probe_matrix, probes
from imgsearch.dupes.match import Limits, Stored, compare

# (phase, done, total): "probes" counts items, "verify" candidate pairs.
Progress = Callable[[str, int, int], None]
BLOCK = 2048


def near_duplicate_pairs(
    items: Sequence[Stored], limits: Limits, progress: Progress | None = None
) -> list[tuple[int, int, int]]:
    """``(i, j, bits)`` with ``i < j`` for every near-duplicate pair of ``items``, closest first."""
    report = progress or (lambda phase, done, total: None)
    hashes = np.array([item.hashes for item in items], dtype=np.int64).reshape(-1, 2)
    index = ChunkIndex(hashes.reshape(-1), limits.max_distance)
    found = []
    for start in range(0, len(items), BLOCK):
        block = items[start : start + BLOCK]
        values = probe_matrix(np.stack([item.signature.thumb for item in block]))
        owners = np.repeat(np.arange(start, start + len(block)), values.shape[1])
        probe, target, bits = index.near(values.reshape(-1))
        owner, other = owners[probe], target // hashes.shape[1]
        keep = owner != other
        found.append(fewest_bits(owner[keep], other[keep], bits[keep]))
        report("probes", start + len(block), len(items))
    rows = np.concatenate(found) if found else np.zeros((0, 3), np.int64)
    return _verified(items, rows, limits, report)


def _verified(
    items: Sequence[Stored], rows: npt.NDArray[np.int64], limits: Limits, report: Progress
) -> list[tuple[int, int, int]]:
    """The candidate (query item, indexed item, bits) rows that pass the second stage."""
    best: dict[tuple[int, int], int] = {}
    if not len(rows):
        return []
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]
    bounds = np.flatnonzero(np.r_[True, rows[1:, 0] != rows[:-1, 0], True]).tolist()
    done = 0
    for start, stop in itertools.pairwise(bounds):
        query = items[rows[start, 0]].signature
        query_probes = probes(query)
        for a, b, bits in rows[start:stop].tolist():
            pair = (min(a, b), max(a, b))
            if best.get(pair, bits + 1) <= bits:
                continue  # already a near-duplicate, found from the other side
            match = compare(query, query_probes, items[b], limits)
            if match is not None and match.near(limits):
                best[pair] = min(best.get(pair, match.distance), match.distance)
        done += stop - start
        report("verify", done, len(rows))
    return sorted(((a, b, bits) for (a, b), bits in best.items()), key=lambda p: (p[2], p[0], p[1]))


def groups(pairs: Iterable[tuple[str, str, int]]) -> list[list[str]]:
    """Connected components of the pairs, largest first (members sorted)."""
    parent: dict[str, str] = {}

    def root(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for a, b, _ in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[str, list[str]] = {}
    for item in parent:
        members.setdefault(root(item), []).append(item)
    return sorted((sorted(m) for m in members.values()), key=lambda m: (-len(m), m[0]))
