"""FastAPI dependencies shared by every router, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.service import CatalogService


def service_of(request: Request) -> CatalogService:
    """The app's service (``create_app`` puts it in the app's state)."""
    service: CatalogService = request.app.state.service
    return service


async def _service(request: Request) -> CatalogService:
    """Async so FastAPI calls it on the event loop, not through a worker-thread hop."""
    return service_of(request)


Service = Annotated[CatalogService, Depends(_service)]
