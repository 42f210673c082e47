"""The neutral catalog operations, I/O side: query images, the model, OpenSearch.

Dialects hand it a neutral query and request and get a neutral result; translation to and
from OpenSearch is the pure code in ``gateway.search``. Blocking work (decoding, model
inference, the OpenSearch client, fetching image URLs) runs in worker threads so the event
loop stays free.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import anyio
import httpx
import numpy as np
from anyio import to_thread
from opensearchpy import OpenSearch
from PIL import Image

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.search.dsl import build_msearch, item_lookup_body, near_duplicates_body
from gateway.search.model import (
    ID_FIELD,
    ImageQuery,
    ImageUrlQuery,
    ItemQuery,
    NearDuplicate,
    Query,
    SearchRequest,
    SearchResult,
)
from gateway.search.results import read_msearch, read_near_duplicates
from gateway.service.timings import Timings
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import (
    ConfigError,
    EmbeddingFailed,
    FeatureDisabled,
    ImgSearchError,
    NotFound,
    UnknownItem,
)
from imgsearch.image_fetch import FetchTimeouts, fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors, make_client
from imgsearch.url_guard import public_only_client

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class QueryVector:
    vector: list[float]
    item_id: str | None = None  # the indexed item it came from, for ItemQuery


class CatalogService:
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

    @classmethod
    def create(cls, settings: GatewaySettings, engines: dict[str, EngineConfig]) -> CatalogService:
        """The service for ``engines`` on the cluster and with the limits of ``settings``."""

        def make_embedder(config: EngineConfig, field: str) -> Embedder:
            return build_embedder(config.vectors[field], device=settings.device)

        return cls(
            client=make_client(settings.opensearch_url, timeout_s=settings.search_timeout_s),
            registry=EngineRegistry(engines, make_embedder),
            settings=settings,
            metrics=GatewayMetrics(),
        )

    def close(self) -> None:
        self._http.close()
        self.client.close()

    def engine(self, hashid: str) -> EngineRuntime:
        """The engine served as ``hashid`` (``UnknownEngine`` if none)."""
        return self.registry.get(hashid)

    def timings(self) -> Timings:
        """A per-request timer that also feeds the stage histograms."""
        return Timings(observe=self.metrics.observe_stage)

    # ------------------------------------------------------------------ operations

    async def search(
        self, engine: EngineRuntime, query: Query, request: SearchRequest, timings: Timings
    ) -> SearchResult:
        """k-NN search with the request's pool, filters, facets, sort and page."""
        await self._ensure_index_matches(engine, request.vector_field)
        found = await self._query_vector(engine, query, request.vector_field, timings)
        excluded = request.exclude_ids
        if found.item_id is not None and isinstance(query, ItemQuery) and query.exclude_self:
            excluded = (*excluded, found.item_id)
        req = replace(request, vector=found.vector, exclude_ids=excluded)
        lines = build_msearch(req, engine.config, engine.config.alias)
        started = time.perf_counter()
        answer: dict[str, Any] = await self._backend(lambda: self.client.msearch(body=lines))
        timings.add("opensearch", started)
        timings.parts["opensearch_took"] = float(
            max((r.get("took", 0) for r in answer.get("responses", [])), default=0)
        )
        return read_msearch(answer.get("responses", []), req, engine.config)

    async def near_duplicates(
        self,
        engine: EngineRuntime,
        query: ImageQuery | ImageUrlQuery,
        *,
        max_distance: int,
        size: int,
        timings: Timings | None = None,
    ) -> tuple[NearDuplicate, ...]:
        """Items whose perceptual hash is within ``max_distance`` bits of the query image's."""
        field = _phash_field(engine.config)
        await self._ensure_index_matches(engine, field)
        found = await self._query_vector(engine, query, field, timings or self.timings())
        value = engine.embedder(field).field_value(np.asarray(found.vector, dtype=np.float32))
        if not isinstance(value, int):
            raise ConfigError(f"Field {field!r} does not hold a perceptual hash")
        body = near_duplicates_body(field, value, size=size, max_distance=max_distance)
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        return read_near_duplicates(response)

    async def health(self) -> dict[str, Any]:
        """The cluster's status and, per engine, whether its alias exists."""

        def check() -> dict[str, Any]:
            cluster = self.client.cluster.health()
            engines = {
                engine.hashid: "ok"
                if self.client.indices.exists_alias(name=engine.config.alias)
                else "index missing"
                for engine in self.registry
            }
            return {"cluster": cluster.get("status"), "engines": engines}

        return await self._backend(check)

    # ------------------------------------------------------------------ steps

    async def _backend(self, call: Callable[[], T]) -> T:
        """One blocking OpenSearch call in a worker thread, its errors mapped to ours."""

        def run() -> T:
            with backend_errors():
                return call()

        return await to_thread.run_sync(run)

    async def _ensure_index_matches(self, engine: EngineRuntime, vector_field: str) -> None:
        """Compare the index's recorded embedder with ours, once per engine and field."""
        if engine.verified(vector_field):
            return
        alias = engine.config.alias
        try:
            mappings: dict[str, Any] = await self._backend(
                lambda: self.client.indices.get_mapping(index=alias)
            )
        except NotFound as exc:
            raise NotFound(f"Index '{alias}' for this search engine does not exist") from exc
        # An alias points at one versioned index; take its mapping.
        first = next(iter(mappings.values()))
        meta: dict[str, Any] = first.get("mappings", {}).get("_meta", {})
        await to_thread.run_sync(engine.verify, vector_meta(meta), vector_field)

    async def _query_vector(
        self, engine: EngineRuntime, query: Query, vector_field: str, timings: Timings
    ) -> QueryVector:
        if isinstance(query, ItemQuery):
            return await self._stored_vector(engine, query, vector_field)
        if isinstance(query, ImageUrlQuery):
            data = await self._fetch_image(query.url)
        else:
            data = query.data
        return QueryVector(await self._embed_image(engine, vector_field, data, timings))

    async def _fetch_image(self, url: str) -> bytes:
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

    async def _embed_image(
        self, engine: EngineRuntime, vector_field: str, data: bytes, timings: Timings
    ) -> list[float]:
        started = time.perf_counter()
        image = await to_thread.run_sync(decode_image, data, self.limits)
        timings.add("decode", started)
        async with self._embed_slots:
            started = time.perf_counter()
            vector = await to_thread.run_sync(_embed_one, engine, vector_field, image)
            timings.add("embed", started)
        return vector

    async def _stored_vector(
        self, engine: EngineRuntime, query: ItemQuery, vector_field: str
    ) -> QueryVector:
        body = item_lookup_body(query.field, query.value)
        body["_source"] = [ID_FIELD, vector_field]
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        hits = response.get("hits", {}).get("hits", [])
        source = hits[0].get("_source", {}) if hits else {}
        vector = source.get(vector_field)
        if not hits or not isinstance(vector, list):
            raise UnknownItem(f"No indexed item with {query.field} {query.value!r}")
        return QueryVector(vector, item_id=str(source.get(ID_FIELD, hits[0]["_id"])))


def _embed_one(engine: EngineRuntime, vector_field: str, image: Image.Image) -> list[float]:
    embedder = engine.embedder(vector_field)
    try:
        row = embedder.embed_images([image])[0]
    except ImgSearchError:
        raise
    except Exception as exc:
        logger.exception("embedding failed for engine %s", engine.hashid)
        raise EmbeddingFailed(str(exc)) from exc
    return [float(x) for x in row]


def _phash_field(config: EngineConfig) -> str:
    fields = [name for name, spec in config.vectors.items() if spec.embedder == "phash"]
    if not fields:
        raise FeatureDisabled(f"Engine {config.hashid!r} has no phash vector field")
    return fields[0]
