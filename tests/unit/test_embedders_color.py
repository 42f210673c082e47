"""ColorEmbedder: descriptor shape/normalisation, palette invariants, colour names."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.embedders.base import Embedder
from imgsearch.embedders.color import COLOR_NAMES, DIM, ColorEmbedder, colour_name
from imgsearch.images import ImageLimits, decode_image

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"
EMBEDDER = ColorEmbedder()
HEX = re.compile(r"^#[0-9a-f]{6}$")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    paths = sorted(DATASET.glob("*/*.jpg"))[::11][:24]
    assert len(paths) == 24
    return [decode_image(path.read_bytes(), ImageLimits()) for path in paths]


def garment_on_white(
    colour: tuple[int, int, int], size: tuple[int, int] = (120, 160)
) -> Image.Image:
    image = Image.new("RGB", size, (250, 250, 250))
    image.paste(colour, (30, 30, size[0] - 30, size[1] - 30))
    return image


def test_info_and_protocol() -> None:
    assert isinstance(EMBEDDER, Embedder)
    assert (EMBEDDER.info.dim, EMBEDDER.info.storage) == (DIM, "knn_cosine")
    assert 64 <= DIM <= 128


def test_vectors_are_unit_float32_and_deterministic(photos: list[Image.Image]) -> None:
    vectors = EMBEDDER.embed_images(photos)
    assert vectors.shape == (24, DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert (vectors >= 0).all()
    singles = np.concatenate([EMBEDDER.embed_images([photo]) for photo in photos])
    np.testing.assert_allclose(vectors, singles, atol=1e-7)  # per image either way
    assert EMBEDDER.embed_images([]).shape == (0, DIM)
    value = EMBEDDER.field_value(vectors[0])
    assert isinstance(value, list) and len(value) == DIM


def test_similar_colours_are_closer_than_different_ones() -> None:
    red, dark_red, blue = EMBEDDER.embed_images(
        [
            garment_on_white((200, 20, 20)),
            garment_on_white((180, 30, 25)),
            garment_on_white((20, 40, 200)),
        ]
    )
    assert float(red @ dark_red) > 0.9 > float(red @ blue)


def assert_palette_invariants(fields: dict[str, object]) -> None:
    palette, colours = fields["palette"], fields["colors"]
    assert isinstance(palette, list) and isinstance(colours, list)
    assert 1 <= len(palette) <= 5
    assert abs(sum(entry["fraction"] for entry in palette) - 1.0) <= 1e-6
    for entry in palette:
        assert set(entry) == {"hex", "name", "fraction"}
        assert HEX.match(entry["hex"]) and entry["name"] in COLOR_NAMES
        assert 0 < entry["fraction"] <= 1
    fractions = [entry["fraction"] for entry in palette]
    assert fractions == sorted(fractions, reverse=True)
    assert colours and len(set(colours)) == len(colours)
    assert set(colours) <= {entry["name"] for entry in palette}


def test_palette_invariants_on_real_photos(photos: list[Image.Image]) -> None:
    for photo in photos:
        assert_palette_invariants(EMBEDDER.extra_fields(photo))


def test_white_background_is_ignored() -> None:
    fields = EMBEDDER.extra_fields(garment_on_white((200, 20, 20)))
    assert_palette_invariants(fields)
    assert fields["colors"] == ["red"]


def test_uniform_image_has_one_colour() -> None:
    fields = EMBEDDER.extra_fields(Image.new("RGB", (40, 40), (20, 30, 90)))
    assert fields == {
        "palette": [{"hex": "#141e5a", "name": "navy", "fraction": 1.0}],
        "colors": ["navy"],
        "color_palette_hex": ["#141e5a"],
        "color_palette_freq": [1.0],
        "color_names": ["navy"],
        "color_isolated": False,  # nothing stands on the plain colour
    }


def test_two_colour_shares() -> None:
    image = Image.new("RGB", (100, 100), (0, 0, 0))
    image.paste((255, 215, 0), (0, 0, 75, 100))  # 75% yellow, 25% black; no uniform border
    fields = EMBEDDER.extra_fields(image)
    assert_palette_invariants(fields)
    shares = {entry["name"]: entry["fraction"] for entry in fields["palette"]}  # type: ignore[attr-defined]
    assert shares == pytest.approx({"yellow": 0.75, "black": 0.25}, abs=0.05)
    assert fields["colors"] == ["yellow", "black"]


@pytest.mark.parametrize(
    ("rgb", "name"),
    [
        ((0, 0, 0), "black"),
        ((255, 255, 255), "white"),
        ((128, 128, 128), "grey"),
        ((220, 20, 30), "red"),
        ((255, 140, 0), "orange"),
        ((250, 220, 40), "yellow"),
        ((30, 160, 60), "green"),
        ((30, 90, 220), "blue"),
        ((20, 30, 90), "navy"),
        ((130, 40, 170), "purple"),
        ((255, 105, 180), "pink"),
        ((250, 170, 180), "pink"),
        ((110, 70, 30), "brown"),
        ((225, 205, 170), "beige"),
    ],
)
def test_colour_names(rgb: tuple[int, int, int], name: str) -> None:
    assert colour_name(rgb) == name
