"""The neutral catalog service: every operation a dialect may call, on one object.

``ServiceCore`` (``core.py``) holds the client, the engines and the query-image steps; the
operations live beside it by kind: similarity reads (``search_ops.py``), record reads and
edits (``record_ops.py``), inserts through the indexer's pipeline (``write_ops.py``) and
collections created over HTTP with their keys and long jobs (``collection_ops.py``) and
their fine-tuning (``finetune_ops.py``).
"""

from __future__ import annotations

import threading
from typing import Any

from anyio import to_thread

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.service.collection_store import CollectionStore, template_config
from gateway.service.finetune_ops import FinetuneOps
from gateway.service.key_store import KeyStore
from gateway.service.sync_jobs import SyncJobs
from gateway.service.system_index import SystemIndex
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import EngineConfig
from imgsearch.finetune.store import AdapterStore
from imgsearch.search_client import make_client


class CatalogService(FinetuneOps):
    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.jobs = SyncJobs(self.client, self.registry)

    async def sync(self, engine: EngineRuntime) -> None:
        """Start syncing the engine's folder or bucket in the background (``Conflict`` if
        a sync is running)."""
        await to_thread.run_sync(self.jobs.start, engine)

    async def sync_state(self, engine: EngineRuntime) -> dict[str, Any]:
        return await self._backend(lambda: self.jobs.read_state(engine))

    @classmethod
    def create(cls, settings: GatewaySettings, engines: dict[str, EngineConfig]) -> CatalogService:
        """The service for ``engines`` on the cluster and with the limits of ``settings``."""

        loaded: dict[str, Embedder] = {}
        lock = threading.Lock()

        def make_embedder(config: EngineConfig, field: str) -> Embedder:
            # Engines with the same embedder spec (every collection made from one template)
            # share one loaded model.
            spec = config.vectors[field]
            key = spec.model_dump_json()
            with lock:
                if key not in loaded:
                    loaded[key] = build_embedder(spec, device=settings.device)
                return loaded[key]

        client = make_client(
            settings.opensearch_url,
            timeout_s=settings.search_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
            max_retries=settings.opensearch_retries,
            pool_size=settings.opensearch_pool_size,
        )
        system = SystemIndex(client)
        collections = CollectionStore(system, template_config(settings.collection_template))
        registry = EngineRegistry(
            engines, make_embedder, source=collections, ttl_s=settings.engine_ttl_s,
            load_adapter=AdapterStore(client).load,
        )  # fmt: skip
        return cls(
            client=client,
            registry=registry,
            settings=settings,
            metrics=GatewayMetrics(),
            collections=collections,
            keys=KeyStore(system),
        )
