"""Operator endpoints: cluster/engine health and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.deps import Service
from imgsearch.errors import ImgSearchError

router = APIRouter(tags=["Operations"])


@router.get("/health", summary="Gateway and cluster health")
async def health(service: Service) -> JSONResponse:
    """200 when OpenSearch answers and every engine's alias exists; 503 otherwise."""
    try:
        report = await service.health()
    except ImgSearchError as exc:
        return JSONResponse({"status": "unavailable", "error": exc.message}, status_code=503)
    healthy = report["cluster"] in ("green", "yellow") and all(
        state == "ok" for state in report["engines"].values()
    )
    return JSONResponse(
        {"status": "ok" if healthy else "degraded", **report}, status_code=200 if healthy else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(service: Service) -> Response:
    """Requests by route/engine/status, latency histograms, time per search stage."""
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
