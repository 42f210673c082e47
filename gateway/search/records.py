"""The neutral model of catalog records (reads and writes), and their pure OpenSearch side.

Reads address records by id or by a filter tree; writes report one outcome per record, so
a dialect can say exactly what happened to each (Ximilar's ``answer_records`` /
``skipped_records``). Bodies here are dict in, dict out; ``gateway.service`` runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.search.dsl import filter_to_dsl, source_filter
from gateway.search.model import (
    BOOKKEEPING_FIELDS,
    ID_FIELD,
    FilterTree,
    ImageQuery,
    ImageUrlQuery,
    NearDuplicate,
)
from imgsearch.engine_config import EngineConfig

IMAGE_URL_FIELD = "image_url"


@dataclass(frozen=True)
class StoredRecord:
    """A record as stored: its id and catalog fields (with ``image_url``), no vectors."""

    id: str
    fields: dict[str, object]


@dataclass(frozen=True)
class NewRecord:
    """A record to write: its image (bytes or a URL) and raw field values to type-check."""

    id: str
    image: ImageQuery | ImageUrlQuery
    fields: Mapping[str, object] = field(default_factory=dict)


WriteStatus = Literal["written", "duplicate", "near_duplicate", "not_found", "invalid", "failed"]


@dataclass(frozen=True)
class WriteOutcome:
    """What happened to one record of a write; ``near`` lists the copies that blocked it."""

    id: str
    status: WriteStatus
    reason: str | None = None
    near: tuple[NearDuplicate, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "written"


@dataclass(frozen=True)
class RecordPage:
    records: tuple[StoredRecord, ...]
    total: int


def _query(tree: FilterTree | None, config: EngineConfig) -> dict[str, Any]:
    if tree is None:
        return {"match_all": {}}
    return {"bool": {"filter": [filter_to_dsl(tree, config)]}}


def find_body(
    tree: FilterTree | None, config: EngineConfig, *, size: int, offset: int = 0
) -> dict[str, Any]:
    """Records passing ``tree``, in id order (stable pages), with the total."""
    return {
        "query": _query(tree, config),
        "from": offset,
        "size": size,
        "sort": [{ID_FIELD: {"order": "asc"}}],
        "track_total_hits": True,
        "_source": source_filter(config),
    }


def after_body(
    tree: FilterTree | None, config: EngineConfig, *, size: int, after: str | None
) -> dict[str, Any]:
    """One page of a full scan in id order, continuing after the id ``after``."""
    body = find_body(tree, config, size=size)
    body["track_total_hits"] = False
    if after is not None:
        body["search_after"] = [after]
    return body


def count_body(tree: FilterTree | None, config: EngineConfig) -> dict[str, Any]:
    return {"query": _query(tree, config)}


def random_body(
    tree: FilterTree | None, config: EngineConfig, *, size: int, seed: int
) -> dict[str, Any]:
    """``size`` records passing ``tree`` in a seeded random order."""
    return {
        "query": {
            "function_score": {
                "query": _query(tree, config),
                "random_score": {"seed": seed, "field": "_seq_no"},
                "boost_mode": "replace",
            }
        },
        "size": size,
        "_source": source_filter(config),
    }


def size_body(field: str) -> dict[str, Any]:
    """How many records there are and the sum of ``field`` (e.g. file sizes) over them."""
    return {"size": 0, "track_total_hits": True, "aggs": {"total": {"sum": {"field": field}}}}


def read_size(response: Mapping[str, Any]) -> tuple[int, float]:
    total = response.get("hits", {}).get("total", {})
    count = total.get("value", 0) if isinstance(total, dict) else int(total or 0)
    return int(count), float(response.get("aggregations", {}).get("total", {}).get("value") or 0)


def delete_body(tree: FilterTree | None, config: EngineConfig) -> dict[str, Any]:
    return {"query": _query(tree, config)}


def stored_record(
    source: Mapping[str, Any], fallback_id: str, config: EngineConfig
) -> StoredRecord:
    hidden = {*config.vectors, *BOOKKEEPING_FIELDS, ID_FIELD}
    fields = {k: v for k, v in source.items() if k not in hidden}
    return StoredRecord(id=str(source.get(ID_FIELD, fallback_id)), fields=fields)


def read_records(response: Mapping[str, Any], config: EngineConfig) -> RecordPage:
    hits = response.get("hits", {})
    records = tuple(
        stored_record(hit.get("_source") or {}, str(hit["_id"]), config)
        for hit in hits.get("hits", [])
    )
    total = hits.get("total", {})
    count = total.get("value", len(records)) if isinstance(total, dict) else int(total or 0)
    return RecordPage(records=records, total=int(count))


def read_bulk_outcomes(response: Mapping[str, Any], op: str) -> dict[str, WriteOutcome]:
    """Per-id outcomes of a ``_bulk`` of ``op`` actions (``update``/``delete``): 404 is
    ``not_found``, another error ``failed`` with OpenSearch's reason."""
    outcomes: dict[str, WriteOutcome] = {}
    for item in response.get("items", []):
        result = item.get(op, {})
        doc_id = str(result.get("_id"))
        status = int(result.get("status", 500))
        if status == 404:
            outcomes[doc_id] = WriteOutcome(doc_id, "not_found", "records not found")
        elif status >= 300:
            reason = str((result.get("error") or {}).get("reason", f"{op} failed"))
            outcomes[doc_id] = WriteOutcome(doc_id, "failed", reason)
        else:
            outcomes[doc_id] = WriteOutcome(doc_id, "written")
    return outcomes


def read_mget(
    response: Mapping[str, Any], ids: Sequence[str], config: EngineConfig
) -> dict[str, StoredRecord]:
    """The found records of an ``mget`` by id (absent ids are left out)."""
    found: dict[str, StoredRecord] = {}
    for doc in response.get("docs", []):
        if doc.get("found"):
            record = stored_record(doc.get("_source") or {}, str(doc["_id"]), config)
            found[str(doc["_id"])] = record
    return {i: found[i] for i in ids if i in found}
