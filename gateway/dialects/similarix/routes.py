"""Similarix's API over synced folders and buckets: text and image search, collections, sync.

Every call needs ``Authorization: Token …``; a collection is an engine with a ``source``
whose ``gateway.tokens`` accept the token, and its uuid is derived from the engine's hashid
(the hashid works in paths too). Search runs over every such collection (or the one named by
``collection``) and merges by distance.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from PIL import Image
from starlette.datastructures import UploadFile

from gateway.deps import Service
from gateway.dialect import Dialect
from gateway.dialects.similarix import response as r
from gateway.engines import EngineRuntime
from gateway.json_response import FastJSONResponse
from gateway.search.model import ImageQuery, Query, SearchRequest, TextQuery
from gateway.security import authorize
from gateway.service import CatalogService
from imgsearch.errors import (
    Forbidden,
    ImgSearchError,
    InvalidRequest,
    MissingFields,
    NotFound,
    UnknownEngine,
    UnknownItem,
)
from imgsearch.images import decode_image
from imgsearch.sources import collection_uuid

router = APIRouter(prefix="/api", tags=["Similarix"])
MAX_QUERY = 1_000
DEFAULT_LIMIT = 16
MAX_LIMIT = 100
THUMBNAIL_SIDE = 256


def _collections(service: CatalogService, request: Request) -> list[EngineRuntime]:
    """The synced collections the request's token may read."""
    authorization = request.headers.get("authorization")
    if not authorization:
        raise Forbidden("Authentication credentials were not provided.")
    allowed = []
    for engine in service.registry:
        if engine.config.source is None or not engine.config.gateway.tokens:
            continue
        try:
            authorize(engine.config.gateway, authorization, None)
        except Forbidden:
            continue
        allowed.append(engine)
    if not allowed:
        raise Forbidden("Invalid token.")
    return allowed


def _collection(service: CatalogService, request: Request, uuid: str) -> EngineRuntime:
    for engine in _collections(service, request):
        if uuid in (collection_uuid(engine.hashid), engine.hashid):
            return engine
    raise UnknownEngine(f"Collection {uuid} not found.")


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


async def _search(
    service: CatalogService, request: Request, query: Query, collection: str | None, limit: int
) -> list[dict[str, Any]]:
    engines = _collections(service, request)
    if collection:
        engines = [_collection(service, request, collection)]

    async def one(engine: EngineRuntime) -> list[Any]:
        req = SearchRequest(
            engine=engine.hashid, vector_field=engine.vector_field, k=limit, rpp=limit
        )
        try:
            result = await service.search(engine, query, req, service.timings())
        except NotFound:
            if collection:
                raise
            return []  # a collection never synced has no index yet: nothing to find there
        return list(result.hits)

    hits = [hit for found in await asyncio.gather(*(one(e) for e in engines)) for hit in found]
    hits.sort(key=lambda hit: (-hit.score, hit.id))
    base = str(request.base_url)
    return [r.file_entry(hit, base) for hit in hits[:limit]]


@router.get("/search/", summary="Search files by text")
async def text_search(request: Request, service: Service) -> Response:
    """``query`` (words, at most 1,000 characters), optional ``collection`` and ``limit``."""
    query = request.query_params.get("query")
    if query is None:
        raise MissingFields(["query"])
    if not query.strip():
        raise InvalidRequest("query is empty")
    if len(query) > MAX_QUERY:
        raise InvalidRequest(f"query is longer than {MAX_QUERY} characters")
    limit = _limit(request.query_params.get("limit"))
    collection = request.query_params.get("collection")
    files = await _search(service, request, TextQuery(query), collection, limit)
    info = {"files_count": len(files), "search_type": "text", "query": query}
    return FastJSONResponse(r.envelope({"files": files}, info))


@router.post("/search/", summary="Search files by image")
async def image_search(request: Request, service: Service) -> Response:
    """A multipart ``file`` (the image), optional ``collection`` and ``limit``."""
    data: bytes | None = None
    fields: dict[str, str] = {}
    try:
        async with request.form() as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key == "file":
                        data = await value.read()
                else:
                    fields[key] = value
    except ImgSearchError:
        raise
    except Exception as exc:  # python-multipart raises several unrelated types
        raise InvalidRequest("send the image as multipart/form-data field 'file'") from exc
    if data is None:
        raise MissingFields(["file"])
    limit = _limit(fields.get("limit") or request.query_params.get("limit"))
    collection = fields.get("collection") or request.query_params.get("collection")
    files = await _search(service, request, ImageQuery(data), collection, limit)
    info = {"files_count": len(files), "search_type": "image", "query": None}
    return FastJSONResponse(r.envelope({"files": files}, info))


async def _entry(service: CatalogService, engine: EngineRuntime) -> dict[str, Any]:
    try:
        count, size = await service.size(engine, "file_size")
    except NotFound:  # never synced: no index yet
        count, size = 0, 0.0
    state = await service.sync_state(engine)
    return r.collection_entry(engine.config, state, {"total_files": count, "total_size": int(size)})


@router.get("/collections/", summary="List collections")
async def list_collections(request: Request, service: Service) -> Response:
    engines = _collections(service, request)
    entries = [await _entry(service, engine) for engine in engines]
    return FastJSONResponse(r.envelope({"collections": entries}))


@router.get("/collections/{uuid}/", summary="Collection details")
async def get_collection(uuid: str, request: Request, service: Service) -> Response:
    engine = _collection(service, request, uuid)
    return FastJSONResponse(r.envelope({"collection": await _entry(service, engine)}))


@router.post("/collections/{uuid}/sync/", summary="Trigger a sync", status_code=202)
async def trigger_sync(uuid: str, request: Request, service: Service) -> Response:
    """Starts indexing new and changed files and removing deleted ones; 409 if running."""
    engine = _collection(service, request, uuid)
    await service.sync(engine)
    message = f"Sync triggered successfully for collection {collection_uuid(engine.hashid)}."
    return FastJSONResponse(r.envelope({"message": message}), status_code=202)


@router.get("/collections/{uuid}/sync-status/", summary="Sync status")
async def sync_status(uuid: str, request: Request, service: Service) -> Response:
    engine = _collection(service, request, uuid)
    state = await service.sync_state(engine)
    result = {
        "status": state.get("status", "never"),
        "last_sync": state.get("last_sync"),
        "last_auto_sync": state.get("last_auto_sync"),
        "progress": state.get("progress"),
        "error": state.get("error"),
    }
    return FastJSONResponse(r.envelope(result))


async def _file(service: CatalogService, request: Request, uuid: str) -> tuple[Any, bytes]:
    for engine in _collections(service, request):
        try:
            return await service.file(engine, uuid)
        except UnknownItem:
            continue
    raise UnknownItem(f"File {uuid} not found.")


@router.get("/files/{uuid}/download/", summary="Download a file")
async def download(uuid: str, request: Request, service: Service) -> Response:
    record, data = await _file(service, request, uuid)
    name = str(record.fields.get("file_name") or uuid).replace('"', "")
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/files/{uuid}/thumbnail/", summary="A file's thumbnail (JPEG)")
async def thumbnail(uuid: str, request: Request, service: Service) -> Response:
    _, data = await _file(service, request, uuid)

    def shrink() -> bytes:
        image = decode_image(data, service.limits)
        image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=85)
        return out.getvalue()

    return Response(await to_thread.run_sync(shrink), media_type="image/jpeg")


DIALECT = Dialect(name="similarix", router=router, path_prefix="/api/", error_body=r.error_body)
