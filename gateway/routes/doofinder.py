"""Doofinder search API v6 routes: thin glue between the dialect's pure parts and the service.

Order of checks (so the cheapest rejection wins): engine exists (404), access (403), feature
enabled (400), parameters (400), image present and decodable (400/413), embedding (424),
search (503/504).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from gateway.dialects.doofinder.params import DoofinderParams, parse_params
from gateway.dialects.doofinder.response import (
    DoofinderSearchResponse,
    format_response,
    parse_dfid,
)
from gateway.engines import EngineRuntime
from gateway.json_response import FastJSONResponse
from gateway.search_service import SearchService, Timings
from gateway.security import authorize, cors_headers
from imgsearch.errors import (
    FeatureDisabled,
    ImageDecodeError,
    ImgSearchError,
    InvalidRequest,
    MissingFields,
)

router = APIRouter(tags=["Doofinder search v6"])

_ERROR_SCHEMA = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid parameters or image", **_ERROR_SCHEMA},
    403: {"description": "Bad token or origin not allowed (`forbidden`)", **_ERROR_SCHEMA},
    404: {"description": "`Mapping not found` or item not found", **_ERROR_SCHEMA},
    413: {"description": "Request body or image too large", **_ERROR_SCHEMA},
    424: {"description": "Embedding the image failed; retry", **_ERROR_SCHEMA},
    503: {"description": "Search backend unavailable", **_ERROR_SCHEMA},
    504: {"description": "Search backend timed out", **_ERROR_SCHEMA},
}


def _bracket_param(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": schema_type}}  # fmt: skip


SEARCH_PARAMETERS = [
    _bracket_param("filter", "Filters, e.g. `filter[color][]=red&filter[price][gte]=10`."),
    _bracket_param("exclude", "Negative filters, same syntax as `filter`."),
    _bracket_param("filter_execution", "`and` (default) or `or` between filtered fields."),
    _bracket_param("facets", "`facets[0][field]=brand&facets[0][size]=10&facets[0][type]=terms`."),
    _bracket_param("sort", "`sort[0][price]=asc`; similarity breaks ties."),
    _bracket_param("rpp", "Results per page, 1..100 (default 20).", "integer"),
    _bracket_param("page", "1-based page; `page*rpp` must fit in the engine's pool.", "integer"),
    _bracket_param("session_id", "Session id, at most 32 characters."),
    _bracket_param("user_id", "User id, at most 36 characters."),
    _bracket_param("stats", "Count this search in stats (accepted, not recorded).", "boolean"),
    _bracket_param("excluded_results", "Accepted for compatibility.", "boolean"),
]

IMAGE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "base64",
                        "description": "The image, base64-encoded.",
                    },
                    "image_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "Alternatively, an http(s) image URL.",
                    },
                },
                "description": "Search parameters may also be given here as JSON.",
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "properties": {
                    "image": {"type": "string", "format": "binary"},
                    "image_url": {"type": "string", "format": "uri"},
                },
            }
        },
    },
}


def _service(request: Request) -> SearchService:
    service: SearchService = request.app.state.service
    return service


def _engine(request: Request, hashid: str) -> EngineRuntime:
    engine = _service(request).registry.get(hashid)
    request.state.cors_origin = authorize(
        engine.config.gateway, request.headers.get("authorization"), request.headers.get("origin")
    )
    if not engine.config.gateway.image_search:
        raise FeatureDisabled("Image Search is not enabled for this search engine")
    return engine


@dataclass
class ImageInput:
    """The query image as the client sent it; decoded only after the parameters pass."""

    data: bytes | None = None
    base64_text: str | None = None
    url: str | None = None

    def present(self) -> bool:
        return self.data is not None or bool(self.base64_text) or bool(self.url)

    def raw_bytes(self) -> bytes | None:
        if self.data is not None:
            return self.data
        return _b64(self.base64_text) if self.base64_text else None


async def _read_body(request: Request) -> tuple[dict[str, Any], ImageInput]:
    """(parameters given in the body, the image)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        params: dict[str, Any] = {}
        image = ImageInput()
        try:
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        if key == "image":
                            image.data = await value.read()
                    elif key == "image":
                        image.base64_text = value
                    elif key == "image_url":
                        image.url = value
                    else:
                        params.setdefault(key, []).append(value)
        except ImgSearchError:
            raise
        except Exception as exc:  # python-multipart raises several unrelated types
            raise InvalidRequest("Invalid multipart body") from exc
        return {k: v[0] if len(v) == 1 else v for k, v in params.items()}, image
    raw = await request.body()
    if not raw.strip():
        return {}, ImageInput()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("Request body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    image_field = body.pop("image", None)
    url_field = body.pop("image_url", None)
    if image_field is not None and not isinstance(image_field, str):
        raise InvalidRequest("Field image must be a base64 string")
    if url_field is not None and not isinstance(url_field, str):
        raise InvalidRequest("Field image_url must be a string")
    return body, ImageInput(base64_text=image_field, url=url_field)


def _b64(text: str) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text.strip(), validate=False)
    except (binascii.Error, ValueError) as exc:
        raise ImageDecodeError("Field image is not valid base64") from exc


def _json(payload: dict[str, Any], request: Request, timings: Timings) -> Response:
    headers = cors_headers(getattr(request.state, "cors_origin", None))
    headers["Server-Timing"] = timings.header()
    return FastJSONResponse(payload, headers=headers)


@router.post(
    "/6/{hashid}/_image_search",
    summary="Image Search",
    response_model=DoofinderSearchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": SEARCH_PARAMETERS, "requestBody": IMAGE_BODY},
)
async def image_search(hashid: str, request: Request) -> Response:
    """Search the engine's catalog with an image (base64 JSON, multipart upload or URL)."""
    engine = _engine(request, hashid)
    service = _service(request)
    timings = service.timings()
    body_params, image = await _read_body(request)
    params = parse_params(request.query_params.multi_items(), engine.config, body_params)
    if not image.present():
        raise MissingFields(["image"])
    data = image.raw_bytes()
    await service.ensure_index_matches(engine)
    if data is None:
        data = await service.fetch_image(str(image.url))
    vector = await service.embed_image(engine, data, timings)
    return await _search(request, engine, params, vector, (), timings)


@router.get(
    "/6/{hashid}/_visually_similar",
    summary="More like this item",
    response_model=DoofinderSearchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={
        "parameters": [
            _bracket_param("dfid", "The item: its dfid (`hashid@product@md5`) or its id."),
            _bracket_param("exclude_self", "Leave the item itself out (default true).", "boolean"),
            *SEARCH_PARAMETERS,
        ]
    },
)
async def visually_similar(hashid: str, request: Request) -> Response:
    """Items that look like an indexed item, using its stored vector."""
    engine = _engine(request, hashid)
    service = _service(request)
    timings = service.timings()
    params = parse_params(request.query_params.multi_items(), engine.config)
    if not params.dfid:
        raise MissingFields(["dfid"])
    ref = parse_dfid(params.dfid, hashid)
    await service.ensure_index_matches(engine)
    item = await service.stored_item(engine, ref.field, ref.value)
    exclude = (item.id,) if params.exclude_self else ()
    return await _search(request, engine, params, item.vector, exclude, timings)


async def _search(
    request: Request,
    engine: EngineRuntime,
    params: DoofinderParams,
    vector: list[float],
    exclude_ids: tuple[str, ...],
    timings: Timings,
) -> Response:
    req = params.search_request(engine.config, vector, exclude_ids)
    result = await _service(request).search(engine, req, timings)
    return _json(format_response(result, req, engine.config, engine.hashid), request, timings)


@router.options("/6/{hashid}/{path:path}", include_in_schema=False)
async def preflight(hashid: str, path: str, request: Request) -> Response:
    """CORS preflight: allowed only for origins the engine accepts."""
    engine = _service(request).registry.get(hashid)
    origin = request.headers.get("origin")
    allowed = authorize(engine.config.gateway, None, origin) if origin else None
    response = Response(status_code=204)
    if allowed:
        response.headers.update(
            {
                **cors_headers(allowed),
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600",
            }
        )
    return response
