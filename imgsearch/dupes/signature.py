"""What the detector keeps of a photo: a 64x64 grey thumbnail of its content.

The content is the photo inside its uniform frame (an added border, or plain studio
background; see ``frame``), squeezed to a square, so a bordered copy and its original keep
the same thumbnail. Every hash and the second-stage check are computed from this thumbnail,
for indexed photos and queries alike, so both sides always go through the same arithmetic.
The embedder hands it around as a float row; the index stores it as ``binary``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.dupes.frame import WHOLE, content_box

SIDE = 64
ROW_DIM = SIDE * SIDE


@dataclass(frozen=True)
class Signature:
    thumb: npt.NDArray[np.uint8]  # (SIDE, SIDE) grey


def signature(image: Image.Image) -> Signature:
    box = content_box(image)
    if box != WHOLE:
        width, height = image.size
        x0, y0, x1, y1 = box
        image = image.crop(
            (round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))
        )
    grey = image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return Signature(np.asarray(grey, dtype=np.uint8))


def to_row(sig: Signature) -> npt.NDArray[np.float32]:
    return sig.thumb.reshape(-1).astype(np.float32)


def from_row(row: npt.ArrayLike) -> Signature:
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    if values.shape != (ROW_DIM,):
        raise ValueError(f"a signature row has {ROW_DIM} values, not {values.size}")
    return Signature(np.clip(np.rint(values), 0, 255).astype(np.uint8).reshape(SIDE, SIDE))


def to_text(sig: Signature) -> str:
    """The thumbnail as base64, as OpenSearch stores a ``binary`` field."""
    return base64.b64encode(sig.thumb.tobytes()).decode("ascii")


def from_text(text: object) -> Signature:
    """A signature from its stored base64 thumbnail."""
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not a stored thumbnail: {exc}") from exc
    if len(raw) != SIDE * SIDE:
        raise ValueError(f"a stored thumbnail has {SIDE * SIDE} bytes, not {len(raw)}")
    return Signature(np.frombuffer(raw, dtype=np.uint8).reshape(SIDE, SIDE))
