"""CLIP on ONNX Runtime: the torch path's weights and preprocessing, a faster CPU engine.

Shops run the gateway on CPUs, where embedding the query photo is most of a search's time.
``runtime: onnx`` runs the same towers through ONNX Runtime (graph optimisation on); ``onnx-int8``
also stores the MatMul weights as int8 and quantises activations per call. The towers are
exported from the configured open_clip weights on first use (or by ``imgsearch export-onnx``)
and cached. The version string names the runtime, so the gateway refuses to query an index
written by another runtime: int8 vectors are close to the fp32 ones, not equal (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import open_clip
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.embedders.clip import ClipPreprocessing, _FastPreprocess
from imgsearch.embedders.clip_onnx_export import (
    cache_root,
    ensure_exported,
    open_session,
    weights_version,
)
from imgsearch.engine_config import ClipSpec
from imgsearch.errors import ConfigError, EmbeddingFailed


class OnnxClipEmbedder(ClipPreprocessing):
    """Image and text towers as two ONNX Runtime sessions; same space as ``ClipEmbedder``."""

    def __init__(
        self, spec: ClipSpec, *, device: str | None = None, cache_dir: Path | None = None
    ) -> None:
        if spec.runtime == "torch":
            raise ConfigError("OnnxClipEmbedder needs runtime onnx or onnx-int8")
        if (device or spec.device) == "cuda":  # "auto" means the CPU here
            raise ConfigError(
                f"runtime {spec.runtime!r} runs on the CPU; use runtime torch on cuda"
            )
        weights = weights_version(spec)
        towers = ensure_exported(spec, spec.runtime, weights, cache_root(cache_dir))
        self._image = open_session(towers.image)
        self._text = open_session(towers.text)
        self._tokenizer = open_clip.get_tokenizer(spec.model)
        self._fast = _FastPreprocess.from_cfg(towers.preprocess)
        self._transform: Any = None
        if self._fast is None:
            self._transform = image_transform_v2(PreprocessCfg(**towers.preprocess), is_train=False)
        self._batch_size = spec.batch_size
        # int8 activations are quantised with one scale per call: in a batch, a photo's vector
        # would depend on its batch-mates. One input per call keeps each vector its own
        # (indexed = queried, a retry = the first try), at a cost in indexing throughput.
        self._one_per_call = spec.runtime == "onnx-int8"
        version = f"{weights}+{spec.runtime}"
        self._info = EmbedderInfo(embedder="clip", version=version, dim=towers.dim,
                                  storage="knn_cosine")  # fmt: skip

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    def embed_preprocessed(self, batch: torch.Tensor) -> npt.NDArray[np.float32]:
        """Embed a stacked ``(n, 3, H, W)`` batch from ``preprocess``."""
        try:
            return self._run(self._image, "pixels", batch.numpy().astype(np.float32, copy=False))
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise EmbeddingFailed(f"CLIP image embedding failed: {exc}") from exc

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        chunks = [
            self.embed_preprocessed(self.preprocess_batch(images[start : start + self._batch_size]))
            for start in range(0, len(images), self._batch_size)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, self._info.dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self._info.dim), np.float32)
        try:
            return self._run(self._text, "tokens", self._tokenizer(list(texts)).numpy())
        except Exception as exc:
            raise EmbeddingFailed(f"CLIP text embedding failed: {exc}") from exc

    def _run(self, session: Any, name: str, inputs: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        if not self._one_per_call or len(inputs) <= 1:
            rows = session.run(None, {name: inputs})[0]
        else:
            rows = np.concatenate([session.run(None, {name: row[None]})[0] for row in inputs])
        return np.ascontiguousarray(rows, dtype=np.float32)

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        return [float(x) for x in row]

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        return {}
