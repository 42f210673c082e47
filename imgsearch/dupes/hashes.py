"""64-bit hashes of boxes of a thumbnail: an item's stored hashes and a query's probes. Pure.

A box hash is the classic pHash (32x32, 2-D DCT, top-left 8x8 against their median) of one
box of the thumbnail, resampled by area averaging. An indexed photo stores the hashes of its
centre box (5 % in from every side) and of its whole. A copy cropped by up to 5 % per side
still contains the centre box; cropping the copy again by 0, 2.5 or 5 % per side (81 boxes),
mirrored or not, gives a probe within about 1.25 % per side of it, whose hash lies a few
bits from the stored one. The same probes of a query that *contains* the indexed photo (the
catalog holds the cropped copy) find its whole-box hash. The hash of a whole photo, by
contrast, moves by 8 to 20 bits under a 5 % crop.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from imgsearch.dupes.frame import Box
from imgsearch.dupes.signature import SIDE, Signature

HASH_SIDE = 32
LOW = 8
CENTRE_MARGIN = 0.05
PROBE_STEPS = (0.0, 0.025, 0.05)
CENTRE: Box = (CENTRE_MARGIN, CENTRE_MARGIN, 1 - CENTRE_MARGIN, 1 - CENTRE_MARGIN)
WHOLE_BOX: Box = (0.0, 0.0, 1.0, 1.0)
# The boxes an indexed photo stores the hashes of, in this order.
STORED_BOXES: tuple[Box, Box] = (CENTRE, WHOLE_BOX)
_SPANS = [(lo, 1 - hi) for lo, hi in itertools.product(PROBE_STEPS, PROBE_STEPS)]
# The probe boxes, in the order of ``probe_matrix``'s columns (y-major, then mirrored).
PROBE_BOXES: list[Box] = [
    (x0, y0, x1, y1) for (y0, y1), (x0, x1) in itertools.product(_SPANS, _SPANS)
]


@dataclass(frozen=True)
class Probe:
    """A query's box hash; ``box`` is in the coordinates of the (mirrored) thumbnail."""

    value: int
    box: Box
    mirrored: bool


def dct_matrix(n: int) -> npt.NDArray[np.float64]:
    """Orthonormal DCT-II basis: ``D @ x`` is ``scipy.fft.dct(x, norm="ortho")``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return np.asarray(basis, dtype=np.float64)


_DCT_LOW = dct_matrix(HASH_SIDE)[:LOW]


def area_matrix(n_out: int, n_in: int, lo: float, hi: float) -> npt.NDArray[np.float64]:
    """``(n_out, n_in)``: means of ``[lo, hi]`` (fractions of the signal) over ``n_out`` bins."""
    edges = (lo + (hi - lo) * np.arange(n_out + 1) / n_out) * n_in
    start, stop = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(stop, pixel + 1) - np.maximum(start, pixel), 0.0, None)
    return np.asarray(overlap / overlap.sum(axis=1, keepdims=True), dtype=np.float64)


@lru_cache(maxsize=64)
def _low_rows(lo: float, hi: float) -> npt.NDArray[np.float64]:
    """``(LOW, SIDE)``: the 8 lowest DCT rows of the span ``[lo, hi]`` resampled to 32."""
    return np.asarray(_DCT_LOW @ area_matrix(HASH_SIDE, SIDE, lo, hi), dtype=np.float64)


def box_hashes(
    thumbs: npt.NDArray[np.uint8],
    x_spans: Sequence[tuple[float, float]],
    y_spans: Sequence[tuple[float, float]],
) -> npt.NDArray[np.int64]:
    """``(n, len(y_spans), len(x_spans))`` signed hashes of the boxes of ``(n, SIDE, SIDE)``."""
    pixels = np.asarray(thumbs, dtype=np.float64)
    rows_x = np.concatenate([_low_rows(lo, hi) for lo, hi in x_spans])  # (X * 8, SIDE)
    rows_y = np.concatenate([_low_rows(lo, hi) for lo, hi in y_spans])  # (Y * 8, SIDE)
    low = rows_y @ pixels @ rows_x.T  # (n, Y * 8, X * 8): two BLAS products for all boxes
    low = low.reshape(len(pixels), len(y_spans), LOW, len(x_spans), LOW).transpose(0, 1, 3, 2, 4)
    low = low.reshape(len(pixels), len(y_spans), len(x_spans), LOW * LOW)
    bits = low > np.median(low, axis=-1, keepdims=True)
    packed = np.packbits(bits, axis=-1).view(">u8")[..., 0].astype(np.uint64)
    return packed.view(np.int64)


def stored_hashes(thumbs: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """``(n, 2)``: the hashes of the ``STORED_BOXES`` (centre, whole) of each thumbnail."""
    spans = [((x0, x1), (y0, y1)) for x0, y0, x1, y1 in STORED_BOXES]
    return np.stack([box_hashes(thumbs, [x], [y])[:, 0, 0] for x, y in spans], axis=1)


def probe_matrix(thumbs: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """``(n, 162)`` probe hashes: the 81 ``PROBE_BOXES``, then the same of the mirror image."""
    plain = box_hashes(thumbs, _SPANS, _SPANS).reshape(len(thumbs), -1)
    mirrored = box_hashes(thumbs[:, :, ::-1], _SPANS, _SPANS).reshape(len(thumbs), -1)
    return np.concatenate([plain, mirrored], axis=1)


def probes(sig: Signature) -> list[Probe]:
    """A query's distinct probes (the first box of each hash value)."""
    out: list[Probe] = []
    seen: set[int] = set()
    row = probe_matrix(sig.thumb[None])[0]
    for column, value in enumerate(row.tolist()):
        if value not in seen:
            seen.add(value)
            box = PROBE_BOXES[column % len(PROBE_BOXES)]
            out.append(Probe(value, box, mirrored=column >= len(PROBE_BOXES)))
    return out
