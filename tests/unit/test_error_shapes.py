"""Errors answer in the shape and words of the dialect whose path the request is on."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from gateway.dialect import Dialect
from gateway.errors import EMBEDDING_FAILED_MESSAGE, ErrorShapes, install_error_handlers
from imgsearch import errors as e

router = APIRouter()


@router.get("/v2/{what}")
async def fails_in_dialect(what: str) -> None:
    raise _ERRORS[what]


_ERRORS: dict[str, e.ImgSearchError] = {
    "engine": e.UnknownEngine("Unknown search engine 'x'"),
    "item": e.UnknownItem("No indexed item with id 'y'"),
    "embed": e.EmbeddingFailed("CUDA out of memory at 0xdeadbeef"),
    "backend": e.BackendUnavailable("search backend error: boom"),
}


def status_body(status: int, message: str) -> dict[str, Any]:
    return {"status": {"code": status, "text": message}}


TOY = Dialect(
    name="toy",
    router=router,
    path_prefix="/v2/",
    error_body=status_body,
    messages={e.UnknownEngine: "collection not found"},
)


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app, ErrorShapes([TOY]))
    app.include_router(router)

    @app.get("/ops/{what}")
    async def fails_elsewhere(what: str) -> None:
        raise _ERRORS[what]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("what", "status", "text"),
    [
        ("engine", 404, "collection not found"),
        ("item", 404, "No indexed item with id 'y'"),
        ("embed", 424, EMBEDDING_FAILED_MESSAGE),
        ("backend", 503, "search backend error: boom"),
    ],
)
def test_dialect_shape_and_words(client: TestClient, what: str, status: int, text: str) -> None:
    response = client.get(f"/v2/{what}")
    assert response.status_code == status
    assert response.json() == {"status": {"code": status, "text": text}}


def test_other_paths_use_the_plain_shape(client: TestClient) -> None:
    response = client.get("/ops/engine")
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown search engine 'x'"}
    assert client.get("/ops/embed").json() == {"error": EMBEDDING_FAILED_MESSAGE}, "hides internals"
    unknown = client.get("/v2/nothing/here")
    assert unknown.status_code == 404 and "status" in unknown.json(), "404 in the dialect's shape"
