"""FastAPI application factory: settings, engines, the neutral service, the dialects."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI

from gateway.body_limit import BodyLimitMiddleware
from gateway.dialect import Dialect
from gateway.dialects.collection.routes import DIALECT as COLLECTION
from gateway.dialects.doofinder.routes import DIALECT as DOOFINDER
from gateway.dialects.flow.routes import DIALECT as FLOW
from gateway.dialects.similarix.routes import DIALECT as SIMILARIX
from gateway.dialects.ximilar.routes import DIALECT as XIMILAR
from gateway.errors import ErrorShapes, install_error_handlers
from gateway.fast_path import FastPath
from gateway.metrics import MetricsMiddleware
from gateway.request_route import RequestRoute
from gateway.routes import demo, ops
from gateway.service import CatalogService
from gateway.settings import GatewaySettings
from imgsearch.engine_config import EngineConfig, load_engine_configs
from imgsearch.errors import ConfigError, ImgSearchError

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The APIs the gateway speaks; a new dialect is one more entry (see docs/dialects.md).
DIALECTS: tuple[Dialect, ...] = (DOOFINDER, XIMILAR, SIMILARIX, FLOW, COLLECTION)


async def _sync_in_background(service: CatalogService) -> None:
    try:
        await service.jobs.resume_interrupted()
    except ImgSearchError as exc:
        logger.warning("could not resume interrupted syncs: %s", exc.message)
    await service.jobs.schedule()


def create_app(
    settings: GatewaySettings | None = None,
    engines: dict[str, EngineConfig] | None = None,
) -> FastAPI:
    """Build the app; ``engines`` overrides loading configs from ``settings.engines_dir``."""
    settings = settings or GatewaySettings()
    if engines is None:
        if not settings.engines_dir.is_dir():
            raise ConfigError(f"engines folder {settings.engines_dir} does not exist")
        engines = load_engine_configs(settings.engines_dir)
    service = CatalogService.create(settings, engines)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load every query model before taking traffic: the first shopper must not wait for
        # it, and an engine whose weights are missing must stop start-up with a clear error.
        for engine in service.registry:
            await to_thread.run_sync(engine.embedder)
        # Start-up made ~0.5 M long-lived objects (models, routes, schemas): freezing them
        # spares every later collection from walking them again (p95 of a search's own
        # overhead 4.8 -> 2.9 ms, BENCHMARKS "The gateway's own overhead").
        gc.collect()
        gc.freeze()
        logger.info(
            "serving engines %s from %s", service.registry.hashids(), settings.opensearch_url
        )
        scheduler: asyncio.Task[None] | None = None
        if any(engine.config.source is not None for engine in service.registry):
            # Syncs of folders and buckets: resume interrupted ones, run scheduled ones.
            scheduler = asyncio.create_task(_sync_in_background(service))
        # Long jobs (collection content, fine-tuning) whose gateway stopped: run them again.
        watcher = asyncio.create_task(service.runner.watch(settings.job_poll_s))
        yield
        if scheduler is not None:
            scheduler.cancel()
        watcher.cancel()
        service.close()

    app = FastAPI(
        title="imgsearch gateway",
        version="0.1.0",
        description=(
            "Visual search over OpenSearch. Speaks Doofinder's search API v6 "
            "(`/6/{hashid}/_image_search`, `/6/{hashid}/_visually_similar`)."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    shapes = ErrorShapes(DIALECTS)
    install_error_handlers(app, shapes)
    for dialect in DIALECTS:
        app.include_router(dialect.router)
    app.include_router(ops.router)
    demo.mount(app, STATIC_DIR, settings.demo_assets_dir)
    # Innermost: the first dialect's Request-only routes skip FastAPI's router (fast_path.py).
    fast_routes = [r for r in DIALECTS[0].router.routes if isinstance(r, RequestRoute)]
    app.add_middleware(
        FastPath, routes=fast_routes, router=app.router, handlers=app.exception_handlers
    )
    app.add_middleware(
        BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes, error_body=shapes.body
    )
    hashids = frozenset(service.registry.hashids())
    app.add_middleware(MetricsMiddleware, metrics=service.metrics, hashids=hashids)
    return app
