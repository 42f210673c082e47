"""The demo shop page and the browser client, served from ``gateway/static``."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from gateway.deps import Service


def mount(app: FastAPI, static_dir: Path, assets_dir: Path | None) -> None:
    app.mount("/static", StaticFiles(directory=static_dir), name="static")
    if assets_dir is not None:
        app.mount("/demo-assets", StaticFiles(directory=assets_dir), name="demo-assets")

    @app.get("/demo/{hashid}", include_in_schema=False)
    async def demo_page(hashid: str, service: Service) -> FileResponse:
        service.engine(hashid)  # 404 for unknown engines
        return FileResponse(static_dir / "demo.html", media_type="text/html")
