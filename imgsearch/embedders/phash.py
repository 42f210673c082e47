"""64-bit DCT perceptual hash for near-duplicate detection.

The classic pHash: greyscale, 32x32, 2-D DCT-II, keep the top-left 8x8 low frequencies, set
a bit where a coefficient is above their median. Stored as a signed ``long`` so OpenSearch's
k-NN ``knn_score`` script with ``space_type: hammingbit`` can compare exact Hamming distances.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.embedders.base import EmbedderInfo

_SIDE = 32
_LOW = 8
BITS = _LOW * _LOW
_MASK = (1 << BITS) - 1


def _dct_matrix(n: int) -> npt.NDArray[np.float64]:
    """Orthonormal DCT-II basis: ``D @ x`` is ``scipy.fft.dct(x, norm="ortho")``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    basis = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    basis[0] /= np.sqrt(2.0)
    return np.asarray(basis, dtype=np.float64)


_DCT = _dct_matrix(_SIDE)


def phash_bits(images: Sequence[Image.Image]) -> npt.NDArray[np.uint8]:
    """``(n, 64)`` 0/1 bits, row-major over the 8x8 low-frequency block (MSB first)."""
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
    """Perceptual hash as 64 float 0/1 values; ``field_value`` packs them into a ``long``."""

    def __init__(self) -> None:
        self._info = EmbedderInfo(
            embedder="phash", version="dct-phash-32x32-8x8/v1", dim=BITS, storage="hamming_long"
        )

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        return phash_bits(images).astype(np.float32)

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        return bits_to_long(row > 0.5)

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        return {}
