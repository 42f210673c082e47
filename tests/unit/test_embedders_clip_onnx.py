"""The ONNX Runtime CLIP paths against the torch path, on the tiny seeded model.

Tolerances (tests/tolerance.py explains why none is exact):

- ``onnx`` (fp32) is the same computation in another engine: float noise only, so the shared
  ``VECTOR_MIN_COSINE`` (0.9999) holds; measured min 0.999999+ on the 341 validation photos.
- ``onnx-int8`` rounds weights and activations to 8 bits. The issue's bar is a cosine of at
  least ``PARITY_MIN_COSINE`` = 0.99 to the torch vector and a top-10 overlap of at least
  ``TOP10_MIN_OVERLAP`` = 0.9 (measured 2026-11-27, AMD EPYC: image cosine min 0.99994,
  mean 0.99997; text min 0.99938; top-10 overlap 0.972). The overlap is lower than the cosines
  suggest because the seeded model packs all photos within cosine ~0.999 of each other.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import torch
from PIL import Image

from gateway.engines import EngineRuntime
from imgsearch.cli import build_parser
from imgsearch.embedders import clip_onnx, clip_onnx_export
from imgsearch.embedders.base import Embedder, EmbedderInfo
from imgsearch.embedders.clip import ClipEmbedder, write_seeded_checkpoint
from imgsearch.embedders.clip_onnx import OnnxClipEmbedder
from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import ClipSpec, EngineConfig
from imgsearch.errors import ConfigError, EmbedderMismatch, EmbeddingFailed
from imgsearch.images import ImageLimits, decode_image
from indexer.pipeline import PreprocessingEmbedder
from tests.tolerance import VECTOR_MIN_COSINE

PARITY_MIN_COSINE = 0.99
TOP10_MIN_OVERLAP = 0.9
RUNTIMES = ["onnx", "onnx-int8"]
TEXTS = ["a red dress", "blue denim jeans", "a black leather jacket", "white sneakers",
         "a striped shirt", "a straw summer hat", "grey shorts", "a pleated skirt"]  # fmt: skip

Vectors = npt.NDArray[np.float32]


def tiny_spec(checkpoint: Path, runtime: str = "torch", **overrides: object) -> ClipSpec:
    fields = {"model": "imgsearch-tiny", "pretrained": None, "checkpoint": checkpoint}
    return ClipSpec.model_validate(fields | {"runtime": runtime} | overrides)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def reference(tiny_clip_checkpoint: Path) -> ClipEmbedder:
    return ClipEmbedder(tiny_spec(tiny_clip_checkpoint), device="cpu")


@pytest.fixture(scope="module")
def fast(tiny_clip_checkpoint: Path, cache: Path) -> dict[str, OnnxClipEmbedder]:
    return {
        runtime: OnnxClipEmbedder(tiny_spec(tiny_clip_checkpoint, runtime), cache_dir=cache)
        for runtime in RUNTIMES
    }


@pytest.fixture(scope="module")
def photos(clothing_dataset: Path) -> list[Image.Image]:
    paths = sorted((clothing_dataset / "validation").glob("*/*.jpg"))
    assert len(paths) > 300
    return [decode_image(path.read_bytes(), ImageLimits()) for path in paths]


@pytest.fixture(scope="module")
def pixels(reference: ClipEmbedder, photos: list[Image.Image]) -> torch.Tensor:
    """The validation photos preprocessed once (every path preprocesses alike, tested below)."""
    return reference.preprocess_batch(photos)


@pytest.fixture(scope="module")
def catalog(reference: ClipEmbedder, pixels: torch.Tensor) -> Vectors:
    return reference.embed_preprocessed(pixels)


def min_cosine(runtime: str) -> float:
    return VECTOR_MIN_COSINE if runtime == "onnx" else PARITY_MIN_COSINE


def row_cosines(a: Vectors, b: Vectors) -> npt.NDArray[np.float64]:
    x, y = a.astype(np.float64), b.astype(np.float64)
    return np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def top10(queries: Vectors, catalog: Vectors) -> npt.NDArray[np.int64]:
    """Brute-force top 10 of each query over the catalog, the query's own photo left out."""
    scores = queries.astype(np.float64) @ catalog.astype(np.float64).T
    np.fill_diagonal(scores, -np.inf)
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_image_vectors_match_torch_on_the_validation_photos(
    runtime: str, fast: dict[str, OnnxClipEmbedder], pixels: torch.Tensor, catalog: Vectors
) -> None:
    vectors = fast[runtime].embed_preprocessed(pixels)
    assert vectors.shape == catalog.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = row_cosines(vectors, catalog)
    assert cosines.min() >= min_cosine(runtime), f"min {cosines.min():.6f}"


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_text_vectors_match_torch(
    runtime: str, fast: dict[str, OnnxClipEmbedder], reference: ClipEmbedder
) -> None:
    vectors = fast[runtime].embed_texts(TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    cosines = row_cosines(vectors, reference.embed_texts(TEXTS))
    assert cosines.min() >= min_cosine(runtime), f"min {cosines.min():.6f}"
    assert fast[runtime].embed_texts([]).shape == (0, 32)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_searches_over_a_torch_catalog_find_the_same_top10(
    runtime: str, fast: dict[str, OnnxClipEmbedder], pixels: torch.Tensor, catalog: Vectors
) -> None:
    expected = top10(catalog, catalog)
    got = top10(fast[runtime].embed_preprocessed(pixels), catalog)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(expected, got, strict=True)])
    assert overlap >= TOP10_MIN_OVERLAP, f"top-10 overlap {overlap:.4f}"


def test_preprocessing_is_the_torch_paths(
    fast: dict[str, OnnxClipEmbedder], reference: ClipEmbedder, photos: list[Image.Image]
) -> None:
    noise = np.random.default_rng(3).integers(0, 255, (300, 173, 3), dtype=np.uint8)
    for image in [photos[0], Image.fromarray(noise)]:
        expected = reference.preprocess(image)
        for embedder in fast.values():
            torch.testing.assert_close(embedder.preprocess(image), expected, atol=1e-6, rtol=0)


def test_without_the_fast_preprocess_it_is_open_clips_transform(
    tiny_clip_checkpoint: Path,
    cache: Path,
    fast: dict[str, OnnxClipEmbedder],
    reference: ClipEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(clip_onnx._FastPreprocess, "from_cfg", lambda cfg: None)
    embedder = OnnxClipEmbedder(tiny_spec(tiny_clip_checkpoint, "onnx"), cache_dir=cache)
    image = Image.fromarray(np.random.default_rng(4).integers(0, 255, (90, 61, 3), np.uint8))
    expected = reference._transform(image)
    torch.testing.assert_close(embedder.preprocess(image), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_photos_vector_does_not_depend_on_its_batch(
    runtime: str, fast: dict[str, OnnxClipEmbedder], photos: list[Image.Image]
) -> None:
    """int8 quantises activations per call, so the int8 path embeds one input per call."""
    embedder = fast[runtime]
    assert isinstance(embedder, Embedder) and isinstance(embedder, PreprocessingEmbedder)
    few = photos[:5]
    singles = np.concatenate([embedder.embed_images([photo]) for photo in few])
    np.testing.assert_allclose(embedder.embed_images(few), singles, atol=1e-5)
    texts = embedder.embed_texts(TEXTS[:3])
    for text, row in zip(TEXTS[:3], texts, strict=True):
        np.testing.assert_allclose(embedder.embed_texts([text])[0], row, atol=1e-5)
    assert embedder.embed_images([]).shape == (0, 32)
    value = embedder.field_value(singles[0])
    assert isinstance(value, list) and len(value) == 32 and isinstance(value[0], float)
    assert embedder.extra_fields(few[0]) == {}


def test_versions_name_the_runtime(
    fast: dict[str, OnnxClipEmbedder], reference: ClipEmbedder
) -> None:
    base = reference.info.version
    assert base.startswith("open_clip/imgsearch-tiny/sha256:")  # unchanged for torch
    for runtime, embedder in fast.items():
        assert embedder.info == EmbedderInfo("clip", f"{base}+{runtime}", 32, "knn_cosine")


def test_gateway_guard_refuses_an_index_written_by_another_runtime(
    fast: dict[str, OnnxClipEmbedder], reference: ClipEmbedder
) -> None:
    config = EngineConfig(hashid="shop", alias="shop")
    engine = EngineRuntime(config, lambda _config, _field: fast["onnx-int8"])
    for other in (reference.info, fast["onnx"].info):
        with pytest.raises(EmbedderMismatch, match=r"\+onnx-int8"):
            engine.verify({"clip": other}, "clip")
    engine.verify({"clip": fast["onnx-int8"].info}, "clip")


def test_the_export_is_cached(
    tiny_clip_checkpoint: Path,
    cache: Path,
    fast: dict[str, OnnxClipEmbedder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (folder,) = cache.iterdir()
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["image-int8.onnx", "image.onnx", "meta.json", "text-int8.onnx", "text.onnx"]
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def no_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(clip_onnx_export, "_export_fp32", no_export)
    monkeypatch.setattr(clip_onnx_export, "_quantize", no_export)
    for runtime in RUNTIMES:
        again = OnnxClipEmbedder(tiny_spec(tiny_clip_checkpoint, runtime), cache_dir=cache)
        assert again.info == fast[runtime].info
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def test_other_weights_get_another_cache_folder(
    tmp_path: Path, cache: Path, fast: dict[str, OnnxClipEmbedder]
) -> None:
    other = tiny_spec(write_seeded_checkpoint(tmp_path / "seed1.pt", seed=1), "onnx")
    (ours,) = cache.iterdir()
    theirs = clip_onnx_export.export_folder(clip_onnx_export.weights_version(other), cache)
    assert theirs.parent == ours.parent and theirs.name != ours.name


def test_an_export_that_does_not_reproduce_torch_is_refused_and_not_kept(
    tiny_clip_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(clip_onnx_export, "MIN_EXPORT_COSINE", 1.01)  # nothing can pass
    with pytest.raises(ConfigError, match=r"image\.onnx reproduces its source only"):
        OnnxClipEmbedder(tiny_spec(tiny_clip_checkpoint, "onnx"), cache_dir=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_bad_batch_is_embedding_failed(fast: dict[str, OnnxClipEmbedder]) -> None:
    for embedder in fast.values():
        with pytest.raises(EmbeddingFailed, match="CLIP image embedding failed"):
            embedder.embed_preprocessed(torch.zeros(2, 3, 7))


def test_registry_builds_the_configured_runtime(
    tiny_clip_checkpoint: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMGSEARCH_ONNX_CACHE", str(cache))
    built = build_embedder(tiny_spec(tiny_clip_checkpoint, "onnx-int8"), device="cpu")
    assert isinstance(built, OnnxClipEmbedder)
    assert built.info.version.endswith("+onnx-int8")
    assert isinstance(build_embedder(tiny_spec(tiny_clip_checkpoint)), ClipEmbedder)


def test_runtime_config() -> None:
    assert ClipSpec().runtime == "torch"
    assert ClipSpec(runtime="onnx-int8", device="auto").runtime == "onnx-int8"
    with pytest.raises(ValueError, match="runs on the CPU"):
        ClipSpec(runtime="onnx", device="cuda")
    with pytest.raises(ValueError, match="runtime"):
        ClipSpec.model_validate({"runtime": "tensorrt"})


def test_onnx_refuses_a_cuda_override(tiny_clip_checkpoint: Path, cache: Path) -> None:
    with pytest.raises(ConfigError, match="runs on the CPU"):
        OnnxClipEmbedder(tiny_spec(tiny_clip_checkpoint, "onnx"), device="cuda", cache_dir=cache)


def test_export_command(
    tiny_clip_checkpoint: Path,
    cache: Path,
    tmp_path: Path,
    fast: dict[str, OnnxClipEmbedder],
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = tmp_path / "engine.yaml"
    engine.write_text(
        "hashid: shop\nalias: shop\nvectors:\n"
        "  clip:\n    embedder: clip\n    model: imgsearch-tiny\n    pretrained: null\n"
        f"    checkpoint: {tiny_clip_checkpoint}\n    runtime: onnx-int8\n"
        "  color:\n    embedder: color\n"
    )

    def run(*args: str) -> int:
        parsed = build_parser().parse_args(["export-onnx", "--engine", str(engine), *args])
        code: int = parsed.handler(parsed)
        return code

    assert run("--cache-dir", str(cache)) == 0  # already exported by the fixture: kept
    out = capsys.readouterr().out
    assert out.startswith("clip: CLIP imgsearch-tiny (open_clip/imgsearch-tiny/sha256:")
    for name in ("image.onnx", "text.onnx", "image-int8.onnx", "text-int8.onnx"):
        assert name in out
    assert run("--field", "color") == 2
    assert "'color' is not a clip vector field" in capsys.readouterr().out
