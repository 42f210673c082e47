"""Colour search, pure parts: the ``color`` parameter, the colour query vector (same space as
the indexed descriptor), the stored palette fields, ``color_isolated``, the re-rank DSL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gateway.search.color_query import MAX_COLORS, parse_colors, with_colors
from gateway.search.dsl import build_msearch, knn_query
from gateway.search.model import (
    ColorQuery,
    ImageQuery,
    ItemQuery,
    MultiQuery,
    SearchRequest,
    Terms,
    VectorRerank,
)
from imgsearch.embedders.color import (
    MAX_QUERY_COLOURS,
    ColorEmbedder,
    colour_query_vector,
    is_isolated,
    parse_hex,
    small_rgb,
)
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import FeatureDisabled, InvalidRequest, MissingFields
from imgsearch.mapping import build_index_body
from tests.tolerance import VECTOR_MIN_COSINE
from tests.tolerance import cosine as _cosine
from tests.unit.search_config import CONFIG

EMBEDDER = ColorEmbedder()


def cosine(a: Any, b: Any) -> float:
    return _cosine(list(a), list(b))


# ---------------------------------------------------------------- the color parameter


@pytest.mark.parametrize(
    ("text", "expected", "why"),
    [
        ("#0a7e8c:0.7,#ffffff:0.3", (("#0a7e8c", 0.7), ("#ffffff", 0.3)), "the issue's example"),
        ("0A7E8C", (("#0a7e8c", 1.0),), "no '#', upper case, no weight"),
        ("#f00,#fff", (("#ff0000", 0.5), ("#ffffff", 0.5)), "short forms, equal shares"),
        ("#f00:70, #fff:30", (("#ff0000", 0.7), ("#ffffff", 0.3)), "percentages, spaces"),
        ("#f00:1,#f00:1", (("#ff0000", 0.5), ("#ff0000", 0.5)), "repeats are kept"),
        (",".join(["#123456"] * 5), tuple(("#123456", 0.2) for _ in range(5)), "five"),
    ],
)
def test_parse_colors(text: str, expected: tuple[tuple[str, float], ...], why: str) -> None:
    parsed = parse_colors(text)
    assert [h for h, _ in parsed.colors] == [h for h, _ in expected], why
    assert [w for _, w in parsed.colors] == pytest.approx([w for _, w in expected]), why


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "give 1 to 5"),
        ("  ", "give 1 to 5"),
        ("#f00,", "give 1 to 5"),
        (",".join(["#123456"] * 6), "at most 5 colours"),
        ("#12345", "not a hex colour"),
        ("red", "not a hex colour"),
        ("#gg0000", "not a hex colour"),
        ("#f00:0.5,#fff", "every colour or to none"),
        ("#f00:0", "must be positive"),
        ("#f00:-1", "must be positive"),
        ("#f00:nan", "must be positive"),
        ("#f00:inf", "must be positive"),
        ("#f00:abc", "not a number"),
        ("#f00:" + "1" * 300, "at most 200 characters"),
    ],
)
def test_bad_colors_name_the_parameter(text: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_colors(text, "color")
    assert caught.value.message.startswith("Invalid color") and message in caught.value.message


def test_limits_agree() -> None:
    assert MAX_COLORS == MAX_QUERY_COLOURS


def _request(config: EngineConfig = CONFIG) -> SearchRequest:
    return SearchRequest(engine=config.hashid, vector_field=config.query_vector_field, k=50)


def test_with_colors_alone_searches_the_colour_field() -> None:
    colours = parse_colors("#0a7e8c")
    query, req = with_colors(None, colours, _request(), CONFIG)
    assert query == colours and req.vector_field == "color" and req.rerank is None


def test_with_colors_beside_an_image_reranks_its_pool() -> None:
    colours = parse_colors("#0a7e8c")
    image = ImageQuery(b"x")
    query, req = with_colors(image, colours, _request(), CONFIG)
    assert query == image and req.vector_field == "clip"
    assert req.rerank == VectorRerank("color", colours, CONFIG.gateway.color_weight)


def test_with_colors_refusals() -> None:
    no_colour = CONFIG.model_copy(update={"vectors": {"clip": CONFIG.vectors["clip"]}})
    with pytest.raises(FeatureDisabled):
        with_colors(None, parse_colors("#fff"), _request(no_colour), no_colour)
    with pytest.raises(MissingFields):
        with_colors(None, None, _request(), CONFIG)
    several = MultiQuery((ImageQuery(b"a"), ItemQuery("id", "b")))
    with pytest.raises(InvalidRequest):
        with_colors(several, parse_colors("#fff"), _request(), CONFIG)
    image = ImageQuery(b"x")
    assert with_colors(image, None, _request(), CONFIG) == (image, _request())


# ---------------------------------------------------------------- the colour query vector


def _image(parts: list[tuple[tuple[int, int, int], int]], side: int = 64) -> Image.Image:
    """A ``side`` x ``side`` image of vertical stripes: (colour, columns)."""
    image = Image.new("RGB", (side, side))
    left = 0
    for colour, columns in parts:
        image.paste(colour, (left, 0, left + columns, side))
        left += columns
    assert left == side
    return image


@pytest.mark.parametrize(
    ("colours", "stripes"),
    [
        ((("#0a7e8c", 1.0),), [((10, 126, 140), 64)]),
        ((("#c81e1e", 3.0), ("#1e3cc8", 1.0)), [((200, 30, 30), 48), ((30, 60, 200), 16)]),
        (
            (("#ffffff", 0.5), ("#000000", 0.25), ("#ffd700", 0.25)),
            [((255, 255, 255), 32), ((0, 0, 0), 16), ((255, 215, 0), 16)],
        ),
    ],
)
def test_colour_query_is_the_descriptor_of_an_image_of_those_colours(
    colours: tuple[tuple[str, float], ...], stripes: list[tuple[tuple[int, int, int], int]]
) -> None:
    """Same space as indexing: the query equals the embedding of an image made of the
    colours in those proportions (no uniform border, so nothing is left out as background)."""
    query = EMBEDDER.embed_colours(colours)
    indexed = EMBEDDER.embed_images([_image(stripes)])[0]
    assert query.shape == indexed.shape and query.dtype == np.float32
    assert abs(float(np.linalg.norm(query)) - 1.0) <= 1e-6
    assert cosine(query, indexed) >= VECTOR_MIN_COSINE


def test_colour_query_ranks_matching_garments_first() -> None:
    teal = EMBEDDER.embed_colours((("#0a7e8c", 1.0),))
    garments = {
        name: EMBEDDER.embed_images([_on_white(rgb)])[0]
        for name, rgb in {
            "teal": (12, 120, 135),
            "red": (200, 20, 20),
            "navy": (20, 30, 90),
            "green": (30, 160, 60),
        }.items()
    }
    ranked = sorted(garments, key=lambda name: -float(teal @ garments[name]))
    assert ranked[0] == "teal"


def test_weights_are_shares() -> None:
    a = colour_query_vector([("#ff0000", 0.7), ("#ffffff", 0.3)])
    b = colour_query_vector([("#ff0000", 70), ("#ffffff", 30)])
    assert cosine(a, b) >= VECTOR_MIN_COSINE
    mostly_red = colour_query_vector([("#ff0000", 0.9), ("#ffffff", 0.1)])
    red = colour_query_vector([("#ff0000", 1.0)])
    assert cosine(mostly_red, red) > cosine(a, red)


@pytest.mark.parametrize(
    "bad",
    [[], [("#fff", 1.0)] * 6, [("#ggg", 1.0)], [("#fff", 0.0)], [("#fff", float("nan"))]],
)
def test_colour_query_vector_refuses(bad: list[tuple[str, float]]) -> None:
    with pytest.raises(ValueError):
        colour_query_vector(bad)


def test_parse_hex() -> None:
    assert parse_hex("#0a7e8c") == (10, 126, 140) == parse_hex("0A7E8C")
    assert parse_hex("#fa0") == (255, 170, 0)
    with pytest.raises(ValueError):
        parse_hex("#0a7e8")


# ---------------------------------------------------------------- stored fields


def _on_white(colour: tuple[int, int, int], size: tuple[int, int] = (120, 160)) -> Image.Image:
    image = Image.new("RGB", size, (250, 250, 250))
    image.paste(colour, (30, 30, size[0] - 30, size[1] - 30))
    return image


def _noisy(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("image", "isolated", "why"),
    [
        (_on_white((200, 20, 20)), True, "a garment on a white background"),
        (_on_white((20, 30, 90), (300, 200)), True, "landscape, navy on white"),
        (Image.new("RGB", (50, 50), (20, 30, 90)), False, "one plain colour: nothing stands on it"),
        (_image([((255, 215, 0), 48), ((0, 0, 0), 16)]), False, "two blocks, both on the border"),
        (_noisy(1), False, "texture everywhere, no plain border"),
        (_on_white((247, 247, 247)), False, "an object within the background's tolerance"),
    ],
)  # fmt: skip
def test_color_isolated(image: Image.Image, isolated: bool, why: str) -> None:
    assert is_isolated(small_rgb(image)) is isolated, why
    assert EMBEDDER.extra_fields(image)["color_isolated"] is isolated, why


def test_palette_fields_are_aligned_lists() -> None:
    fields: dict[str, Any] = EMBEDDER.extra_fields(_image([((255, 215, 0), 48), ((0, 0, 0), 16)]))
    palette = fields["palette"]
    assert fields["color_palette_hex"] == [entry["hex"] for entry in palette]
    assert fields["color_palette_freq"] == [entry["fraction"] for entry in palette]
    assert fields["color_names"] == [entry["name"] for entry in palette]
    assert fields["color_names"][:2] == ["yellow", "black"]
    assert fields["color_palette_freq"] == sorted(fields["color_palette_freq"], reverse=True)
    assert sum(fields["color_palette_freq"]) == pytest.approx(1.0, abs=1e-9)
    assert fields["color_palette_freq"][0] == pytest.approx(0.75, abs=0.05)


def test_the_embedder_version_names_the_new_fields() -> None:
    assert EMBEDDER.info.version.endswith("/v2")


# ---------------------------------------------------------------- re-rank DSL


def test_rerank_wraps_the_knn_pool_in_a_weighted_sum() -> None:
    req = replace(
        _request(),
        vector=[1.0, 0.0],
        filters={"brand": Terms("brand", ("acme",))},
        rerank=VectorRerank("color", ColorQuery((("#fff", 1.0),)), 0.25, vector=(0.0, 1.0)),
    )
    body = knn_query(req, CONFIG)
    scored = body["function_score"]
    knn = scored["query"]["knn"]["clip"]
    assert knn["k"] == 50 and knn["boost"] == 0.75 and knn["vector"] == [1.0, 0.0]
    assert knn["filter"] == {"terms": {"brand": ["acme"]}}
    (function,) = scored["functions"]
    assert function["weight"] == 0.25 and scored["boost_mode"] == "sum"
    assert function["script_score"]["script"] == {
        "lang": "knn",
        "source": "knn_score",
        "params": {"field": "color", "query_value": [0.0, 1.0], "space_type": "cosinesimil"},
    }
    # the same pool body (and its facets) as without the rerank
    lines = build_msearch(req, CONFIG, "shop")
    assert lines[1]["query"] == body


def test_rerank_without_weight_or_vector() -> None:
    base = replace(_request(), vector=[1.0, 0.0])
    plain = knn_query(base, CONFIG)
    colours = ColorQuery((("#fff", 1.0),))
    weightless = replace(base, rerank=VectorRerank("color", colours, 0.0, vector=(1.0,)))
    assert knn_query(weightless, CONFIG) == plain
    with pytest.raises(MissingFields):
        knn_query(replace(base, rerank=VectorRerank("color", colours, 0.5)), CONFIG)


def test_the_mapping_has_the_colour_fields() -> None:
    infos = {name: EMBEDDER.info for name in CONFIG.vectors}
    properties = build_index_body(CONFIG, infos)["mappings"]["properties"]
    types = {name: properties[name]["type"] for name in properties if name.startswith("color_")}
    assert types == {
        "color_palette_hex": "keyword",
        "color_palette_freq": "double",
        "color_names": "keyword",
        "color_isolated": "boolean",
    }
    for name in types:
        with pytest.raises(ValueError, match="reserved"):
            EngineConfig.model_validate(
                {"hashid": "x", "alias": "x", "fields": {name: {"type": "keyword"}}}
            )
