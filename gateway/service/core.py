"""What every neutral operation shares: the client, the engines, query images, the model.

Blocking work (decoding, model inference, the OpenSearch client, fetching image URLs) runs
in worker threads so the event loop stays free; OpenSearch errors become ours in one place
(``_backend``). Every operation's blocking call goes through the service's own thread pool
(``_in_thread``): a hand-off there costs the event loop about a third less than anyio's
``to_thread`` (a C queue instead of a ``Condition``), and a query image is decoded and
embedded in one hand-off, not two. Background jobs keep their own threads.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, ParamSpec, TypeVar

import anyio
import httpx
import numpy as np
from opensearchpy import OpenSearch
from PIL import Image

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.search.dsl import item_lookup_body
from gateway.search.model import (
    ID_FIELD,
    ColorQuery,
    ImageQuery,
    ImageUrlQuery,
    ItemQuery,
    MultiQuery,
    Query,
    SearchRequest,
    TextQuery,
)
from gateway.service.timings import Timings
from gateway.settings import GatewaySettings
from imgsearch.embedders.adapted import unadapted
from imgsearch.embedders.base import TextEmbedder
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.errors import (
    EmbeddingFailed,
    FeatureDisabled,
    ImgSearchError,
    InvalidRequest,
    MissingFields,
    NotFound,
    UnknownItem,
)
from imgsearch.image_fetch import FetchTimeouts, fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors
from imgsearch.url_guard import public_only_client

logger = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")

# Threads for blocking per-request work (OpenSearch calls, decoding, inference): as many as
# anyio's default limiter allowed before, so concurrency limits are unchanged.
WORKER_THREADS = 40


@dataclass(frozen=True)
class QueryVector:
    vector: list[float]
    # indexed items the query came from that are to be left out of the results
    exclude_ids: tuple[str, ...] = ()
    # |mean of the unit query vectors| for a MultiQuery: mean cosine = scale * cosine(vector)
    scale: float = 1.0


class ServiceCore:
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
        # A free slot is taken without a trip round the event loop (the hand-off to the worker
        # thread right after yields anyway).
        self._embed_slots = anyio.Semaphore(settings.embed_concurrency, fast_acquire=True)
        self._threads = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="imgsearch")
        self._http = httpx.Client() if settings.image_url_allow_private else public_only_client()
        # Shards the last search of each alias ran on: plans one pass or two (``search_ops``).
        self.shards_seen: dict[str, int] = {}

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        self._http.close()
        self.client.close()

    def engine(self, hashid: str) -> EngineRuntime:
        """The engine served as ``hashid`` (``UnknownEngine`` if none)."""
        return self.registry.get(hashid)

    def timings(self) -> Timings:
        """A per-request timer that also feeds the stage histograms."""
        return Timings(observe=self.metrics.observe_stage)

    async def _backend(self, call: Callable[[], T]) -> T:
        """One blocking OpenSearch call in a worker thread, its errors mapped to ours."""

        def run() -> T:
            with backend_errors():
                return call()

        return await self._in_thread(run)

    async def _in_thread(self, call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``call(*args)`` in the service's thread pool, awaited without blocking the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, lambda: call(*args, **kwargs))

    async def _ensure_index_matches(self, engine: EngineRuntime, vector_field: str) -> None:
        """Compare the index's recorded embedder with ours (again after ``recheck_s``, to
        follow an alias swapped by a fine-tuning)."""
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
        await self._in_thread(engine.verify, vector_meta(meta), vector_field)

    async def _checked_query_vector(
        self, engine: EngineRuntime, query: Query, vector_field: str, timings: Timings
    ) -> QueryVector:
        """The query's vector, the index's embedder checked (``_ensure_index_matches``).

        A check that is only due again (``recheck_s`` after a good one) runs beside the
        embedding instead of before it, so the search that finds it due does not wait for its
        round trip; its verdict still comes first (a mismatch is the answer, as before). If it
        put another embedder in place (a fine-tuning's alias swap), the query is embedded
        again with that one.
        """
        if engine.verified(vector_field) or not engine.verified_once(vector_field):
            await self._ensure_index_matches(engine, vector_field)
            return await self._query_vector(engine, query, vector_field, timings)
        before = engine.embedder(vector_field)
        check = asyncio.ensure_future(self._ensure_index_matches(engine, vector_field))
        try:
            found = await self._query_vector(engine, query, vector_field, timings)
        finally:
            await check
        if engine.embedder(vector_field) is not before:
            return await self._query_vector(engine, query, vector_field, timings)
        return found

    async def _query_vector(
        self, engine: EngineRuntime, query: Query, vector_field: str, timings: Timings
    ) -> QueryVector:
        if isinstance(query, MultiQuery):
            if not query.queries:
                raise MissingFields(["query_records"])
            parts = [
                await self._query_vector(engine, q, vector_field, timings) for q in query.queries
            ]
            units = [np.asarray(p.vector, dtype=np.float64) for p in parts]
            mean = np.mean([u / (np.linalg.norm(u) or 1.0) for u in units], axis=0)
            scale = float(np.linalg.norm(mean))
            if scale == 0.0:
                raise InvalidRequest("the query images cancel out: no direction to search in")
            excluded = tuple(i for p in parts for i in p.exclude_ids)
            return QueryVector([float(x) for x in mean / scale], excluded, scale)
        if isinstance(query, ItemQuery):
            found = await self._stored_vector(engine, query, vector_field)
            return found if query.exclude_self else replace(found, exclude_ids=())
        if isinstance(query, TextQuery):
            return QueryVector(await self._embed_text(engine, vector_field, query.text, timings))
        if isinstance(query, ColorQuery):
            return QueryVector(self._colour_vector(engine, vector_field, query))
        data = await self._image_bytes(query)
        return QueryVector(await self._embed_image(engine, vector_field, data, timings))

    def _colour_vector(
        self, engine: EngineRuntime, vector_field: str, query: ColorQuery
    ) -> list[float]:
        """The colour query as a vector of the colour descriptor's own space (pure, cheap)."""
        embedder, adapter = unadapted(engine.embedder(vector_field))
        if not isinstance(embedder, ColorEmbedder):
            raise FeatureDisabled(
                f"Colour search needs a color vector field; {vector_field!r} is not one"
            )
        try:
            vector = embedder.embed_colours(query.colors)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid colour query: {exc}") from None
        if adapter is not None:  # a fine-tuned colour field: the query goes through it too
            vector = adapter.apply(vector[None, :])[0]
        return [float(x) for x in vector]

    async def _with_rerank(
        self, engine: EngineRuntime, request: SearchRequest, scale: float, timings: Timings
    ) -> SearchRequest:
        """``request`` with its ``rerank`` vector set (unchanged without a ``rerank``)."""
        rerank = request.rerank
        if rerank is None or rerank.vector is not None:
            return request
        if scale != 1.0:
            raise InvalidRequest("a re-ranking query combines with one query image, not several")
        found = await self._checked_query_vector(engine, rerank.query, rerank.vector_field, timings)
        return replace(request, rerank=replace(rerank, vector=tuple(found.vector)))

    async def _image_bytes(self, image: ImageQuery | ImageUrlQuery) -> bytes:
        return image.data if isinstance(image, ImageQuery) else await self._fetch_image(image.url)

    async def _fetch_image(self, url: str) -> bytes:
        """Bytes of a client-supplied image URL; local paths are never read for clients."""
        timeouts = FetchTimeouts(
            connect=self.settings.fetch_timeout_s,
            read=self.settings.fetch_timeout_s,
            total=self.settings.fetch_timeout_s * 2,
        )
        return await self._in_thread(
            lambda: fetch_image_bytes(
                url, self.limits, client=self._http, timeout=timeouts, allow_local=False
            )
        )

    async def _embed_image(
        self, engine: EngineRuntime, vector_field: str, data: bytes, timings: Timings
    ) -> list[float]:
        async with self._embed_slots:
            started = time.perf_counter()
            vector, decoded = await self._in_thread(
                _decode_and_embed, engine, vector_field, data, self.limits
            )
            # ``decode`` runs from the hand-off to the decoded image, ``embed`` from there on.
            timings.add("decode", started, until=decoded)
            timings.add("embed", decoded)
        return vector

    async def _embed_text(
        self, engine: EngineRuntime, vector_field: str, text: str, timings: Timings
    ) -> list[float]:
        embedder = engine.embedder(vector_field)
        if not isinstance(embedder, TextEmbedder):
            raise FeatureDisabled(
                f"Text search needs a CLIP vector field; {vector_field!r} of this engine has "
                "no text tower"
            )
        async with self._embed_slots:
            started = time.perf_counter()
            rows = await self._in_thread(embedder.embed_texts, [text])
            timings.add("embed", started)
        return [float(x) for x in rows[0]]

    async def _stored_vector(
        self, engine: EngineRuntime, query: ItemQuery, vector_field: str
    ) -> QueryVector:
        item_id, vector = await self._stored_value(engine, query, vector_field)
        if not isinstance(vector, list):
            raise UnknownItem(f"No indexed item with {query.field} {query.value!r}")
        return QueryVector(vector, exclude_ids=(item_id,))

    async def _stored_value(
        self, engine: EngineRuntime, query: ItemQuery, field: str
    ) -> tuple[str, object]:
        """(id, stored value of ``field``) of the item ``query`` names."""
        body = item_lookup_body(query.field, query.value)
        body["_source"] = [ID_FIELD, field]
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        hits = response.get("hits", {}).get("hits", [])
        if not hits:
            raise UnknownItem(f"No indexed item with {query.field} {query.value!r}")
        source = hits[0].get("_source", {})
        return str(source.get(ID_FIELD, hits[0]["_id"])), source.get(field)


def _decode_and_embed(
    engine: EngineRuntime, vector_field: str, data: bytes, limits: ImageLimits
) -> tuple[list[float], float]:
    """(the vector, ``perf_counter()`` when decoding ended)."""
    image = decode_image(data, limits)
    decoded = time.perf_counter()
    return _embed_one(engine, vector_field, image), decoded


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
