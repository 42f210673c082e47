"""I/O side of a search: embed the query image, fetch stored vectors, run the ``_msearch``.

Dialects hand it a neutral ``SearchRequest`` and get a neutral ``SearchResult``; blocking work
(model inference, the OpenSearch client) runs in worker threads so the event loop stays free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from anyio import to_thread
from opensearchpy import OpenSearch

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.search.dsl import build_msearch, item_lookup_body
from gateway.search.model import SearchRequest, SearchResult
from gateway.search.results import read_msearch
from gateway.settings import GatewaySettings
from imgsearch.errors import EmbeddingFailed, ImgSearchError, NotFound
from imgsearch.image_fetch import FetchTimeouts, fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors
from imgsearch.url_guard import public_only_client

logger = logging.getLogger(__name__)


@dataclass
class Timings:
    """Where a request's time went, in milliseconds (exposed as ``Server-Timing``)."""

    observe: Callable[[str, float], None] | None = None
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, started: float) -> None:
        seconds = time.perf_counter() - started
        self.parts[name] = self.parts.get(name, 0.0) + seconds * 1000
        if self.observe is not None:
            self.observe(name, seconds)

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self.parts.items())


@dataclass(frozen=True)
class StoredItem:
    id: str
    vector: list[float]


class SearchService:
    def __init__(
        self,
        *,
        client: OpenSearch,
        registry: EngineRegistry,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.registry = registry
        self.settings = settings
        self.limits = ImageLimits(
            max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels
        )
        self._embed_slots = anyio.Semaphore(settings.embed_concurrency)
        self._http = httpx.Client() if settings.image_url_allow_private else public_only_client()

    def close(self) -> None:
        self._http.close()
        self.client.close()

    def timings(self) -> Timings:
        """A per-request timer that also feeds the stage histograms."""
        return Timings(observe=self.metrics.observe_stage)

    async def fetch_image(self, url: str) -> bytes:
        """Bytes of a client-supplied image URL; local paths are never read for clients."""
        timeouts = FetchTimeouts(
            connect=self.settings.fetch_timeout_s,
            read=self.settings.fetch_timeout_s,
            total=self.settings.fetch_timeout_s * 2,
        )
        return await to_thread.run_sync(
            lambda: fetch_image_bytes(
                url, self.limits, client=self._http, timeout=timeouts, allow_local=False
            )
        )

    async def embed_image(
        self, engine: EngineRuntime, data: bytes, timings: Timings
    ) -> list[float]:
        started = time.perf_counter()
        image = await to_thread.run_sync(decode_image, data, self.limits)
        timings.add("decode", started)
        async with self._embed_slots:
            started = time.perf_counter()
            vector = await to_thread.run_sync(self._embed_sync, engine, image)
            timings.add("embed", started)
        return vector

    @staticmethod
    def _embed_sync(engine: EngineRuntime, image: Any) -> list[float]:
        embedder = engine.embedder()
        try:
            row = embedder.embed_images([image])[0]
        except ImgSearchError:
            raise
        except Exception as exc:
            logger.exception("embedding failed for engine %s", engine.hashid)
            raise EmbeddingFailed(str(exc)) from exc
        return [float(x) for x in row]

    async def ensure_index_matches(self, engine: EngineRuntime) -> None:
        """Compare the index's recorded embedder with ours, once per engine."""
        if engine.verified:
            return
        alias = engine.config.alias

        def read_meta() -> dict[str, Any]:
            with backend_errors():
                mappings: dict[str, Any] = self.client.indices.get_mapping(index=alias)
            # An alias may point at one versioned index; take its mapping.
            first = next(iter(mappings.values()))
            meta: dict[str, Any] = first.get("mappings", {}).get("_meta", {})
            return meta

        try:
            meta = await to_thread.run_sync(read_meta)
        except NotFound as exc:
            raise NotFound(f"Index '{alias}' for this search engine does not exist") from exc
        await to_thread.run_sync(engine.verify, vector_meta(meta))

    async def stored_item(self, engine: EngineRuntime, field_name: str, value: str) -> StoredItem:
        """The indexed item with its query-field vector, for "more like this"."""
        vector_field = engine.vector_field
        body = item_lookup_body(field_name, value)
        body["_source"] = ["id", vector_field]

        def lookup() -> dict[str, Any]:
            with backend_errors():
                found: dict[str, Any] = self.client.search(index=engine.config.alias, body=body)
            return found

        response = await to_thread.run_sync(lookup)
        hits = response.get("hits", {}).get("hits", [])
        source = hits[0].get("_source", {}) if hits else {}
        vector = source.get(vector_field)
        if not hits or not isinstance(vector, list):
            raise NotFound("Image for the given dfid not found")
        return StoredItem(id=str(source.get("id", hits[0]["_id"])), vector=vector)

    async def search(
        self, engine: EngineRuntime, req: SearchRequest, timings: Timings
    ) -> SearchResult:
        lines = build_msearch(req, engine.config, engine.config.alias)

        def run() -> dict[str, Any]:
            with backend_errors():
                answer: dict[str, Any] = self.client.msearch(body=lines)
            return answer

        started = time.perf_counter()
        answer = await to_thread.run_sync(run)
        timings.add("opensearch", started)
        timings.parts["opensearch_took"] = float(
            max((r.get("took", 0) for r in answer.get("responses", [])), default=0)
        )
        return read_msearch(answer.get("responses", []), req, engine.config)
