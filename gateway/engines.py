"""The engines the gateway serves: config, lazily loaded embedders, index check.

An engine's embedder for a vector field is built on first use (model loading is slow) and
shared by all requests. Before a field is queried, the index mapping's ``_meta`` is compared
with the embedder, so a query is never embedded by a different model than the catalog.

A fine-tuned index records its adapter in that ``_meta`` (``<base version>+adapter:<id>``):
the check then puts that adapter on the config's frozen embedder (loaded by id from the
adapter store), so the alias swap at the end of a fine-tuning is the one switch for every
gateway instance. The check is repeated every ``recheck_s`` to notice such a swap; a search
that finds it due runs it beside its query's embedding (``ServiceCore._checked_query_vector``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from imgsearch.embedders.adapted import adapt, unadapted
from imgsearch.embedders.base import Embedder, EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import EmbedderMismatch, UnknownEngine
from imgsearch.finetune.adapter import Adapter, split_version

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[[EngineConfig, str], Embedder]
AdapterLoader = Callable[[str], Adapter]
RECHECK_S = 1.0


@dataclass
class EngineRuntime:
    config: EngineConfig
    make_embedder: EmbedderFactory
    load_adapter: AdapterLoader | None = None
    recheck_s: float = RECHECK_S
    _embedders: dict[str, Embedder] = field(default_factory=dict)  # the frozen ones
    _active: dict[str, Embedder] = field(default_factory=dict)  # with the index's adapter
    _checked: dict[str, float] = field(default_factory=dict)  # monotonic time of the check
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def hashid(self) -> str:
        return self.config.hashid

    @property
    def vector_field(self) -> str:
        """The field queries use unless a request names another."""
        return self.config.query_vector_field

    def verified(self, vector_field: str) -> bool:
        """Checked against the index less than ``recheck_s`` ago."""
        checked = self._checked.get(vector_field)
        return checked is not None and time.monotonic() - checked < self.recheck_s

    def verified_once(self, vector_field: str) -> bool:
        """Checked against the index at least once since start-up (a check may be due)."""
        return vector_field in self._checked

    def base_embedder(self, vector_field: str | None = None) -> Embedder:
        """The frozen embedder the engine config names (no fine-tuning adapter)."""
        name = vector_field or self.vector_field
        with self._lock:
            embedder = self._embedders.get(name)
            if embedder is None:
                logger.info("loading embedder for %s.%s", self.hashid, name)
                embedder = self._embedders[name] = self.make_embedder(self.config, name)
            return embedder

    def embedder(self, vector_field: str | None = None) -> Embedder:
        """What queries of the field are embedded with: the frozen embedder plus the adapter
        the index was written through (as of the last ``verify``)."""
        name = vector_field or self.vector_field
        with self._lock:
            active = self._active.get(name)
        return active if active is not None else self.base_embedder(name)

    def verify(self, indexed: dict[str, EmbedderInfo], vector_field: str) -> None:
        """Refuse to query a field written by another embedder/version/dimension."""
        theirs = indexed.get(vector_field)
        if theirs is None:
            raise EmbedderMismatch(
                f"Index '{self.config.alias}' has no recorded embedder for '{vector_field}'"
            )
        embedder = self._with_adapter(vector_field, theirs)
        ours = embedder.info
        if (theirs.embedder, theirs.version, theirs.dim) != (ours.embedder, ours.version, ours.dim):
            raise EmbedderMismatch(
                f"Index '{self.config.alias}' field '{vector_field}' was written by "
                f"{theirs.embedder} {theirs.version} (dim {theirs.dim}); the gateway has "
                f"{ours.embedder} {ours.version} (dim {ours.dim}). Rebuild the index or fix "
                "the engine config."
            )
        with self._lock:
            self._active[vector_field] = embedder
            self._checked[vector_field] = time.monotonic()

    def _with_adapter(self, vector_field: str, theirs: EmbedderInfo) -> Embedder:
        """The frozen embedder with the adapter ``theirs`` names (if it names one for it)."""
        base = self.base_embedder(vector_field)
        base_version, adapter_id = split_version(theirs.version)
        if adapter_id is None or self.load_adapter is None or base_version != base.info.version:
            return base  # compared as it is: a mismatch, if any, is reported as such
        current = self.embedder(vector_field)
        _, adapter = unadapted(current)
        if adapter is not None and adapter.adapter_id == adapter_id:
            return current
        logger.info("%s.%s: fine-tuning adapter %s", self.hashid, vector_field, adapter_id[:12])
        return adapt(base, self.load_adapter(adapter_id))


class ConfigSource(Protocol):
    """Where engines created at run time live (the collections in the system index)."""

    def load_config(self, hashid: str) -> EngineConfig | None: ...


@dataclass
class _Stored:
    runtime: EngineRuntime
    checked: float  # time.monotonic() of the last read from the source


class EngineRegistry:
    """File engines, fixed at start-up, plus engines read from a ``ConfigSource``.

    A stored engine is looked up on first use and read again once ``ttl_s`` has passed, so
    every gateway sees engines created, changed or deleted by another one within ``ttl_s``.
    Its runtime (loaded embedders, index check) is kept while its config is unchanged.
    """

    def __init__(
        self,
        configs: dict[str, EngineConfig],
        make_embedder: EmbedderFactory,
        source: ConfigSource | None = None,
        ttl_s: float = 5.0,
        load_adapter: AdapterLoader | None = None,
    ) -> None:
        self.make_embedder = make_embedder
        self.load_adapter = load_adapter
        self._engines = {
            hashid: EngineRuntime(config, make_embedder, load_adapter)
            for hashid, config in configs.items()
        }
        self._source = source
        self._ttl_s = ttl_s
        self._stored: dict[str, _Stored] = {}
        self._lock = threading.Lock()

    def get(self, hashid: str) -> EngineRuntime:
        engine = self._engines.get(hashid)
        if engine is not None:
            return engine
        with self._lock:
            stored = self._stored.get(hashid)
        if stored is not None and time.monotonic() - stored.checked < self._ttl_s:
            return stored.runtime
        return self.reload(hashid)

    def reload(self, hashid: str) -> EngineRuntime:
        """Read a stored engine's config now (after this gateway changed it, say)."""
        config = self._source.load_config(hashid) if self._source is not None else None
        with self._lock:
            if config is None:
                self._stored.pop(hashid, None)
                raise UnknownEngine(f"Unknown search engine {hashid!r}")
            stored = self._stored.get(hashid)
            if stored is None or stored.runtime.config != config:
                runtime = EngineRuntime(config, self.make_embedder, self.load_adapter)
                stored = _Stored(runtime, 0.0)
                self._stored[hashid] = stored
            stored.checked = time.monotonic()
            return stored.runtime

    def is_file_engine(self, hashid: str) -> bool:
        return hashid in self._engines

    def __iter__(self) -> Iterator[EngineRuntime]:
        """The file engines (stored ones are listed by their own store)."""
        return iter(self._engines.values())

    def hashids(self) -> list[str]:
        return sorted(self._engines)
