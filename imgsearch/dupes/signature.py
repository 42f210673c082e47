"""What the detector keeps of a photo: thumbnails of its content, 64x64 grey and 16x16 colour.

The content is the photo inside its uniform frame (an added border, or plain studio
background; see ``frame``), squeezed to a square, so a bordered copy and its original keep
the same thumbnails. Every hash and the second-stage check are computed from them, for
indexed photos and queries alike, so both sides always go through the same arithmetic. The
embedder hands a signature around as one float row; the index stores it as ``binary``.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.dupes.frame import WHOLE, content_box

SIDE = 64  # grey thumbnail: hashes and details
COLOUR_SIDE = 16  # colour thumbnail: the colour check
_GREY = SIDE * SIDE
_COLOUR = COLOUR_SIDE * COLOUR_SIDE * 3
ROW_DIM = _GREY + _COLOUR


@dataclass(frozen=True)
class Signature:
    thumb: npt.NDArray[np.uint8]  # (SIDE, SIDE) grey
    colour: npt.NDArray[np.uint8]  # (COLOUR_SIDE, COLOUR_SIDE, 3) RGB

    def mirrored(self) -> Signature:
        return Signature(self.thumb[:, ::-1], self.colour[:, ::-1])


def signature(image: Image.Image) -> Signature:
    box = content_box(image)
    if box != WHOLE:
        width, height = image.size
        x0, y0, x1, y1 = box
        image = image.crop(
            (round(x0 * width), round(y0 * height), round(x1 * width), round(y1 * height))
        )
    grey = image.convert("L").resize((SIDE, SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    colour = image.convert("RGB").resize((COLOUR_SIDE, COLOUR_SIDE), Image.Resampling.BOX)
    return Signature(np.asarray(grey, dtype=np.uint8), np.asarray(colour, dtype=np.uint8))


def to_row(sig: Signature) -> npt.NDArray[np.float32]:
    return np.concatenate([sig.thumb.reshape(-1), sig.colour.reshape(-1)]).astype(np.float32)


def from_row(row: npt.ArrayLike) -> Signature:
    values = np.asarray(row, dtype=np.float64).reshape(-1)
    if values.shape != (ROW_DIM,):
        raise ValueError(f"a signature row has {ROW_DIM} values, not {values.size}")
    pixels = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return _split(pixels)


def to_text(sig: Signature) -> str:
    """Both thumbnails as base64, as OpenSearch stores a ``binary`` field."""
    return base64.b64encode(sig.thumb.tobytes() + sig.colour.tobytes()).decode("ascii")


def from_text(text: object) -> Signature:
    """A signature from its stored base64 thumbnails."""
    try:
        raw = base64.b64decode(str(text), validate=True)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not a stored thumbnail: {exc}") from exc
    if len(raw) != ROW_DIM:
        raise ValueError(f"stored thumbnails have {ROW_DIM} bytes, not {len(raw)}")
    return _split(np.frombuffer(raw, dtype=np.uint8))


def _split(pixels: npt.NDArray[np.uint8]) -> Signature:
    return Signature(
        pixels[:_GREY].reshape(SIDE, SIDE),
        pixels[_GREY:].reshape(COLOUR_SIDE, COLOUR_SIDE, 3),
    )
