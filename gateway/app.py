"""FastAPI application factory: settings, engines, the OpenSearch client and the routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from fastapi import FastAPI

from gateway.body_limit import BodyLimitMiddleware
from gateway.engines import EngineRegistry
from gateway.errors import install_error_handlers
from gateway.metrics import GatewayMetrics, MetricsMiddleware
from gateway.routes import demo, doofinder, ops
from gateway.search_service import SearchService
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import Embedder
from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import EngineConfig, load_engine_configs
from imgsearch.errors import ConfigError
from imgsearch.search_client import make_client

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"


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

    def make_embedder(config: EngineConfig, field: str) -> Embedder:
        return build_embedder(config.vectors[field], device=settings.device)

    registry = EngineRegistry(engines, make_embedder)
    client = make_client(settings.opensearch_url, timeout_s=settings.search_timeout_s)
    metrics = GatewayMetrics()
    service = SearchService(client=client, registry=registry, settings=settings, metrics=metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load every query model before taking traffic: the first shopper must not wait for
        # it, and an engine whose weights are missing must stop start-up with a clear error.
        for engine in registry:
            await to_thread.run_sync(engine.embedder)
        logger.info("serving engines %s from %s", registry.hashids(), settings.opensearch_url)
        yield
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
    install_error_handlers(app)
    app.include_router(doofinder.router)
    app.include_router(ops.router)
    demo.mount(app, STATIC_DIR, settings.demo_assets_dir)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics, hashids=frozenset(registry.hashids()))
    return app
