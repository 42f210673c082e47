"""The neutral catalog service: every operation a dialect may call, on one object.

``ServiceCore`` (``core.py``) holds the client, the engines and the query-image steps; the
operations live beside it by kind: similarity reads (``search_ops.py``), record reads and
edits (``record_ops.py``) and inserts through the indexer's pipeline (``write_ops.py``).
"""

from __future__ import annotations

from typing import Any

from anyio import to_thread

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.service.sync_jobs import SyncJobs
from gateway.service.write_ops import WriteOps
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import EngineConfig
from imgsearch.search_client import make_client


class CatalogService(WriteOps):
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

        def make_embedder(config: EngineConfig, field: str) -> Embedder:
            return build_embedder(config.vectors[field], device=settings.device)

        return cls(
            client=make_client(
                settings.opensearch_url,
                timeout_s=settings.search_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
                max_retries=settings.opensearch_retries,
                pool_size=settings.opensearch_pool_size,
            ),
            registry=EngineRegistry(engines, make_embedder),
            settings=settings,
            metrics=GatewayMetrics(),
        )
