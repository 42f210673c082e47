"""The box inside a uniform frame: an added border, or plain studio background. Pure.

A bordered copy differs from its original by the frame, so the detector keeps the content
inside it. Lines are peeled from each side while they have the frame's colour (up to JPEG
noise); a second pass peels a plain background left inside a border of another colour.
Only a frame on all four sides counts: a plain wall along one edge is part of the picture,
and a crop that cuts into it must not change what is kept.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of width and height
WHOLE: Box = (0.0, 0.0, 1.0, 1.0)

_WORK_SIDE = 256  # the frame is found on a copy this size (long side)
_TOLERANCE = 12  # levels (0-255) a frame pixel may differ from the frame colour
_OUTLIERS = 0.02  # share of a line's pixels allowed beyond the tolerance (dust, noise)
_MAX_PEEL = 0.4  # never peel more than this share of a side
_PASSES = 2


def content_box(image: Image.Image) -> Box:
    """The box inside the image's uniform frame (``WHOLE`` when there is none)."""
    scale = min(1.0, _WORK_SIDE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    small = image.convert("RGB").resize(size, Image.Resampling.BOX)
    pixels = np.asarray(small, dtype=np.int16)
    height, width = pixels.shape[:2]
    top, left, bottom, right = 0, 0, height, width
    for _ in range(_PASSES):
        inner = pixels[top:bottom, left:right]
        edges = _peel(inner)
        if edges == (0, 0, 0, 0):
            break
        top, left = top + edges[0], left + edges[1]
        bottom, right = bottom - edges[2], right - edges[3]
    return (left / width, top / height, right / width, bottom / height)


def _peel(pixels: npt.NDArray[np.int16]) -> tuple[int, int, int, int]:
    """Lines of one colour at the top, left, bottom and right of ``pixels``."""
    height, width = pixels.shape[:2]
    if height < 8 or width < 8:
        return (0, 0, 0, 0)
    frame = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    colour = np.median(frame, axis=0)
    off = np.abs(pixels - colour).max(axis=2) > _TOLERANCE
    plain_rows = off.mean(axis=1) <= _OUTLIERS
    plain_cols = off.mean(axis=0) <= _OUTLIERS
    top = _run(plain_rows, int(height * _MAX_PEEL))
    bottom = _run(plain_rows[::-1], int(height * _MAX_PEEL))
    left = _run(plain_cols, int(width * _MAX_PEEL))
    right = _run(plain_cols[::-1], int(width * _MAX_PEEL))
    if min(top, left, bottom, right) == 0:
        return (0, 0, 0, 0)
    return (top, left, bottom, right)


def _run(plain: npt.NDArray[np.bool_], limit: int) -> int:
    """Length of the leading run of True, capped at ``limit`` (0 if the cap is hit)."""
    stops = np.flatnonzero(~plain)
    run = int(stops[0]) if stops.size else len(plain)
    return run if run <= limit else 0
