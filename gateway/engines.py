"""The engines the gateway serves: config, lazily loaded query embedder, index check.

The embedder for an engine's query field is built on first use (model loading is slow) and
shared by all requests. Before the first search the index mapping's ``_meta`` is compared
with the embedder, so a query is never embedded by a different model than the catalog.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from imgsearch.embedders.base import Embedder, EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import EmbedderMismatch, NotFound

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[[EngineConfig, str], Embedder]


@dataclass
class EngineRuntime:
    config: EngineConfig
    make_embedder: EmbedderFactory
    _embedder: Embedder | None = None
    _verified_info: EmbedderInfo | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hashid(self) -> str:
        return self.config.hashid

    @property
    def vector_field(self) -> str:
        return self.config.query_vector_field

    @property
    def verified(self) -> bool:
        return self._verified_info is not None

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                logger.info("loading embedder for %s.%s", self.hashid, self.vector_field)
                self._embedder = self.make_embedder(self.config, self.vector_field)
            return self._embedder

    def verify(self, indexed: dict[str, EmbedderInfo]) -> None:
        """Refuse to query a field written by another embedder/version/dimension."""
        if self._verified_info is not None:
            return
        ours = self.embedder().info
        theirs = indexed.get(self.vector_field)
        if theirs is None:
            raise EmbedderMismatch(
                f"Index '{self.config.alias}' has no recorded embedder for '{self.vector_field}'"
            )
        if (theirs.embedder, theirs.version, theirs.dim) != (ours.embedder, ours.version, ours.dim):
            raise EmbedderMismatch(
                f"Index '{self.config.alias}' field '{self.vector_field}' was written by "
                f"{theirs.embedder} {theirs.version} (dim {theirs.dim}); the gateway has "
                f"{ours.embedder} {ours.version} (dim {ours.dim}). Rebuild the index or fix "
                "the engine config."
            )
        self._verified_info = theirs


class EngineRegistry:
    def __init__(self, configs: dict[str, EngineConfig], make_embedder: EmbedderFactory) -> None:
        self._engines = {
            hashid: EngineRuntime(config, make_embedder) for hashid, config in configs.items()
        }

    def get(self, hashid: str) -> EngineRuntime:
        engine = self._engines.get(hashid)
        if engine is None:
            raise NotFound("Mapping not found")
        return engine

    def __iter__(self) -> Iterator[EngineRuntime]:
        return iter(self._engines.values())

    def hashids(self) -> list[str]:
        return sorted(self._engines)
