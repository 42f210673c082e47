"""PhashEmbedder: bit layout, int64 packing, and robustness on real clothing photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imgsearch.embedders.base import Embedder
from imgsearch.embedders.phash import (
    PhashEmbedder,
    _dct_matrix,
    bits_to_long,
    hamming,
    long_to_bits,
)
from imgsearch.images import ImageLimits, decode_image

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"
EMBEDDER = PhashEmbedder()


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    paths = sorted(DATASET.glob("*/*.jpg"))[::23][:12]
    assert len(paths) == 12
    return [decode_image(path.read_bytes(), ImageLimits()) for path in paths]


def altered(image: Image.Image) -> Image.Image:
    """Resized to 60% and recompressed as a poor JPEG: the same picture to a human."""
    small = image.resize((image.width * 3 // 5, image.height * 3 // 5), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=40)
    return decode_image(buffer.getvalue(), ImageLimits())


def test_info_and_protocol() -> None:
    assert isinstance(EMBEDDER, Embedder)
    assert (EMBEDDER.info.dim, EMBEDDER.info.storage) == (64, "hamming_long")


def test_bits_shape_and_values(photos: list[Image.Image]) -> None:
    bits = EMBEDDER.embed_images(photos)
    assert bits.shape == (12, 64) and bits.dtype == np.float32
    assert set(np.unique(bits)) <= {0.0, 1.0}
    assert EMBEDDER.embed_images([]).shape == (0, 64)
    assert EMBEDDER.extra_fields(photos[0]) == {}


def test_deterministic_and_batch_equals_single(photos: list[Image.Image]) -> None:
    batched = EMBEDDER.embed_images(photos)
    singles = np.concatenate([EMBEDDER.embed_images([photo]) for photo in photos])
    # The batched DCT is another matrix product than the single one: a coefficient within
    # float64 rounding (~1e-12) of the median could flip its bit on some CPU. Allow one bit.
    flips = (batched != singles).sum(axis=1)
    assert flips.max() <= 1, flips
    assert flips.sum() <= 1, "more than a freak rounding case"
    np.testing.assert_array_equal(EMBEDDER.embed_images(photos), batched)


def test_dct_matrix_is_the_orthonormal_dct_ii() -> None:
    matrix = _dct_matrix(32)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(32), atol=1e-12)
    signal = np.random.default_rng(0).normal(size=32)
    n = np.arange(32)
    naive = np.array([np.sum(signal * np.cos(np.pi * (2 * n + 1) * k / 64)) for k in range(32)])
    naive *= np.sqrt(2 / 32)
    naive[0] /= np.sqrt(2)
    np.testing.assert_allclose(matrix @ signal, naive, atol=1e-12)


@given(st.integers(-(2**63), 2**63 - 1))
def test_long_packing_round_trips_in_int64_range(value: int) -> None:
    bits = long_to_bits(value)
    assert bits.shape == (64,)
    assert bits_to_long(bits) == value


def test_field_value_is_a_signed_int64(photos: list[Image.Image]) -> None:
    for row in EMBEDDER.embed_images(photos):
        value = EMBEDDER.field_value(row)
        assert isinstance(value, int) and -(2**63) <= value < 2**63
        np.testing.assert_array_equal(long_to_bits(value), row.astype(np.uint8))
    assert EMBEDDER.field_value(np.ones(64, np.float32)) == -1
    assert EMBEDDER.field_value(np.eye(64, dtype=np.float32)[0]) == -(2**63)


def test_hamming() -> None:
    assert hamming(5, 5) == 0
    assert hamming(0, -1) == 64
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(-(2**63), 0) == 1


def packed(row: np.ndarray) -> int:
    value = EMBEDDER.field_value(row)
    assert isinstance(value, int)
    return value


def test_near_duplicates_are_close_and_different_photos_far(photos: list[Image.Image]) -> None:
    originals = [packed(row) for row in EMBEDDER.embed_images(photos)]
    copies = [packed(EMBEDDER.embed_images([altered(photo)])[0]) for photo in photos]
    near = [hamming(a, b) for a, b in zip(originals, copies, strict=True)]
    far = [hamming(a, b) for i, a in enumerate(originals) for b in originals[i + 1 :]]
    assert max(near) <= 6, near
    assert min(far) > 10 and float(np.median(far)) > 20, far


def test_uniform_image_does_not_crash() -> None:
    bits = EMBEDDER.embed_images([Image.new("RGB", (50, 50), (120, 30, 30))])
    assert bits.shape == (1, 64)
