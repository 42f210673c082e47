"""Pixolution Flow's ``/api/cores/{collection}/image``: thin routes over the neutral service.

The collection is an engine's ``hashid``; access follows the engine's rules
(``Authorization: Token …``, allowed origins). ``GET`` reads the query string; ``POST`` reads
a form-encoded body too (a base64 image does not fit in a URL). Order of checks: engine
(404), access (403), image search enabled (400), parameters (400), image (400/413),
embedding (500), search (503).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.deps import Service
from gateway.dialect import Dialect
from gateway.dialects.flow.params import FlowParams, parse_params
from gateway.dialects.flow.response import SOLR_STATUSES, error_body, format_response
from gateway.dialects.query_string import query_pairs
from gateway.json_response import FastJSONResponse
from gateway.search.color_query import with_colors
from gateway.search.model import ID_FIELD, ImageQuery, ImageUrlQuery, ItemQuery, Query
from gateway.security import authorize, cors_headers, preflight_headers
from imgsearch.errors import FeatureDisabled, InvalidRequest
from imgsearch.images import image_bytes_from_base64

PREFIX = "/api/cores/"
MAX_FORM_FIELDS = 1_000

router = APIRouter(tags=["Pixolution Flow"])


def _param(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": schema_type}}  # fmt: skip


PARAMETERS = [
    _param("id", "Indexed item id: find items like it (the item itself is left out)."),
    _param("url", "Public http(s) URL of the query image."),
    _param("base64", "The query image, base64 (send it form-encoded in a POST body)."),
    _param("color", "Colours with weights, e.g. `#0a7e8c:0.7,#ffffff:0.3` ('#' as %23 in a "
           "URL): alone, search by colour; beside an image, re-rank by it (extension)."),
    _param("fq", "Solr filter query, repeatable, e.g. `category:living`, `price:[100 TO *]`."),
    _param("rows", "Number of documents (default 10).", "integer"),
    _param("start", "Offset of the first document (default 0).", "integer"),
    _param("fl", "Fields to return: names, globs (`color_*`), `*`, `score` (default `*,score`)."),
    _param("sort", "Solr sort, e.g. `price asc,score desc` (default relevance)."),
]  # fmt: skip


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    """Parameters of a form-encoded body (an empty body has none)."""
    raw = await request.body()
    if not raw.strip():
        return []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest(
            "Send parameters in the query string or as an application/x-www-form-urlencoded "
            f"body, not {content_type or 'an untyped body'}"
        )
    try:
        return parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("The form-encoded body cannot be read") from exc


def _image_query(params: FlowParams) -> Query | None:
    """The query image as a neutral query (base64 decoded here: a bad one is a 400 before
    any I/O); ``None`` when the request has none."""
    if params.item_id is not None:
        return ItemQuery(ID_FIELD, params.item_id, exclude_self=True)
    if params.url is not None:
        return ImageUrlQuery(params.url)
    if params.base64 is not None:
        # A base64 '+' sent unencoded in a query string arrives as a space.
        return ImageQuery(image_bytes_from_base64(params.base64.replace(" ", "+"), "base64"))
    return None


async def image(collection: str, request: Request, service: Service) -> Response:
    """Items like an indexed item, an image URL or a base64 image, and/or like colours;
    narrowed by Solr filter queries; in Solr's response shape."""
    started = time.perf_counter()
    engine = service.engine(collection)
    request.state.cors_origin = authorize(
        engine.config.gateway, request.headers.get("authorization"), request.headers.get("origin")
    )
    if not engine.config.gateway.image_search:
        raise FeatureDisabled("Image search is not enabled for this collection")
    pairs = query_pairs(request.scope["query_string"])
    if request.method == "POST":
        pairs.extend(await _form_pairs(request))
    params = parse_params(pairs, engine.config)
    if params.colors is None and _image_query(params) is None:
        raise InvalidRequest("Give a query image (id, url or base64) or a color")
    offset, size = params.window(engine.config.gateway.k)
    req = params.search_request(engine.config, offset, size)
    query, req = with_colors(_image_query(params), params.colors, req, engine.config)
    timings = service.timings()
    result = await service.search(engine, query, req, timings)
    elapsed = (time.perf_counter() - started) * 1000
    payload = format_response(result, params, engine.config, offset=offset, qtime_ms=elapsed)
    headers = cors_headers(getattr(request.state, "cors_origin", None))
    headers["Server-Timing"] = timings.header()
    return FastJSONResponse(payload, headers=headers)


for _method in ("GET", "POST"):
    router.add_api_route(
        "/api/cores/{collection}/image", image, methods=[_method],
        summary="Search by image (Pixolution Flow /image)",
        operation_id=f"flow_image_{_method.lower()}", response_class=FastJSONResponse,
        openapi_extra={"parameters": PARAMETERS},
    )  # fmt: skip


@router.options("/api/cores/{collection}/image", include_in_schema=False)
async def preflight(collection: str, request: Request, service: Service) -> Response:
    """CORS preflight: allowed only for origins the engine accepts."""
    engine = service.engine(collection)
    headers = preflight_headers(engine.config.gateway, request.headers.get("origin"))
    return Response(status_code=204, headers=headers)


DIALECT = Dialect(
    name="flow",
    router=router,
    path_prefix=PREFIX,
    error_body=error_body,
    statuses=SOLR_STATUSES,
)
