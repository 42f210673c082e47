"""The second stage: does the aligned query show the same details as the candidate? Pure.

Photos of different garments on the same backdrop share their layout, so their box hashes
can be as close as a cropped copy's. Their details differ. After aligning the thumbnails
(the probe's box against the candidate's centre box, refined by up to 3.75 % per side),
both are band-passed (3 px minus 7 px box blurs: edges and texture, not lighting) and
divided by their local contrast, so the print on a shirt counts as much as its outline;
the correlation of the two is about 0.95 for copies and rarely above 0.8 otherwise.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from imgsearch.dupes.frame import Box
from imgsearch.dupes.hashes import CENTRE, area_matrix
from imgsearch.dupes.signature import SIDE

Matrix = npt.NDArray[np.float64]
Span = tuple[float, float]

_SHIFTS = (-0.0125, -0.00625, 0.0, 0.00625, 0.0125)
_ROUNDS = 3
_FINE, _COARSE, _CONTRAST = 3, 7, 9  # box blur widths in pixels
_CONTRAST_FLOOR = 0.5  # of the median local contrast: flat areas do not count as detail
_MIN_DETAIL = 0.5  # grey levels (RMS of the band-pass): a plainer crop has no details at all


def similarity(
    query: npt.NDArray[np.uint8],
    query_box: Box,
    item: npt.NDArray[np.uint8],
    item_box: Box = CENTRE,
) -> float:
    """Best detail correlation of ``query_box`` of ``query`` with boxes near ``item_box``."""
    target = _details(_crop(query, query_box)[None])[0]
    if not target.any():
        return 0.0
    pixels = np.asarray(item, dtype=np.float64)
    x_span, y_span = (item_box[0], item_box[2]), (item_box[1], item_box[3])
    best = -1.0
    for _ in range(_ROUNDS):
        rows = _resample(y_span) @ pixels
        spans = _near(x_span)
        score, x_span = _best(target, rows @ np.stack([_resample(s).T for s in spans]), spans)
        columns = pixels @ _resample(x_span).T
        spans = _near(y_span)
        score, y_span = _best(target, np.stack([_resample(s) for s in spans]) @ columns, spans)
        if score <= best + 1e-9:
            break
        best = score
    return max(best, score)


def _best(target: Matrix, crops: Matrix, spans: list[Span]) -> tuple[float, Span]:
    scores = np.einsum("kij,ij->k", _details(crops), target)
    pick = int(np.argmax(scores))
    return float(scores[pick]), spans[pick]


def _near(span: Span) -> list[Span]:
    return [(span[0] + a, span[1] + b) for a, b in itertools.product(_SHIFTS, _SHIFTS)]


def _crop(thumb: npt.NDArray[np.uint8], box: Box) -> Matrix:
    pixels = np.asarray(thumb, dtype=np.float64)
    return _resample((box[1], box[3])) @ pixels @ _resample((box[0], box[2])).T


def _resample(span: Span) -> Matrix:
    return _resample_cached(round(max(0.0, span[0]), 6), round(min(1.0, span[1]), 6))


@lru_cache(maxsize=4096)
def _resample_cached(lo: float, hi: float) -> Matrix:
    return area_matrix(SIDE, SIDE, lo, hi)


@lru_cache(maxsize=4)
def _blur(width: int) -> Matrix:
    """Box blur over ``width`` pixels, the edge pixel repeated beyond the border."""
    index = np.clip(np.arange(SIDE)[:, None] + np.arange(width)[None, :] - width // 2, 0, SIDE - 1)
    out = np.zeros((SIDE, SIDE))
    for column in index.T:
        out[np.arange(SIDE), column] += 1.0 / width
    return out


def _details(crops: Matrix) -> Matrix:
    """``(k, SIDE, SIDE)`` crops → band-passed, contrast-normalised, unit-norm detail maps."""
    fine, coarse, contrast = _blur(_FINE), _blur(_COARSE), _blur(_CONTRAST)
    band = fine @ crops @ fine.T - coarse @ crops @ coarse.T
    local = np.sqrt(np.maximum(contrast @ (band * band) @ contrast.T, 0.0))
    floor = _CONTRAST_FLOOR * np.median(local, axis=(1, 2), keepdims=True) + _MIN_DETAIL
    details = band / (local + floor)
    details -= details.mean(axis=(1, 2), keepdims=True)
    norms = np.linalg.norm(details, axis=(1, 2), keepdims=True)
    plain = np.sqrt(np.mean(band * band, axis=(1, 2), keepdims=True)) < _MIN_DETAIL
    return np.where(plain, 0.0, details / np.maximum(norms, 1e-12))
