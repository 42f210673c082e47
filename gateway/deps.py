"""FastAPI dependencies shared by every router, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.service import CatalogService


async def _service(request: Request) -> CatalogService:
    """Async so FastAPI calls it on the event loop, not through a worker-thread hop."""
    service: CatalogService = request.app.state.service
    return service


Service = Annotated[CatalogService, Depends(_service)]
