"""Operator endpoints: cluster/engine health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.search_service import SearchService
from imgsearch.errors import ImgSearchError
from imgsearch.search_client import backend_errors

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Gateway and cluster health")
async def health(request: Request) -> JSONResponse:
    """200 when OpenSearch answers and every engine's alias exists; 503 otherwise."""
    service: SearchService = request.app.state.service

    def check() -> dict[str, Any]:
        with backend_errors():
            cluster = service.client.cluster.health()
        engines: dict[str, str] = {}
        for engine in service.registry:
            with backend_errors():
                exists = service.client.indices.exists_alias(name=engine.config.alias)
            engines[engine.hashid] = "ok" if exists else "index missing"
        return {"cluster": cluster.get("status"), "engines": engines}

    try:
        report = await to_thread.run_sync(check)
    except ImgSearchError as exc:
        return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
    healthy = report["cluster"] in ("green", "yellow") and all(
        state == "ok" for state in report["engines"].values()
    )
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **report}, status_code=200 if healthy else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Requests by route/engine/status, latency histograms, time per search stage."""
    service: SearchService = request.app.state.service
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
