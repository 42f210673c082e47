"""FastPath answers its routes exactly as FastAPI's router would, without the router."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.fast_path import FastPath
from gateway.request_route import RequestRoute


class Refused(Exception):
    """Has a handler of its own (like ``ImgSearchError``)."""


class Broken(Exception):
    """Only the catch-all handles it (a bug: 500)."""


class RouterCalls:
    """Innermost app between FastPath and FastAPI's stack: counts what reaches the router."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


def _app(fast: bool) -> tuple[FastAPI, list[RouterCalls]]:
    router = APIRouter(route_class=RequestRoute)

    @router.post("/6/{hashid}/_image_search")
    async def search(request: Request) -> Response:
        body = await request.body()
        if body == b"refuse":
            raise Refused("no")
        if body == b"break":
            raise Broken("bug")
        if body == b"teapot":
            raise HTTPException(418, "short and stout")
        route = request.scope["route"].path
        return JSONResponse(
            {"hashid": request.path_params["hashid"], "route": route, "q": request.url.query},
            headers={"x-seen": "1"},
        )

    @router.options("/6/{hashid}/{path:path}")
    async def preflight(request: Request) -> Response:
        return Response(status_code=204, headers={"x-path": request.path_params["path"]})

    other = APIRouter()

    @other.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    app = FastAPI()

    async def refused(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def broken(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "Internal server error"}, status_code=500)

    async def teapot(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "by status"}, status_code=418)

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(418, teapot)
    app.add_exception_handler(Exception, broken)
    app.include_router(router)
    app.include_router(other)
    counters: list[RouterCalls] = []

    def counted(inner: ASGIApp) -> ASGIApp:
        counters.append(RouterCalls(inner))
        return counters[-1]

    app.add_middleware(counted)
    if fast:
        routes = [r for r in router.routes if isinstance(r, RequestRoute)]
        app.add_middleware(
            FastPath, routes=routes, router=app.router, handlers=app.exception_handlers
        )
    return app, counters


REQUESTS: list[tuple[str, str, dict[str, Any], bool]] = [
    # method, path, options, whether FastPath answers it itself
    ("post", "/6/shop%201/_image_search?rpp=5&x=%5B", {"content": b"{}"}, True),
    ("post", "/6/shop/_image_search", {"content": b"refuse"}, True),
    ("post", "/6/shop/_image_search", {"content": b"break"}, True),
    ("post", "/6/shop/_image_search", {"content": b"teapot"}, True),  # a status-code handler
    ("get", "/6/shop/_image_search", {}, False),  # wrong method: the router's 405
    ("options", "/6/shop/_image_search", {}, False),  # the preflight route, after a partial
    ("post", "/6/shop/_nothing", {}, False),  # no route: the router's 404
    ("get", "/health", {}, False),
]


@pytest.mark.parametrize(("method", "path", "options", "fast"), REQUESTS)
def test_same_answer_with_and_without_the_fast_path(
    method: str, path: str, options: dict[str, Any], fast: bool
) -> None:
    answers = []
    for with_fast_path in (False, True):
        app, counters = _app(with_fast_path)
        client = TestClient(app, raise_server_exceptions=False)
        answer = getattr(client, method)(path, **options)
        headers = {k: v for k, v in answer.headers.items() if k != "date"}
        answers.append((answer.status_code, headers, answer.content))
        router_calls = counters[0].calls
        assert router_calls == (0 if with_fast_path and fast else 1)
    assert answers[0] == answers[1]


def test_an_unhandled_error_still_reaches_the_server_error_middleware() -> None:
    app, _ = _app(fast=True)
    with pytest.raises(Broken):
        TestClient(app).post("/6/shop/_image_search", content=b"break")
