"""Engine configs: what is accepted, what is refused and why, and the derived views."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from imgsearch.engine_config import EngineConfig, PhashSpec, load_engine_config, load_engine_configs
from imgsearch.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "hashid": "shop",
        "alias": "shop",
        "fields": {"brand": {"type": "keyword", "facet": True}, "price": {"type": "number"}},
        "vectors": {"clip": {"embedder": "clip"}},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("raw", "fragment", "why"),
    [
        (config(hashid="Shop"), "lowercase", "index names must be lowercase"),
        (config(alias="a b"), "lowercase", "no spaces in aliases"),
        (config(fields={"t": {"type": "text", "facet": True}}), "text fields", "no text facets"),
        (config(fields={"x": {"type": "geo"}}), "keyword", "unknown field type"),
        (config(fields={"id": {"type": "keyword"}}), "reserved", "id is written by the indexer"),
        (config(fields={"colors": {"type": "keyword"}}), "reserved", "derived from the palette"),
        (config(fields={"bad-name": {"type": "keyword"}}), "invalid field name", "identifiers"),
        (config(fields={"clip": {"type": "keyword"}}), "both field and vector", "name clash"),
        (config(vectors={}), "at least one vector", "nothing to search"),
        (config(vectors={"v": {"embedder": "sift"}}), "embedder", "unknown embedder"),
        (config(gateway={"vector_field": "nope"}), "is not a vector", "unknown query field"),
        (config(vectors={"clip": {"embedder": "clip"}, "hash": {"embedder": "phash"}},
                gateway={"vector_field": "hash"}), "perceptual hash", "phash cannot rank"),
        (config(vectors={"hash": {"embedder": "phash"}}), "phash alone", "no rankable vector"),
        (config(vectors={"clip": {"embedder": "clip"}, "hash": {"embedder": "phash",
                "max_distance": 40}}), "less than or equal to 32", "a radius no query affords"),
        (config(vectors={"clip": {"embedder": "clip"}, "hash": {"embedder": "phash",
                "min_similarity": 1.5}}), "less than or equal to 1", "a correlation"),
        (config(vectors={"clip": {"embedder": "clip"}, "hash": {"embedder": "phash",
                "pairs_max_distance": -1}}), "greater than or equal to 0", "bits"),
        (config(gateway={"facets": [{"field": "price"}]}), "not a facet field", "undeclared facet"),
        (config(gateway={"k": 0}), "greater than or equal to 1", "empty pool"),
        (config(extra_key=1), "Extra inputs", "typos are errors, not silently ignored"),
    ],
)  # fmt: skip
def test_refused(raw: dict[str, Any], fragment: str, why: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        EngineConfig.model_validate(raw)


@pytest.mark.parametrize(
    ("vectors", "gateway", "expected"),
    [
        ({"clip": {"embedder": "clip"}, "color": {"embedder": "color"}}, {}, "clip"),
        ({"color": {"embedder": "color"}, "clip": {"embedder": "clip"}}, {}, "clip"),
        ({"hash": {"embedder": "phash"}, "hist": {"embedder": "color"}}, {}, "hist"),
        ({"clip": {"embedder": "clip"}, "hist": {"embedder": "color"}},
         {"vector_field": "hist"}, "hist"),
    ],
)  # fmt: skip
def test_query_vector_field(
    vectors: dict[str, Any], gateway: dict[str, Any], expected: str
) -> None:
    assert (
        EngineConfig.model_validate(config(vectors=vectors, gateway=gateway)).query_vector_field
        == expected
    )


def test_color_vectors_add_a_colors_facet() -> None:
    plain = EngineConfig.model_validate(config())
    coloured = EngineConfig.model_validate(
        config(vectors={"clip": {"embedder": "clip"}, "hist": {"embedder": "color"}})
    )
    assert "colors" not in plain.facet_fields()
    assert set(coloured.facet_fields()) == {"brand", "colors", "color_names", "color_isolated"}
    assert coloured.color_vector_field == "hist" and plain.color_vector_field is None


def test_phash_settings() -> None:
    raw = config(vectors={"clip": {"embedder": "clip"}, "hash": {"embedder": "phash"}})
    defaults = EngineConfig.model_validate(raw).vectors["hash"]
    assert isinstance(defaults, PhashSpec)
    assert (defaults.max_distance, defaults.pairs_max_distance) == (8, 4)
    tuned = {"embedder": "phash", "max_distance": 6, "min_similarity": 0.9,
             "max_colour_difference": 0.03, "pairs_max_distance": 3}  # fmt: skip
    raw = config(vectors={"clip": {"embedder": "clip"}, "hash": tuned})
    assert EngineConfig.model_validate(raw).vectors["hash"] == PhashSpec.model_validate(tuned)


def test_image_search_off_allows_phash_only() -> None:
    raw = config(vectors={"hash": {"embedder": "phash"}}, gateway={"image_search": False})
    assert EngineConfig.model_validate(raw).vectors["hash"].embedder == "phash"


def test_loading_files_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("hashid: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml"):
        load_engine_config(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"hashid": "x"}')
    with pytest.raises(ConfigError, match=r"(?s)wrong\.json.*alias"):
        load_engine_config(wrong)
    (tmp_path / "bad.yaml").unlink()
    (tmp_path / "a.yaml").write_text("hashid: same\nalias: a\n")
    (tmp_path / "b.yaml").write_text("hashid: same\nalias: b\n")
    wrong.unlink()
    with pytest.raises(ConfigError, match="duplicate hashid"):
        load_engine_configs(tmp_path)


@pytest.mark.parametrize(
    "path", ["engines/clothing.yaml", "demo/engines/clip/demo.yaml", "demo/engines/lite/demo.yaml"]
)
def test_shipped_configs_are_valid(path: str) -> None:
    assert load_engine_config(ROOT / path).hashid
