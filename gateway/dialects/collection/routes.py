"""The collection API's routes (reference: ``collection-finetune-api.txt``), thin.

Every write needs an ``API-Key`` header with a write key for the collection (creating one:
a key for all collections); reads need a key only for collections whose ``read_access`` is
``key``. An unknown collection is a 400, as the reference says. See docs/collections.md.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from gateway.deps import Service
from gateway.dialect import Dialect
from gateway.dialects.collection import response as r
from gateway.json_response import FastJSONResponse
from gateway.search.model import ImageQuery, SearchRequest
from gateway.service import CatalogService
from gateway.service.collection_store import CollectionRecord
from imgsearch.errors import InvalidRequest
from imgsearch.images import image_bytes_from_base64

router = APIRouter(prefix="/api", tags=["Collections"])

ApiKeyHeader = Annotated[str | None, Header(alias="API-Key")]
CollectionId = Annotated[int, Path(ge=1, le=2**53, description="The collection's id")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
MAX_LIMIT = 100


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBody(_Body):
    name: Name
    heidicon_tag: Annotated[str, Field(max_length=200)] | None = None
    read_access: Literal["open", "key"] | None = None


class NameBody(_Body):
    name: Name


class ContentBody(_Body):
    content: str = Field(description="The CSV, base64-encoded")


class FinetuneBody(_Body):
    label_field: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Field whose values are the labels (default: category)"
    )
    augment: bool | None = Field(
        default=None, description="Also learn from augmented copies (default: without labels)"
    )


class SearchBody(_Body):
    image: str = Field(description="The query image, base64-encoded")
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 10


def _ok(**extra: object) -> Response:
    return FastJSONResponse({"success": True, **extra})


async def _authorized(
    service: CatalogService, collection_id: int, api_key: str | None, *, write: bool
) -> CollectionRecord:
    """The collection, once the key may read it (or write it): 400 unknown, 403 refused."""
    record = await service.collection(collection_id)
    await service.authorize(record, api_key, write=write)
    return record


@router.post("/verify", summary="Verify an API key")
async def verify(service: Service, api_key: ApiKeyHeader = None) -> Response:
    key = await service.check_key(api_key)
    return _ok(access=key.access, collections=key.collections)


@router.post("/collection/create", summary="Create a collection")
async def create(body: CreateBody, service: Service, api_key: ApiKeyHeader = None) -> Response:
    await service.authorize(None, api_key, write=True)
    record = await service.create_collection(body.name, body.heidicon_tag, body.read_access)
    return _ok(id=record.id, name=record.name)


@router.get("/collection/list", summary="List collections")
async def list_collections(service: Service, api_key: ApiKeyHeader = None) -> Response:
    records = await service.readable_collections(api_key)
    return FastJSONResponse(r.collection_list([(c.id, c.name) for c in records]))


@router.get("/collection/{collection_id}/info", summary="Collection information")
async def info(
    collection_id: CollectionId, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    record = await _authorized(service, collection_id, api_key, write=False)
    state = await service.collection_info(record)
    return FastJSONResponse(
        r.info(
            collection_id=record.id,
            name=record.name,
            heidicon_tag=record.heidicon_tag,
            read_access=record.read_access,
            last_modified=record.last_modified,
            content_modified=record.content_modified,
            **state,
        )
    )


@router.post("/collection/{collection_id}/updatecontent", summary="Replace the content (CSV)")
async def update_content(
    collection_id: CollectionId, body: ContentBody, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    """Starts replacing the content in the background; progress and failed rows in ``info``."""
    record = await _authorized(service, collection_id, api_key, write=True)
    try:
        text = base64.b64decode(body.content, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidRequest("content must be base64 of UTF-8 CSV text") from None
    job = await service.replace_content(record, text)
    return _ok(job=job)


@router.get("/collection/{collection_id}/csvfile", summary="Download the content as CSV")
async def csv_file(
    collection_id: CollectionId, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    record = await _authorized(service, collection_id, api_key, write=False)
    text = await service.export_csv(record)
    headers = {"Content-Disposition": f'attachment; filename="collection-{record.id}.csv"'}
    return Response(text.encode(), media_type="text/csv; charset=utf-8", headers=headers)


@router.post("/collection/{collection_id}/updatename", summary="Rename a collection")
async def update_name(
    collection_id: CollectionId, body: NameBody, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    record = await _authorized(service, collection_id, api_key, write=True)
    renamed = await service.rename_collection(record, body.name)
    return _ok(id=renamed.id, name=renamed.name)


@router.post("/collection/{collection_id}/delete", summary="Delete a collection")
async def delete(
    collection_id: CollectionId, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    record = await _authorized(service, collection_id, api_key, write=True)
    await service.delete_collection(record)
    return _ok(id=record.id)


@router.post("/collection/{collection_id}/cancel", summary="Cancel the running jobs")
async def cancel(
    collection_id: CollectionId, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    """Not in the reference: stops a content update or fine-tuning in progress (409 if none).
    A cancelled content update leaves the old content served."""
    record = await _authorized(service, collection_id, api_key, write=True)
    return _ok(cancelled=await service.cancel_jobs(record))


@router.post("/collection/{collection_id}/finetune", summary="Fine-tune the collection's model")
async def finetune(
    collection_id: CollectionId,
    service: Service,
    body: FinetuneBody | None = None,
    api_key: ApiKeyHeader = None,
) -> Response:
    """Starts fine-tuning in the background and returns at once; progress in ``info``. The
    body is optional (see docs/finetuning.md); ``cancel`` stops it."""
    record = await _authorized(service, collection_id, api_key, write=True)
    engine = await service.collection_engine(record)
    options = body or FinetuneBody()
    job = await service.start_finetune(
        engine, label_field=options.label_field, augment=options.augment
    )
    return _ok(job=job)


@router.post("/collection/{collection_id}/search", summary="Similarity search")
async def search(
    collection_id: CollectionId, body: SearchBody, service: Service, api_key: ApiKeyHeader = None
) -> Response:
    record = await _authorized(service, collection_id, api_key, write=False)
    data = image_bytes_from_base64(body.image)
    engine = await service.collection_engine(record)
    k = max(engine.config.gateway.k, body.limit)
    request = SearchRequest(
        engine=engine.hashid, vector_field=engine.vector_field, k=k, rpp=body.limit
    )
    result = await service.search(engine, ImageQuery(data), request, service.timings())
    return FastJSONResponse({"results": [r.search_result(h, engine.config) for h in result.hits]})


DIALECT = Dialect(
    name="collection",
    router=router,
    path_prefix="/api/collection/",
    extra_prefixes=("/api/verify",),
    error_body=r.error_body,
    # The reference answers 400 for a collection it does not know.
    statuses={404: 400},
)
