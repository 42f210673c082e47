"""build_embedders: one embedder per vector field, named by the engine config."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.embedders.clip import ClipEmbedder
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.embedders.phash import PhashEmbedder
from imgsearch.embedders.registry import build_embedder, build_embedders
from imgsearch.engine_config import ColorSpec, EngineConfig
from imgsearch.errors import ConfigError


def test_builds_one_embedder_per_vector_field(tiny_clip_checkpoint: Path) -> None:
    clip = {"embedder": "clip", "model": "imgsearch-tiny", "pretrained": None}
    clip["checkpoint"] = str(tiny_clip_checkpoint)
    config = EngineConfig.model_validate(
        {
            "hashid": "shop",
            "alias": "shop",
            "vectors": {
                "clip": clip,
                "clip_again": clip,
                "color": {"embedder": "color"},
                "phash": {"embedder": "phash"},
            },
        }
    )
    embedders = build_embedders(config, device="cpu")
    assert list(embedders) == ["clip", "clip_again", "color", "phash"]
    assert isinstance(embedders["clip"], ClipEmbedder)
    assert embedders["clip_again"] is embedders["clip"]  # one model in memory
    assert isinstance(embedders["color"], ColorEmbedder)
    assert isinstance(embedders["phash"], PhashEmbedder)
    assert {name: e.info.embedder for name, e in embedders.items()} == {
        "clip": "clip",
        "clip_again": "clip",
        "color": "color",
        "phash": "phash",
    }


def test_build_embedder_from_spec() -> None:
    assert isinstance(build_embedder(ColorSpec()), ColorEmbedder)


def test_default_clip_without_local_weights_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ConfigError, match="will not be downloaded"):
        build_embedders(EngineConfig(hashid="shop", alias="shop"))
