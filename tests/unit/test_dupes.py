"""The near-duplicate detector's pure parts, against brute force and on real photos."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from imgsearch.dupes.frame import WHOLE, content_box
from imgsearch.dupes.hashes import (
    CENTRE,
    PROBE_BOXES,
    STORED_BOXES,
    area_matrix,
    box_hashes,
    dct_matrix,
    probe_matrix,
    probes,
    stored_hashes,
)
from imgsearch.dupes.match import Limits, Stored, compare, stored
from imgsearch.dupes.signature import (
    COLOUR_SIDE,
    SIDE,
    from_row,
    from_text,
    signature,
    to_row,
    to_text,
)
from imgsearch.dupes.verify import colour_difference, similarity
from imgsearch.embedders.phash import PhashEmbedder, bits_to_long
from imgsearch.engine_config import PhashSpec
from imgsearch.images import ImageLimits, decode_image

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"
SPEC = PhashSpec()
LIMITS = Limits(SPEC.max_distance, SPEC.min_similarity, SPEC.max_colour_difference)


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    paths = sorted(DATASET.glob("*/*.jpg"))[5::29][:10]
    assert len(paths) == 10
    return [decode_image(path.read_bytes(), ImageLimits()) for path in paths]


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return decode_image(out.getvalue(), ImageLimits())


def crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop(
        (round(left * w), round(top * h), round(w - right * w), round(h - bottom * h))
    )


COPIES = {
    "half size, JPEG q40": lambda im: jpeg(im.resize((im.width // 2, im.height // 2)), 40),
    "cropped 5 % left and top": lambda im: crop(im, 0.05, 0.05, 0, 0),
    "cropped 2-5 % per side": lambda im: crop(im, 0.02, 0.05, 0.04, 0.03),
    "brightened 15 %": lambda im: ImageEnhance.Brightness(im).enhance(1.15),
    "darkened 15 %": lambda im: ImageEnhance.Brightness(im).enhance(0.85),
    "mirrored": ImageOps.mirror,
    "black border": lambda im: ImageOps.expand(im, border=max(im.size) // 16, fill=(0, 0, 0)),
}


# ---------------------------------------------------------------- frame and signature


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255), (200, 30, 30)])
def test_content_box_finds_an_added_border(
    photos: list[Image.Image], colour: tuple[int, ...]
) -> None:
    for photo in photos[:4]:
        width = max(photo.size) // 12
        framed = ImageOps.expand(photo, border=width, fill=colour)
        x0, y0, x1, y1 = content_box(framed)
        w, h = framed.size
        expected = (width / w, width / h, 1 - width / w, 1 - width / h)
        # A plain background inside the border may be peeled too: never less than the border.
        assert x0 >= expected[0] - 0.01 and y0 >= expected[1] - 0.01
        assert x1 <= expected[2] + 0.01 and y1 <= expected[3] + 0.01
        assert content_box(photo) == WHOLE or content_box(photo)[0] >= 0  # any photo works


def test_content_box_keeps_pictures_without_a_frame() -> None:
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (120, 90, 3), dtype=np.uint8))
    assert content_box(noise) == WHOLE
    assert content_box(Image.new("RGB", (80, 60), (30, 40, 50))) == WHOLE  # all plain
    wall = np.asarray(noise).copy()
    wall[:, 70:] = 200  # a plain wall along one edge only is part of the picture
    assert content_box(Image.fromarray(wall)) == WHOLE


def test_signature_row_and_text_round_trip(photos: list[Image.Image]) -> None:
    sig = signature(photos[0])
    assert sig.thumb.shape == (SIDE, SIDE) and sig.thumb.dtype == np.uint8
    assert sig.colour.shape == (COLOUR_SIDE, COLOUR_SIDE, 3) and sig.colour.dtype == np.uint8
    for back in (from_row(to_row(sig)), from_text(to_text(sig))):
        np.testing.assert_array_equal(back.thumb, sig.thumb)
        np.testing.assert_array_equal(back.colour, sig.colour)
    np.testing.assert_array_equal(sig.mirrored().colour, sig.colour[:, ::-1])
    with pytest.raises(ValueError):
        from_text("AAAA")
    with pytest.raises(ValueError):
        from_row(np.zeros(10))


def test_a_bordered_copy_keeps_the_thumbnail(photos: list[Image.Image]) -> None:
    for photo in photos[:4]:
        framed = ImageOps.expand(photo, border=max(photo.size) // 16, fill=(0, 0, 0))
        diff = np.abs(signature(framed).thumb.astype(int) - signature(photo).thumb.astype(int))
        assert diff.mean() < 6, diff.mean()


# ---------------------------------------------------------------- box hashes


def test_area_matrix_means_the_span() -> None:
    np.testing.assert_allclose(area_matrix(8, 8, 0, 1), np.eye(8), atol=1e-12)
    halves = area_matrix(4, 8, 0, 1)
    np.testing.assert_allclose(halves, np.kron(np.eye(4), [[0.5, 0.5]]), atol=1e-12)
    part = area_matrix(3, 10, 0.1, 0.55)  # bins of 1.5 source pixels from pixel 1
    np.testing.assert_allclose(part.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(part[0, 1:3], [2 / 3, 1 / 3], atol=1e-12)


def reference_box_hash(thumb: np.ndarray, box: tuple[float, float, float, float]) -> int:
    """Crop by area means, one output pixel at a time, then the classic pHash, by hand."""
    x0, y0, x1, y1 = box

    def means(lo: float, hi: float) -> np.ndarray:
        weights = np.zeros((32, SIDE))
        for k in range(32):
            a = (lo + (hi - lo) * k / 32) * SIDE
            b = (lo + (hi - lo) * (k + 1) / 32) * SIDE
            for j in range(SIDE):
                weights[k, j] = max(0.0, min(b, j + 1) - max(a, j))
        return weights / weights.sum(axis=1, keepdims=True)

    small = means(y0, y1) @ thumb.astype(float) @ means(x0, x1).T
    dct = dct_matrix(32)
    low = (dct @ small @ dct.T)[:8, :8].reshape(-1)
    return bits_to_long(low > np.median(low))


def test_box_hashes_equal_the_classic_phash_of_the_crop(photos: list[Image.Image]) -> None:
    rng = random.Random(1)
    thumbs = np.stack([signature(photo).thumb for photo in photos[:3]])
    xs = [(rng.uniform(0, 0.1), rng.uniform(0.85, 1)) for _ in range(3)]
    ys = [(rng.uniform(0, 0.1), rng.uniform(0.85, 1)) for _ in range(2)]
    got = box_hashes(thumbs, xs, ys)
    assert got.shape == (3, 2, 3) and got.dtype == np.int64
    for n, thumb in enumerate(thumbs):
        for j, (y0, y1) in enumerate(ys):
            for i, (x0, x1) in enumerate(xs):
                assert int(got[n, j, i]) == reference_box_hash(thumb, (x0, y0, x1, y1))


def test_probes_cover_the_centre_box_and_the_mirror(photos: list[Image.Image]) -> None:
    thumbs = np.stack([signature(photo).thumb for photo in photos[:3]])
    matrix = probe_matrix(thumbs)
    assert matrix.shape == (3, 2 * len(PROBE_BOXES)) == (3, 162)
    # The stored boxes are probes too: cropping 5 % from every side, and nothing.
    for column, box in enumerate(STORED_BOXES):
        np.testing.assert_array_equal(
            matrix[:, PROBE_BOXES.index(box)], stored_hashes(thumbs)[:, column]
        )
    # The mirror image's plain probes are the photo's mirrored ones.
    np.testing.assert_array_equal(probe_matrix(thumbs[:, :, ::-1])[:, :81], matrix[:, 81:])
    listed = probes(signature(photos[0]))
    assert sorted({p.value for p in listed}) == sorted(set(matrix[0].tolist()))
    assert len(listed) == len({p.value for p in listed})


# ---------------------------------------------------------------- the detector


def item_of(image: Image.Image) -> Stored:
    embedder = PhashEmbedder()
    return stored(embedder.field_value(embedder.embed_images([image])[0]))


def test_copies_are_found_and_pass_the_second_stage(photos: list[Image.Image]) -> None:
    items = [item_of(photo) for photo in photos]
    for name, make in COPIES.items():
        for n, photo in enumerate(photos):
            query = signature(make(photo))
            match = compare(query, probes(query), items[n], LIMITS)
            assert match is not None and match.near(LIMITS), (name, n, match)


def test_different_photos_are_not_near_duplicates(photos: list[Image.Image]) -> None:
    items = [item_of(photo) for photo in photos]
    for n, photo in enumerate(photos):
        query = signature(photo)
        query_probes = probes(query)
        for m, item in enumerate(items):
            match = compare(query, query_probes, item, LIMITS)
            if m == n:
                assert match is not None and match.distance == 0
                assert match.similarity == pytest.approx(1.0, abs=1e-5)  # float32 products
                assert match.colour_difference == pytest.approx(0.0, abs=1e-6)
            else:
                assert match is None or not match.near(LIMITS), (n, m, match)


def test_similarity_of_plain_thumbnails_is_zero() -> None:
    flat = np.full((SIDE, SIDE), 128, np.uint8)
    assert similarity(flat, CENTRE, flat) == (0.0, CENTRE)


def test_colour_difference_ignores_brightness_not_hue() -> None:
    rng = np.random.default_rng(2)
    colour = rng.integers(20, 200, (COLOUR_SIDE, COLOUR_SIDE, 3)).astype(np.uint8)
    brighter = np.clip(colour.astype(float) * 1.15, 0, 255).astype(np.uint8)
    other = colour[:, :, ::-1].copy()  # red and blue swapped
    assert colour_difference(colour, CENTRE, colour, CENTRE) == 0.0
    assert colour_difference(colour, CENTRE, brighter, CENTRE) < 0.02
    assert colour_difference(colour, CENTRE, other, CENTRE) > 0.1


def test_stored_refuses_other_values() -> None:
    bad = ({"centre": 1, "whole": 2}, {"thumb": "AAAA"}, {"centre": "x", "whole": 1, "thumb": ""})
    for value in (5, *bad):
        with pytest.raises(ValueError):
            stored(value)
