"""The one interface every embedder implements, shared by indexer and gateway."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from PIL import Image

# How a vector field is stored and compared in OpenSearch (see mappings/).
Storage = Literal["knn_cosine", "hamming_long", "dup_signature"]


@dataclass(frozen=True)
class EmbedderInfo:
    """What the index records in its mapping ``_meta`` for each vector field."""

    embedder: str
    version: str
    dim: int
    storage: Storage

    def as_meta(self) -> dict[str, object]:
        return {
            "embedder": self.embedder,
            "version": self.version,
            "dim": self.dim,
            "storage": self.storage,
        }


@runtime_checkable
class TextEmbedder(Protocol):
    """An embedder with a text tower (CLIP): texts map into the same space as images."""

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns decoded RGB images (and, for CLIP, texts) into fixed-size vectors.

    ``embed_images`` returns float32 ``(n, dim)``; ``field_value`` turns a row into what the
    index stores (for ``dup_signature``, the phash embedder's hashes and thumbnails;
    ``hamming_long``, one packed 64-bit hash, is what phash v1 stored).
    """

    @property
    def info(self) -> EmbedderInfo: ...

    def embed_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]: ...

    def field_value(self, row: npt.NDArray[np.float32]) -> object:
        """The JSON value stored in OpenSearch for one row of ``embed_images``."""
        ...

    def extra_fields(self, image: Image.Image) -> dict[str, object]:
        """Normal fields derived from the image (e.g. the colour palette); may be empty."""
        ...
