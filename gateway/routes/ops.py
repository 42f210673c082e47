"""Operator endpoints: liveness and cluster/engine health."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
