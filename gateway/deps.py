"""FastAPI dependencies shared by every router, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.service import CatalogService


def _service(request: Request) -> CatalogService:
    service: CatalogService = request.app.state.service
    return service


Service = Annotated[CatalogService, Depends(_service)]
