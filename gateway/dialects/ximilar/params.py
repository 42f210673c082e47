"""Ximilar request bodies → neutral parts. Pure.

Every method takes one JSON object. Records name their image by ``_id`` (an indexed record),
``_url`` or ``_base64``; ``_file`` (a path on the server) is refused, since clients must not
read the gateway's disk. Custom fields are the engine's declared fields. ``filter`` is
Mongo-style (``gateway.search.mongo_filter``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.search.model import ID_FIELD, FilterTree, ImageQuery, ImageUrlQuery, ItemQuery
from gateway.search.mongo_filter import parse_mongo_filter
from gateway.search.records import NewRecord
from imgsearch.engine_config import EngineConfig, FieldType
from imgsearch.errors import InvalidRequest, MissingFields
from imgsearch.images import image_bytes_from_base64

IMAGE_KEYS = ("_id", "_url", "_base64", "_file")
MAX_RECORDS = 10  # per insert, as Ximilar documents
MAX_LIST = 1_000  # ids per get/delete/update/rank call
MAX_K = 1_000


def body_object(raw: object) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidRequest("the request body must be a JSON object")
    return raw


def integer(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a whole number")
    if int(value) != value or not low <= value <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    return int(value)


def number(body: Mapping[str, Any], name: str, default: float | None, low: float) -> float:
    value = body.get(name, default)
    if value is None:
        raise MissingFields([name])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequest(f"{name} must be a number")
    if value < low:
        raise InvalidRequest(f"{name} must be at least {low}")
    return float(value)


def fields_to_return(body: Mapping[str, Any], default: Sequence[str]) -> tuple[str, ...]:
    value = body.get("fields_to_return", list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest("fields_to_return must be a list of field names")
    return tuple(value) or tuple(default)


def filter_tree(body: Mapping[str, Any], config: EngineConfig) -> FilterTree | None:
    return parse_mongo_filter(body.get("filter"), config)


def product_field(body: Mapping[str, Any], config: EngineConfig) -> str | None:
    """``product_field`` (one result per product), else the engine's default, else none."""
    name = body.get("product_field", config.gateway.product_field)
    if name is None or name == "":
        return None
    spec = config.searchable_fields().get(name) if isinstance(name, str) else None
    if spec is None or spec.type is not FieldType.KEYWORD:
        raise InvalidRequest(f"product_field {name!r} is not a keyword field of this collection")
    return str(name)


def record_list(body: Mapping[str, Any], name: str, limit: int) -> list[dict[str, Any]]:
    value = body.get(name)
    if value is None:
        raise MissingFields([name])
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise InvalidRequest(f"{name} must be a list of records (JSON objects)")
    if not value:
        raise InvalidRequest(f"{name} is empty")
    if len(value) > limit:
        raise InvalidRequest(f"at most {limit} records per request, got {len(value)}")
    return value


def record_id(record: Mapping[str, Any], where: str) -> str:
    value = record.get("_id")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        raise InvalidRequest(f"{where}: _id must be a non-empty string")
    return str(value)


def record_ids(body: Mapping[str, Any], limit: int = MAX_LIST) -> list[str]:
    return [
        record_id(r, f"records[{i}]") for i, r in enumerate(record_list(body, "records", limit))
    ]


def image_of(record: Mapping[str, Any], where: str) -> ImageQuery | ImageUrlQuery | None:
    """The record's own image (``_url`` or ``_base64``), or None when it has none."""
    if record.get("_file") is not None:
        raise InvalidRequest(f"{where}: _file is not supported (send _url or _base64)")
    url, data = record.get("_url"), record.get("_base64")
    if url is not None and data is not None:
        raise InvalidRequest(f"{where}: give _url or _base64, not both")
    if data is not None:
        if not isinstance(data, str) or not data.strip():
            raise InvalidRequest(f"{where}: _base64 must be a base64 string")
        return ImageQuery(image_bytes_from_base64(data, f"{where}._base64"))
    if url is not None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidRequest(f"{where}: _url must be an http(s) URL")
        return ImageUrlQuery(url)
    return None


def query_of(record: object, where: str) -> ImageQuery | ImageUrlQuery | ItemQuery:
    """A query record: its own image if it has one, else the indexed record ``_id``."""
    if not isinstance(record, dict):
        raise InvalidRequest(f"{where} must be a record (JSON object)")
    image = image_of(record, where)
    if image is not None:
        return image
    if record.get("_id") is not None:
        return ItemQuery(ID_FIELD, record_id(record, where), exclude_self=True)
    raise InvalidRequest(f"{where} needs _id, _url or _base64")


def query_record(body: Mapping[str, Any]) -> ImageQuery | ImageUrlQuery | ItemQuery:
    if body.get("query_record") is None:
        raise MissingFields(["query_record"])
    return query_of(body["query_record"], "query_record")


def query_records(body: Mapping[str, Any]) -> list[ImageQuery | ImageUrlQuery | ItemQuery]:
    records = record_list(body, "query_records", MAX_RECORDS)
    return [query_of(r, f"query_records[{i}]") for i, r in enumerate(records)]


def tags_of(records: Sequence[object], field: str) -> tuple[str, ...]:
    """The union of the query records' tags, in first-seen order."""
    tags: list[str] = []
    for record in records:
        value = record.get(field) if isinstance(record, dict) else None
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise InvalidRequest(f"{field} must be a list of strings")
        tags.extend(t for t in value if t not in tags)
    if not tags:
        raise MissingFields([field])
    return tuple(tags)


def new_records(body: Mapping[str, Any]) -> list[NewRecord]:
    """Records to insert: ``_id``, an image, and custom fields (type-checked by the service)."""
    out: list[NewRecord] = []
    for i, record in enumerate(record_list(body, "records", MAX_RECORDS)):
        where = f"records[{i}]"
        image = image_of(record, where)
        if image is None:
            raise InvalidRequest(f"{where} needs _url or _base64")
        fields = {k: v for k, v in record.items() if k not in IMAGE_KEYS}
        out.append(NewRecord(record_id(record, where), image, fields))
    return out


def updates(body: Mapping[str, Any]) -> list[tuple[str, dict[str, object]]]:
    out: list[tuple[str, dict[str, object]]] = []
    for i, record in enumerate(record_list(body, "records", MAX_LIST)):
        where = f"records[{i}]"
        if any(record.get(k) is not None for k in ("_url", "_base64", "_file")):
            raise InvalidRequest(f"{where}: the image cannot be updated (delete and insert)")
        fields = {k: v for k, v in record.items() if k not in IMAGE_KEYS}
        out.append((record_id(record, where), fields))
    return out
