"""ClipEmbedder on the tiny seeded architecture, loaded through the real checkpoint path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgsearch.embedders import clip as clip_module
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.clip import ClipEmbedder, write_seeded_checkpoint
from imgsearch.engine_config import ClipSpec
from imgsearch.errors import ConfigError, EmbeddingFailed
from imgsearch.images import ImageLimits, decode_image

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clothing" / "validation"


def tiny_spec(checkpoint: Path, **overrides: object) -> ClipSpec:
    return ClipSpec.model_validate(
        {"model": "imgsearch-tiny", "pretrained": None, "checkpoint": checkpoint} | overrides
    )


@pytest.fixture(scope="module")
def embedder(tiny_clip_checkpoint: Path) -> ClipEmbedder:
    return ClipEmbedder(tiny_spec(tiny_clip_checkpoint, batch_size=3), device="cpu")


@pytest.fixture(scope="module")
def photos() -> list[Image.Image]:
    paths = sorted(DATASET.glob("*/*.jpg"))[::37][:8]
    assert len(paths) == 8
    return [decode_image(path.read_bytes(), ImageLimits()) for path in paths]


def test_info_and_protocol(embedder: ClipEmbedder) -> None:
    assert isinstance(embedder, Embedder)
    info = embedder.info
    assert (info.embedder, info.dim, info.storage) == ("clip", 32, "knn_cosine")
    assert info.version.startswith("open_clip/imgsearch-tiny/sha256:")


def test_image_embeddings_are_unit_float32(
    embedder: ClipEmbedder, photos: list[Image.Image]
) -> None:
    vectors = embedder.embed_images(photos)
    assert vectors.shape == (8, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_deterministic_and_batch_equals_single(
    embedder: ClipEmbedder, photos: list[Image.Image]
) -> None:
    batched = embedder.embed_images(photos)  # batch_size 3: chunks of 3, 3, 2
    # Same shapes, same machine: equal up to float noise (tests/tolerance.py), not bitwise.
    np.testing.assert_allclose(batched, embedder.embed_images(photos), atol=1e-6)
    singles = np.concatenate([embedder.embed_images([photo]) for photo in photos])
    np.testing.assert_allclose(batched, singles, atol=1e-5)


def test_preprocessed_path_matches_embed_images(
    embedder: ClipEmbedder, photos: list[Image.Image]
) -> None:
    batch = torch.stack([embedder.preprocess(photo) for photo in photos])
    np.testing.assert_allclose(
        embedder.embed_preprocessed(batch), embedder.embed_images(photos), atol=1e-5
    )


@pytest.mark.parametrize("size", [(400, 533), (533, 400), (64, 64), (10, 300), (31, 17)])
def test_fast_preprocess_equals_open_clip_transform(
    embedder: ClipEmbedder, size: tuple[int, int]
) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    reference = embedder._transform(image)
    fast = embedder.preprocess(image)
    assert fast.shape == reference.shape == (3, 64, 64)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=0)


def test_text_embeddings(embedder: ClipEmbedder) -> None:
    vectors = embedder.embed_texts(["a red dress", "blue jeans", "a red dress"])
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])
    assert embedder.embed_texts([]).shape == (0, 32)


def test_empty_batch_and_field_value(embedder: ClipEmbedder, photos: list[Image.Image]) -> None:
    assert embedder.embed_images([]).shape == (0, 32)
    value = embedder.field_value(embedder.embed_images(photos[:1])[0])
    assert isinstance(value, list) and len(value) == 32 and isinstance(value[0], float)
    assert embedder.extra_fields(photos[0]) == {}


def test_checkpoint_round_trip(
    tiny_clip_checkpoint: Path, tmp_path: Path, photos: list[Image.Image]
) -> None:
    first = ClipEmbedder(tiny_spec(tiny_clip_checkpoint), device="cpu")
    again = ClipEmbedder(tiny_spec(tiny_clip_checkpoint), device="cpu")
    np.testing.assert_allclose(first.embed_images(photos), again.embed_images(photos), atol=1e-6)
    assert first.info == again.info
    rewritten = write_seeded_checkpoint(tmp_path / "same-seed.pt")
    same_seed = ClipEmbedder(tiny_spec(rewritten), device="cpu")
    np.testing.assert_allclose(
        first.embed_images(photos), same_seed.embed_images(photos), atol=1e-6
    )
    other = ClipEmbedder(
        tiny_spec(write_seeded_checkpoint(tmp_path / "s1.pt", seed=1)), device="cpu"
    )
    assert not np.allclose(first.embed_images(photos), other.embed_images(photos), atol=1e-3)
    assert other.info.version != first.info.version


def test_bad_batch_is_embedding_failed(embedder: ClipEmbedder) -> None:
    with pytest.raises(EmbeddingFailed, match="CLIP image embedding failed"):
        embedder.embed_preprocessed(torch.zeros(2, 3, 7))


def test_missing_checkpoint_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ClipEmbedder(tiny_spec(tmp_path / "nope.pt"))


def test_corrupt_checkpoint_is_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot load CLIP"):
        ClipEmbedder(tiny_spec(bad))


def test_no_weights_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="random weights are never used"):
        ClipEmbedder(ClipSpec(model="imgsearch-tiny", pretrained=None))


def test_unknown_tag() -> None:
    with pytest.raises(ConfigError, match="no pretrained tag 'nope'"):
        ClipEmbedder(ClipSpec(pretrained="nope"))


def test_pretrained_weights_missing_says_how_to_provide_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        ClipEmbedder(ClipSpec())  # ViT-B-32 / laion2b_s34b_b79k, nothing cached
    message = caught.value.message
    assert "ViT-B-32/laion2b_s34b_b79k" in message and "will not be downloaded" in message
    assert "HF_HOME" in message and "checkpoint" in message


def test_pretrained_tag_resolves_to_the_hf_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub.constants

    hub = tmp_path / "hub"
    repo = hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(hub))
    path, version, preprocess = clip_module._resolve_weights(ClipSpec())
    assert path == snapshot / "open_clip_model.safetensors"
    assert version == "open_clip/ViT-B-32/laion2b_s34b_b79k"
    assert preprocess["image_interpolation"] == "bicubic"
