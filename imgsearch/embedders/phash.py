"""The ``phash`` embedder: near-duplicate signatures (``imgsearch.dupes``); the classic pHash.

v2 stores, per photo, the two box hashes the search compares (signed ``long``s: its centre
and its whole) and the signature the second stage reads (a 64x64 grey thumbnail of the
content, as ``binary``).
v1 stored one 64-bit pHash of the whole photo; it finds 5 % crops only about 65 % of the
time (``bench/near_duplicates.py`` measures both), and stays here as that baseline.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.dupes.hashes import dct_matrix, stored_hashes
from imgsearch.dupes.signature import ROW_DIM, from_row, signature, to_row, to_text
from imgsearch.embedders.base import EmbedderInfo

_SIDE = 32
_LOW = 8
BITS = _LOW * _LOW
_MASK = (1 << BITS) - 1
_DCT = dct_matrix(_SIDE)


def phash_bits(images: Sequence[Image.Image]) -> npt.NDArray[np.uint8]:
    """Classic pHash: ``(n, 64)`` 0/1 bits of the whole photo (8x8 low DCT block, MSB first)."""
    if not images:
        return np.zeros((0, BITS), np.uint8)
    pixels = np.stack([_small_grey(image) for image in images])
    coefficients = _DCT @ pixels @ _DCT.T
    low = coefficients[:, :_LOW, :_LOW].reshape(len(images), BITS)
    median = np.median(low, axis=1, keepdims=True)
    return (low > median).astype(np.uint8)


def _small_grey(image: Image.Image) -> npt.NDArray[np.float64]:
    grey = image.convert("L")
    small = grey.resize((_SIDE, _SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    return np.asarray(small, dtype=np.float64)


def bits_to_long(bits: npt.NDArray[np.generic]) -> int:
    """Pack 64 bits (MSB first) into a signed two's-complement int64, as OpenSearch stores it."""
    value = 0
    for bit in np.asarray(bits).reshape(-1)[:BITS]:
        value = (value << 1) | int(bool(bit))
    return value - (1 << BITS) if value >= 1 << (BITS - 1) else value


def long_to_bits(value: int) -> npt.NDArray[np.uint8]:
    unsigned = value & _MASK
    return np.array([(unsigned >> (BITS - 1 - i)) & 1 for i in range(BITS)], dtype=np.uint8)


def hamming(a: int, b: int) -> int:
    """Differing bits between two packed hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK).bit_count()


class PhashEmbedder:
    """Near-duplicate signatures as float rows; ``field_value`` adds the box hashes."""

    def __init__(self) -> None:
        self._info = EmbedderInfo(
            embedder="phash", version="dupes-centre-probes/v2", dim=ROW_DIM, storage="dup_signature"
        )

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        if not images:
            return np.zeros((0, ROW_DIM), np.float32)
        return np.stack([to_row(signature(image)) for image in images])

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        sig = from_row(row)
        centre, whole = (int(v) for v in stored_hashes(sig.thumb[None])[0])
        return {"centre": centre, "whole": whole, "thumb": to_text(sig)}

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        return {}
