"""The second stage: does the aligned query show the candidate's details and colours? Pure.

Photos of different garments on the same backdrop share their layout, so their box hashes
can be as close as a cropped copy's. Their details differ: after aligning the grey
thumbnails (the probe's box against the candidate's stored box, refined by up to 3.75 % per
side), both are band-passed (3 px minus 7 px box blurs: edges and texture, not lighting)
and divided by their local contrast, so the print on a shirt counts as much as its outline;
the correlation of the two (``similarity``) is 0.94 or more for 99 % of copies and at most
0.83 for other photos of the same colours (``bench/near_duplicates.py``). Plain shirts of
one cut on one backdrop can still pass that; their colours do not (``colour_difference``):
copies differ by at most about 0.03 in chromaticity, those shirts by 0.08 or more, and
brightening a photo leaves chromaticity unchanged.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from imgsearch.dupes.frame import Box
from imgsearch.dupes.hashes import CENTRE, area_matrix
from imgsearch.dupes.signature import SIDE

Matrix = npt.NDArray[np.float32]
Span = tuple[float, float]

_SHIFTS = (-0.0125, -0.00625, 0.0, 0.00625, 0.0125)
_ROUNDS = 3
_FINE, _COARSE, _CONTRAST = 3, 7, 9  # box blur widths in pixels
_CONTRAST_FLOOR = 0.5  # of the median local contrast: flat areas do not count as detail
_MIN_DETAIL = 0.5  # grey levels (RMS of the band-pass): a plainer crop has no details at all
_CELLS = 8  # colour cells per side
_DARK = 30.0  # added to R + G + B before dividing


def similarity(
    query: npt.NDArray[np.uint8],
    query_box: Box,
    item: npt.NDArray[np.uint8],
    item_box: Box = CENTRE,
) -> tuple[float, Box]:
    """Best detail correlation of ``query_box`` of ``query`` with boxes near ``item_box``,
    and that box."""
    x_span, y_span = (query_box[0], query_box[2]), (query_box[1], query_box[3])
    target = _details(_banded(np.asarray(query, np.float32), y_span, [x_span]))[0]
    if not target.any():
        return 0.0, item_box
    pixels = np.asarray(item, dtype=np.float32)
    x_span, y_span = (item_box[0], item_box[2]), (item_box[1], item_box[3])
    best = -1.0
    for _ in range(_ROUNDS):
        score, x_span = _best(target, _banded(pixels, y_span, _near(x_span)), _near(x_span))
        banded = _banded(pixels.T, x_span, _near(y_span)).transpose(0, 2, 1)
        score, y_span = _best(target, banded, _near(y_span))
        if score <= best + 1e-6:
            break
        best = score
    return max(best, score), (x_span[0], y_span[0], x_span[1], y_span[1])


def colour_difference(
    query: npt.NDArray[np.uint8], query_box: Box, item: npt.NDArray[np.uint8], item_box: Box
) -> float:
    """Mean chromaticity difference of the two boxes of colour thumbnails, over 8x8 cells.

    Chromaticity is RGB / (R + G + B + 30), so brightness does not change it (the 30 damps
    the noise of dark cells); each cell counts by the darker of its two intensities.
    """
    a, b = _cells(query, query_box), _cells(item, item_box)
    sum_a = a.sum(axis=-1, keepdims=True) + _DARK
    sum_b = b.sum(axis=-1, keepdims=True) + _DARK
    weight = np.minimum(sum_a, sum_b)[..., 0]
    difference = np.abs(a / sum_a - b / sum_b).sum(axis=-1)
    return float((difference * weight).sum() / weight.sum())


def _cells(colour: npt.NDArray[np.uint8], box: Box) -> Matrix:
    side = colour.shape[0]
    rows = area_matrix(_CELLS, side, max(0.0, box[1]), min(1.0, box[3]))
    columns = area_matrix(_CELLS, side, max(0.0, box[0]), min(1.0, box[2]))
    pixels = np.asarray(colour, dtype=np.float32)
    return np.asarray(np.einsum("ij,jkc,lk->ilc", rows, pixels, columns), dtype=np.float32)


def _banded(pixels: Matrix, rows: Span, columns: list[Span]) -> Matrix:
    """``(len(columns), SIDE, SIDE)``: the band-pass of each crop ``rows`` x ``columns[k]``.

    Resampling and blurs are all linear, so the blurred resampling matrices are cached and
    each crop costs two matrix products.
    """
    fine_rows, coarse_rows = (_blurred(rows, w) @ pixels for w in (_FINE, _COARSE))
    fine = np.stack([_blurred(span, _FINE).T for span in columns])
    coarse = np.stack([_blurred(span, _COARSE).T for span in columns])
    return np.asarray(fine_rows @ fine - coarse_rows @ coarse, dtype=np.float32)


def _best(target: Matrix, bands: Matrix, spans: list[Span]) -> tuple[float, Span]:
    scores = np.einsum("kij,ij->k", _details(bands), target)
    pick = int(np.argmax(scores))
    return float(scores[pick]), spans[pick]


def _near(span: Span) -> list[Span]:
    return [(span[0] + a, span[1] + b) for a, b in itertools.product(_SHIFTS, _SHIFTS)]


def _blurred(span: Span, width: int) -> Matrix:
    """The resampling of ``span`` to SIDE pixels, then a ``width`` px box blur."""
    return _blurred_cached(round(max(0.0, span[0]), 5), round(min(1.0, span[1]), 5), width)


@lru_cache(maxsize=8192)
def _blurred_cached(lo: float, hi: float, width: int) -> Matrix:
    return np.asarray(_blur(width) @ area_matrix(SIDE, SIDE, lo, hi), dtype=np.float32)


@lru_cache(maxsize=4)
def _blur(width: int) -> Matrix:
    """Box blur over ``width`` pixels, the edge pixel repeated beyond the border."""
    index = np.clip(np.arange(SIDE)[:, None] + np.arange(width)[None, :] - width // 2, 0, SIDE - 1)
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    for column in index.T:
        out[np.arange(SIDE), column] += 1.0 / width
    return out


def _details(band: Matrix) -> Matrix:
    """``(k, SIDE, SIDE)`` band-passed crops → contrast-normalised, unit-norm detail maps."""
    contrast = _blur(_CONTRAST)
    local = np.sqrt(np.maximum(contrast @ (band * band) @ contrast.T, 0.0))
    floor = _CONTRAST_FLOOR * np.median(local, axis=(1, 2), keepdims=True) + _MIN_DETAIL
    details = band / (local + floor)
    details -= details.mean(axis=(1, 2), keepdims=True)
    norms = np.linalg.norm(details, axis=(1, 2), keepdims=True)
    plain = np.sqrt(np.mean(band * band, axis=(1, 2), keepdims=True)) < _MIN_DETAIL
    return np.where(plain, 0.0, details / np.maximum(norms, 1e-12)).astype(np.float32)
