"""The body cap answers 413 whether the size is declared or only seen while streaming."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.body_limit import BodyLimitMiddleware

LIMIT = 1000


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


@pytest.fixture
def client() -> TestClient:
    app = Starlette(routes=[Route("/", echo_size, methods=["POST"])])
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=LIMIT,
        error_body=lambda path, status, message: {"error": message, "path": path},
    )
    return TestClient(app)


def chunks(total: int, size: int = 100) -> Iterator[bytes]:
    for start in range(0, total, size):
        yield b"x" * min(size, total - start)


@pytest.mark.parametrize(
    ("body_size", "chunked", "status"),
    [
        (LIMIT, False, 200),
        (LIMIT + 1, False, 413),
        (LIMIT, True, 200),
        (LIMIT + 1, True, 413),
        (50 * LIMIT, True, 413),
    ],
)
def test_cap(client: TestClient, body_size: int, chunked: bool, status: int) -> None:
    content = chunks(body_size) if chunked else b"x" * body_size
    response = client.post("/", content=content)
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"size": body_size}
    else:
        assert "too large" in response.json()["error"]
        assert response.json()["path"] == "/", "the body comes from the path's error shape"
