"""The published OpenAPI schema documents what the Doofinder routes really accept and return."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.engine_config import EngineConfig


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    app = create_app(GatewaySettings(), {"demo": EngineConfig(hashid="demo", alias="demo")})
    return app.openapi()


@pytest.mark.parametrize(
    ("path", "method"),
    [("/6/{hashid}/_image_search", "post"), ("/6/{hashid}/_visually_similar", "get")],
)
def test_search_routes_document_parameters_and_errors(
    schema: dict[str, Any], path: str, method: str
) -> None:
    operation = schema["paths"][path][method]
    names = {p["name"] for p in operation["parameters"]}
    assert {"hashid", "filter", "exclude", "facets", "sort", "rpp", "page"} <= names
    assert {"session_id", "user_id", "filter_execution"} <= names
    responses = operation["responses"]
    assert {"200", "400", "403", "404", "413", "424", "503", "504"} <= set(responses)
    error_schema = responses["400"]["content"]["application/json"]["schema"]
    assert error_schema["required"] == ["error"]
    ok_schema = responses["200"]["content"]["application/json"]["schema"]
    assert ok_schema["$ref"].endswith("/DoofinderSearchResponse")


def test_image_search_body_accepts_json_and_multipart(schema: dict[str, Any]) -> None:
    body = schema["paths"]["/6/{hashid}/_image_search"]["post"]["requestBody"]["content"]
    assert set(body["application/json"]["schema"]["properties"]) == {"image", "image_url"}
    assert body["multipart/form-data"]["schema"]["properties"]["image"]["format"] == "binary"


def test_response_model_has_the_reference_fields(schema: dict[str, Any]) -> None:
    model = schema["components"]["schemas"]["DoofinderSearchResponse"]
    assert {"results", "total", "page", "rpp", "query_name", "facets"} <= set(model["properties"])
    item = schema["components"]["schemas"]["Item"]
    assert {"id", "dfid", "title", "url", "image_url", "description", "score"} <= set(
        item["properties"]
    )
