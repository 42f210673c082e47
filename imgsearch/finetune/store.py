"""Adapters in OpenSearch (``imgsearch-adapters``), so every gateway instance can load them.

One document per adapter, its id the adapter's content hash; its stages are stored as their
kind and named base64 float32 arrays with their shapes (not indexed). Documents written before
stages existed hold one ``matrix`` and load as a single linear stage. An adapter never
changes once written, so a process caches what it loaded, and a load checks that the bytes
still hash to the id asked for.
"""

from __future__ import annotations

import base64
import logging
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from imgsearch.embedders.adapted import adapt
from imgsearch.embedders.base import Embedder
from imgsearch.errors import EmbedderMismatch, NotFound
from imgsearch.finetune.adapter import Adapter, Stage, make_stage, split_version
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)

ADAPTERS_INDEX = "imgsearch-adapters"
_MAPPING = {
    "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
    "mappings": {
        "dynamic": False,
        "properties": {
            "base_version": {"type": "keyword"},
            "created": {"type": "date"},
            "matrix": {"type": "object", "enabled": False},
            "stages": {"type": "object", "enabled": False},
        },
    },
}


class AdapterStore:
    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self._cache: dict[str, Adapter] = {}
        self._lock = threading.Lock()

    def save(self, adapter: Adapter, training: dict[str, object] | None = None) -> str:
        """Write ``adapter`` (idempotent: same content, same id) and return its id."""
        adapter_id = adapter.adapter_id
        body = {
            "base_version": adapter.base_version,
            "dim": adapter.dim,
            "stages": [_stage_doc(stage) for stage in adapter.stages],
            "created": datetime.now(UTC).isoformat(),
            "training": training or {},
        }  # fmt: skip
        with backend_errors():
            if not self.client.indices.exists(index=ADAPTERS_INDEX):
                self.client.indices.create(index=ADAPTERS_INDEX, body=_MAPPING, ignore=[400])
            self.client.index(
                index=ADAPTERS_INDEX, id=adapter_id, body=body, params={"refresh": "true"}
            )
        with self._lock:
            self._cache[adapter_id] = adapter
        return adapter_id

    def load(self, adapter_id: str) -> Adapter:
        """The adapter with this id; ``EmbedderMismatch`` if it is missing or corrupt."""
        with self._lock:
            cached = self._cache.get(adapter_id)
        if cached is not None:
            return cached
        try:
            with backend_errors():
                doc: dict[str, Any] = self.client.get(index=ADAPTERS_INDEX, id=adapter_id)
        except NotFound:
            raise EmbedderMismatch(
                f"adapter {adapter_id} (a fine-tuning of this collection) is not in "
                f"{ADAPTERS_INDEX}; fine-tune again or roll the index back"
            ) from None
        try:
            adapter = _adapter_of(doc["_source"])
        except (KeyError, TypeError, ValueError) as exc:
            message = f"adapter {adapter_id} in {ADAPTERS_INDEX} is corrupt: {exc}"
            raise EmbedderMismatch(message) from None
        if adapter.adapter_id != adapter_id:
            raise EmbedderMismatch(f"adapter {adapter_id} in {ADAPTERS_INDEX} is corrupt")
        with self._lock:
            self._cache[adapter_id] = adapter
        logger.info("loaded adapter %s for %s", adapter_id[:12], adapter.base_version)
        return adapter


def _stage_doc(stage: Stage) -> dict[str, object]:
    return {
        "kind": stage.kind,
        "arrays": {
            name: {"shape": list(array.shape),
                   "f32_base64": base64.b64encode(array.astype("<f4").tobytes()).decode()}
            for name, array in stage.arrays().items()
        },
    }  # fmt: skip


def _array(doc: dict[str, Any]) -> npt.NDArray[np.float32]:
    raw = base64.b64decode(doc["f32_base64"])
    return np.frombuffer(raw, dtype="<f4").reshape([int(n) for n in doc["shape"]])


def _adapter_of(source: dict[str, Any]) -> Adapter:
    base_version, dim = str(source["base_version"]), int(source["dim"])
    if "stages" not in source:  # written before stages: one linear matrix
        raw = base64.b64decode(source["matrix"]["f32_base64"])
        return Adapter.linear(base_version, np.frombuffer(raw, dtype="<f4").reshape(dim, dim))
    stages = tuple(
        make_stage(str(stage["kind"]), {name: _array(a) for name, a in stage["arrays"].items()})
        for stage in source["stages"]
    )
    return Adapter(base_version, dim, stages)


def with_live_adapters(
    client: OpenSearch, alias: str, embedders: dict[str, Embedder]
) -> dict[str, Embedder]:
    """``embedders`` with the adapter each field of the live index was written through, so
    re-indexing a fine-tuned engine keeps its fine-tuning (unchanged without a live index)."""
    with backend_errors():
        if not client.indices.exists_alias(name=alias):
            return embedders
        mappings: dict[str, Any] = client.indices.get_mapping(index=alias)
    if len(mappings) != 1:
        return embedders  # several indexes behind the alias: the indexer reports that itself
    recorded = vector_meta(next(iter(mappings.values())).get("mappings", {}).get("_meta", {}))
    store = AdapterStore(client)
    adapted = dict(embedders)
    for name, embedder in embedders.items():
        info = recorded.get(name)
        base_version, adapter_id = split_version(info.version) if info else ("", None)
        if adapter_id is not None and base_version == embedder.info.version:
            adapted[name] = adapt(embedder, store.load(adapter_id))
    return adapted
