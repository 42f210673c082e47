"""A frozen embedder with a fine-tuning adapter on top: ``adapter(base(image))``.

Its version is the base version plus the adapter's id (``Adapter.version``), so an index
written through one adapter is never queried through another. Everything else (storage,
dimension, derived fields, preprocessing, the text tower) is the base embedder's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.embedders.base import Embedder, EmbedderInfo, TextEmbedder
from imgsearch.errors import ConfigError
from imgsearch.finetune.adapter import Adapter


class AdaptedEmbedder:
    def __init__(self, base: Embedder, adapter: Adapter) -> None:
        info = base.info
        if info.storage != "knn_cosine":
            raise ConfigError(f"{info.embedder} vectors ({info.storage}) cannot be fine-tuned")
        if (adapter.base_version, adapter.dim) != (info.version, info.dim):
            raise ConfigError(
                f"adapter {adapter.adapter_id[:12]} was learnt for {adapter.base_version} "
                f"(dim {adapter.dim}), not {info.version} (dim {info.dim})"
            )
        self.base = base
        self.adapter = adapter
        self._info = replace(info, version=adapter.version)

    @property
    def info(self) -> EmbedderInfo:
        return self._info

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        rows = self.base.embed_images(images)
        return self.adapter.apply(rows) if len(rows) else rows

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        return self.base.field_value(row)

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        return self.base.extra_fields(image)


class AdaptedClipEmbedder(AdaptedEmbedder):
    """CLIP keeps its text tower (texts land in the adapted space too) and its threaded
    preprocessing (the indexer's pipeline preprocesses in worker threads)."""

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        assert isinstance(self.base, TextEmbedder)
        rows = self.base.embed_texts(texts)
        return self.adapter.apply(rows) if len(rows) else rows

    def preprocess(self, image: Image.Image) -> Any:
        return self.base.preprocess(image)  # type: ignore[attr-defined]

    def embed_preprocessed(self, batch: Any) -> npt.NDArray[np.float32]:
        rows = self.base.embed_preprocessed(batch)  # type: ignore[attr-defined]
        return self.adapter.apply(rows)


def adapt(base: Embedder, adapter: Adapter | None) -> Embedder:
    """``base`` itself without an adapter, else the adapted embedder of the right kind."""
    if adapter is None:
        return base
    if isinstance(base, TextEmbedder) and hasattr(base, "embed_preprocessed"):
        return AdaptedClipEmbedder(base, adapter)
    return AdaptedEmbedder(base, adapter)


def unadapted(embedder: Embedder) -> tuple[Embedder, Adapter | None]:
    """The frozen base embedder and the adapter on it (``None`` if there is none)."""
    if isinstance(embedder, AdaptedEmbedder):
        return embedder.base, embedder.adapter
    return embedder, None
