"""One query against one indexed photo: aligned hash distance, then the second stage. Pure.

The distance is the number of differing bits between one of the item's stored hashes (of
its centre or whole box) and the closest of the query's probes (crops of the query, mirrored
or not): 0 for the same picture, a few bits for a resized, recompressed, brightened,
cropped, mirrored or bordered copy. Items within ``max_distance`` bits are candidates; a
candidate is a near-duplicate when the second stage (``verify``) finds the same details and
the same colours at that alignment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from imgsearch.dupes.hashes import STORED_BOXES, Probe
from imgsearch.dupes.signature import Signature, from_text
from imgsearch.dupes.verify import colour_difference, similarity

# Alignments the second stage tries per item, closest first.
_ALIGNMENTS = 2


@dataclass(frozen=True)
class Limits:
    """When a candidate is a near-duplicate: the engine's ``phash`` settings."""

    max_distance: int  # bits
    min_similarity: float  # detail correlation
    max_colour_difference: float  # chromaticity


@dataclass(frozen=True)
class Match:
    distance: int  # bits between the best probe and the item's closest stored hash
    similarity: float  # detail correlation at the best alignment tried, up to 1
    colour_difference: float  # chromaticity difference at that alignment, from 0

    def near(self, limits: Limits) -> bool:
        return (
            self.distance <= limits.max_distance
            and self.similarity >= limits.min_similarity
            and self.colour_difference <= limits.max_colour_difference
        )


@dataclass(frozen=True)
class Stored:
    """An indexed photo as the search returns it: its stored hashes and its signature."""

    hashes: tuple[int, int]  # of the STORED_BOXES: centre, whole
    signature: Signature


def stored(value: object) -> Stored:
    """A stored field value (``PhashEmbedder.field_value``); ``ValueError`` if not one."""
    if not isinstance(value, Mapping) or not {"centre", "whole", "thumb"} <= set(value):
        raise ValueError("not a stored near-duplicate signature (index written by phash v1?)")
    try:
        hashes = (int(value["centre"]), int(value["whole"]))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"not a stored hash: {exc}") from exc
    return Stored(hashes, from_text(value["thumb"]))


def distances(probes: Sequence[Probe], hashes: tuple[int, int]) -> npt.NDArray[np.int64]:
    """``(len(probes), 2)``: bits from each probe to each stored hash."""
    values = np.array([p.value for p in probes], dtype=np.int64)[:, None]
    stored_values = np.array(hashes, dtype=np.int64)[None, :]
    bits: npt.NDArray[np.int64] = np.bitwise_count(values ^ stored_values).astype(np.int64)
    return bits


def compare(
    query: Signature, probes: Sequence[Probe], item: Stored, limits: Limits
) -> Match | None:
    """The query against one item, or ``None`` when no probe is within ``max_distance``.

    The second stage tries the closest alignments (plain or mirrored probe, against the
    item's centre or whole box), at most ``_ALIGNMENTS``, closest first; it returns the
    first that is ``near``, else the one with the best detail correlation.
    """
    bits = distances(probes, item.hashes)
    best = int(bits.min())
    if best > limits.max_distance:
        return None
    closest: dict[tuple[bool, int], tuple[int, int]] = {}
    for row, view in zip(*np.nonzero(bits <= limits.max_distance), strict=True):
        key = (probes[row].mirrored, int(view))
        if key not in closest or bits[row, view] < closest[key][0]:
            closest[key] = (int(bits[row, view]), int(row))
    tried: list[Match] = []
    for (mirrored, view), (_, row) in sorted(closest.items(), key=lambda kv: kv[1])[:_ALIGNMENTS]:
        seen = query.mirrored() if mirrored else query
        box = probes[row].box
        score, item_box = similarity(seen.thumb, box, item.signature.thumb, STORED_BOXES[view])
        colour = colour_difference(seen.colour, box, item.signature.colour, item_box)
        tried.append(Match(best, score, colour))
        if tried[-1].near(limits):
            return tried[-1]
    return max(tried, key=lambda match: match.similarity)
