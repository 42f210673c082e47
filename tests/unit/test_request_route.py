"""RequestRoute: the endpoint is called with the Request alone, and still documented."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.testclient import TestClient

from gateway.request_route import RequestRoute

PARAMETER = {"name": "item", "in": "path", "required": True, "schema": {"type": "string"}}


def _app() -> FastAPI:
    router = APIRouter(route_class=RequestRoute)

    @router.get("/items/{item}", openapi_extra={"parameters": [PARAMETER]})
    async def item(request: Request) -> Response:
        return JSONResponse(
            {"item": request.path_params["item"], "q": request.query_params.get("q")}
        )

    app = FastAPI()
    app.include_router(router)
    return app


def test_the_endpoint_gets_the_request_and_its_answer_is_sent_as_is() -> None:
    client = TestClient(_app())
    answer = client.get("/items/a%20b", params={"q": "x"})
    assert answer.status_code == 200
    assert answer.json() == {"item": "a b", "q": "x"}
    assert client.post("/items/a").status_code == 405


def test_the_operation_is_documented_from_openapi_extra() -> None:
    operation = _app().openapi()["paths"]["/items/{item}"]["get"]
    assert operation["parameters"] == [PARAMETER]


async def _with_other(request: Request, other: int) -> Response:  # pragma: no cover
    raise AssertionError


def _sync(request: Request) -> Response:  # pragma: no cover
    raise AssertionError


@pytest.mark.parametrize("endpoint", [_with_other, _sync])
def test_an_endpoint_that_takes_more_than_the_request_is_refused(endpoint: object) -> None:
    router = APIRouter(route_class=RequestRoute)
    with pytest.raises(TypeError, match="takes \\(request: Request\\)"):
        router.add_api_route("/x", endpoint)  # type: ignore[arg-type]
