"""Doofinder search API v6 routes: thin glue between the dialect's pure parts and the service.

Order of checks (so the cheapest rejection wins): engine exists (404), access (403), feature
enabled (400), parameters (400), image present and decodable (400/413), embedding (424),
search (503/504).

Every route takes only the ``Request`` (``RequestRoute``: FastAPI calls it without its
dependency and validation machinery, which cost about a fifth of a search's own time): it
reads ``hashid`` from the path and the service from the app (``service_of``);
the parameter tables of ``openapi.py`` (``HASHID_PARAMETER`` first) document it in the
OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.deps import service_of
from gateway.dialect import Dialect
from gateway.dialects.doofinder.body import read_body, read_json_params
from gateway.dialects.doofinder.openapi import (
    ERROR_RESPONSES,
    IMAGE_BODY,
    SEARCH_PARAMETERS,
    SIMILAR_PARAMETERS,
    TEXT_PARAMETERS,
)
from gateway.dialects.doofinder.params import (
    DoofinderParams,
    parse_params,
    parse_query_string,
)
from gateway.dialects.doofinder.response import (
    QUERY_NAME,
    DoofinderSearchResponse,
    format_response,
    parse_dfid,
)
from gateway.dialects.query_string import query_pairs
from gateway.engines import EngineRuntime
from gateway.json_response import FastJSONResponse
from gateway.request_route import RequestRoute
from gateway.search.color_query import with_colors
from gateway.search.model import Query, SearchRequest, SearchResult
from gateway.security import authorize, cors_headers, preflight_headers
from gateway.service import CatalogService, Timings
from imgsearch.errors import (
    EmbeddingFailed,
    FeatureDisabled,
    MissingFields,
    UnknownEngine,
    UnknownItem,
)

router = APIRouter(tags=["Doofinder search v6"], route_class=RequestRoute)


def _engine(request: Request, images: bool = True) -> tuple[CatalogService, EngineRuntime]:
    """(the service, the engine of the path's ``hashid``), once access is checked."""
    service = service_of(request)
    engine = service.engine(request.path_params["hashid"])
    request.state.cors_origin = authorize(
        engine.config.gateway, request.headers.get("authorization"), request.headers.get("origin")
    )
    if images and not engine.config.gateway.image_search:
        raise FeatureDisabled("Image Search is not enabled for this search engine")
    return service, engine


def _params(
    request: Request, engine: EngineRuntime, body_params: Mapping[str, Any]
) -> DoofinderParams:
    """The request's parameters: its query string's (remembered) unless the body gives some."""
    raw: bytes = request.scope["query_string"]
    if body_params:
        return parse_params(query_pairs(raw), engine.config, body_params)
    return parse_query_string(raw, engine.config)


_TEXT_ROUTE: dict[str, Any] = {
    "summary": "Text Search",
    "response_model": DoofinderSearchResponse,
    "responses": ERROR_RESPONSES,
    "openapi_extra": {"parameters": TEXT_PARAMETERS},
}


@router.get("/6/{hashid}/_search", operation_id="doofinder_text_search_get", **_TEXT_ROUTE)
@router.post("/6/{hashid}/_search", operation_id="doofinder_text_search_post", **_TEXT_ROUTE)
async def text_search(request: Request) -> Response:
    """Search by words (CLIP text tower fused with BM25 over text fields); no ``query``
    browses the catalog."""
    service, engine = _engine(request, images=False)
    body_params = await read_json_params(request) if request.method == "POST" else {}
    params = _params(request, engine, body_params)
    timings = service.timings()
    req = params.search_request(engine.config)
    result, mode = await service.search_text(engine, params.query, req, timings)
    return _respond(request, engine, req, result, timings, query_name=f"{mode}_search")


@router.post(
    "/6/{hashid}/_image_search",
    summary="Image Search",
    response_model=DoofinderSearchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": SEARCH_PARAMETERS, "requestBody": IMAGE_BODY},
)
async def image_search(request: Request) -> Response:
    """Search the engine's catalog with an image (base64 JSON, multipart upload or URL)."""
    service, engine = _engine(request)
    body_params, image = await read_body(request)
    params = _params(request, engine, body_params)
    given = image.data is not None or bool(image.base64_text) or bool(image.url)
    # Extension: ``color`` alone searches by colour; beside the image it re-ranks.
    query = image.query() if given or params.color is None else None
    return await _search(service, request, engine, params, query)


@router.get(
    "/6/{hashid}/_visually_similar",
    summary="More like this item",
    response_model=DoofinderSearchResponse,
    responses=ERROR_RESPONSES,
    openapi_extra={"parameters": SIMILAR_PARAMETERS},
)
async def visually_similar(request: Request) -> Response:
    """Items that look like an indexed item, using its stored vector."""
    service, engine = _engine(request)
    params = _params(request, engine, {})
    if not params.dfid:
        raise MissingFields(["dfid"])
    query = parse_dfid(params.dfid, engine.hashid, exclude_self=params.exclude_self)
    return await _search(service, request, engine, params, query)


async def _search(
    service: CatalogService,
    request: Request,
    engine: EngineRuntime,
    params: DoofinderParams,
    query: Query | None,
) -> Response:
    timings = service.timings()
    query, req = with_colors(
        query, params.color, params.search_request(engine.config), engine.config
    )
    result = await service.search(engine, query, req, timings)
    return _respond(request, engine, req, result, timings)


def _respond(
    request: Request,
    engine: EngineRuntime,
    req: SearchRequest,
    result: SearchResult,
    timings: Timings,
    query_name: str = QUERY_NAME,
) -> Response:
    headers = cors_headers(getattr(request.state, "cors_origin", None))
    headers["Server-Timing"] = timings.header()
    payload = format_response(result, req, engine.config, engine.hashid, query_name)
    return FastJSONResponse(payload, headers=headers)


@router.options("/6/{hashid}/{path:path}", include_in_schema=False)
async def preflight(request: Request) -> Response:
    """CORS preflight: allowed only for origins the engine accepts."""
    engine = service_of(request).engine(request.path_params["hashid"])
    headers = preflight_headers(engine.config.gateway, request.headers.get("origin"))
    return Response(status_code=204, headers=headers)


DIALECT = Dialect(
    name="doofinder",
    router=router,
    path_prefix="/6/",
    messages={
        UnknownEngine: "Mapping not found",
        UnknownItem: "Image for the given dfid not found",
        EmbeddingFailed: "There was an error obtaining the embeddings, please try again.",
    },
)
