"""PhashEmbedder (v2 signatures) and the classic pHash: layout, int64 packing, robustness."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imgsearch.dupes.hashes import dct_matrix, stored_hashes
from imgsearch.dupes.signature import ROW_DIM, from_row, from_text, signature
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.phash import (
    PhashEmbedder,
    bits_to_long,
    hamming,
    long_to_bits,
    phash_bits,
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
    assert (EMBEDDER.info.dim, EMBEDDER.info.storage) == (ROW_DIM, "dup_signature")
    assert EMBEDDER.info.version.endswith("/v2")


def test_rows_are_thumbnails_and_batch_equals_single(photos: list[Image.Image]) -> None:
    rows = EMBEDDER.embed_images(photos)
    assert rows.shape == (12, ROW_DIM) and rows.dtype == np.float32
    assert rows.min() >= 0 and rows.max() <= 255 and np.array_equal(rows, np.rint(rows))
    singles = np.concatenate([EMBEDDER.embed_images([photo]) for photo in photos])
    np.testing.assert_array_equal(rows, singles)
    assert EMBEDDER.embed_images([]).shape == (0, ROW_DIM)
    assert EMBEDDER.extra_fields(photos[0]) == {}
    for row, photo in zip(rows, photos, strict=True):
        np.testing.assert_array_equal(from_row(row).thumb, signature(photo).thumb)
        np.testing.assert_array_equal(from_row(row).colour, signature(photo).colour)


def test_field_value_holds_the_box_hashes_and_the_thumbnail(photos: list[Image.Image]) -> None:
    for row in EMBEDDER.embed_images(photos[:4]):
        value = EMBEDDER.field_value(row)
        assert isinstance(value, dict) and set(value) == {"centre", "whole", "thumb"}
        sig = from_text(value["thumb"])
        np.testing.assert_array_equal(sig.thumb, from_row(row).thumb)
        np.testing.assert_array_equal(sig.colour, from_row(row).colour)
        thumb = sig.thumb
        assert [value["centre"], value["whole"]] == stored_hashes(thumb[None])[0].tolist()
        assert all(-(2**63) <= value[key] < 2**63 for key in ("centre", "whole"))


def test_classic_phash_bits_shape_and_values(photos: list[Image.Image]) -> None:
    bits = phash_bits(photos)
    assert bits.shape == (12, 64) and bits.dtype == np.uint8
    assert set(np.unique(bits)) <= {0, 1}
    assert phash_bits([]).shape == (0, 64)


def test_dct_matrix_is_the_orthonormal_dct_ii() -> None:
    matrix = dct_matrix(32)
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


def test_long_packing_of_edge_rows() -> None:
    assert bits_to_long(np.ones(64, np.uint8)) == -1
    assert bits_to_long(np.eye(64, dtype=np.uint8)[0]) == -(2**63)


def test_hamming() -> None:
    assert hamming(5, 5) == 0
    assert hamming(0, -1) == 64
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(-(2**63), 0) == 1


def test_classic_near_duplicates_are_close_and_different_photos_far(
    photos: list[Image.Image],
) -> None:
    originals = [bits_to_long(row) for row in phash_bits(photos)]
    copies = [bits_to_long(phash_bits([altered(photo)])[0]) for photo in photos]
    near = [hamming(a, b) for a, b in zip(originals, copies, strict=True)]
    far = [hamming(a, b) for i, a in enumerate(originals) for b in originals[i + 1 :]]
    assert max(near) <= 6, near
    assert min(far) > 10 and float(np.median(far)) > 20, far


def test_uniform_image_does_not_crash() -> None:
    rows = EMBEDDER.embed_images([Image.new("RGB", (50, 50), (120, 30, 30))])
    assert rows.shape == (1, ROW_DIM)
    assert isinstance(EMBEDDER.field_value(rows[0]), dict)
