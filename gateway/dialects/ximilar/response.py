"""Neutral results → Ximilar response bodies. Pure.

Every body carries ``status`` {code, text} and ``statistics.OperationTime`` (ms). Records
are projected to ``fields_to_return``: ``*`` is every stored field, ``_id`` the id, ``_url``
the stored image URL. ``answer_distances`` are Euclidean distances between L2-normalised
embeddings (``gateway.search.distances``: 0 = same picture, up to 2), or Hamming bits for
near-duplicates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.search.records import IMAGE_URL_FIELD, StoredRecord, WriteOutcome

OK = (200, "OK")
# Per-record reasons, as Ximilar words them.
NOT_FOUND = (404, "records not found")
DUPLICATE = (411, "record duplicate")


def envelope(code: int, text: str, millis: float, **extra: Any) -> dict[str, Any]:
    return {
        "status": {"code": code, "text": text},
        "statistics": {"OperationTime": round(millis)},
        **extra,
    }


def error_body(status: int, message: str) -> dict[str, Any]:
    return envelope(status, message, 0)


def project(record: StoredRecord, fields: Sequence[str]) -> dict[str, Any]:
    """The record with the requested fields (``*`` = all stored ones)."""
    everything = {"_id": record.id, **_public(record.fields)}
    if "*" in fields:
        return everything
    return {name: everything[name] for name in fields if name in everything}


def _public(fields: Mapping[str, object]) -> dict[str, object]:
    out = {k: v for k, v in fields.items() if k != IMAGE_URL_FIELD and v is not None}
    url = fields.get(IMAGE_URL_FIELD)
    if url:
        out["_url"] = url
    return out


def skipped(doc_id: str, code: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"_id": doc_id, "_reason": {"status": {"code": code, "text": text}, **extra}}


def outcome_reason(outcome: WriteOutcome) -> tuple[int, str]:
    if outcome.status == "duplicate":
        return DUPLICATE
    if outcome.status == "not_found":
        return NOT_FOUND
    if outcome.status == "near_duplicate":
        return 211, "record(s) duplicate"
    return 400, outcome.reason or "record refused"


def insert_status(outcomes: Sequence[WriteOutcome]) -> tuple[int, str]:
    written = sum(o.ok for o in outcomes)
    if written == len(outcomes):
        return 210, "records inserted"
    if written:
        return 211, "some records inserted"
    if all(o.status in ("duplicate", "near_duplicate") for o in outcomes):
        return 411, "record duplicate"
    return 400, "no record inserted"


def found_status(found: int, asked: int, all_code: int, all_text: str) -> tuple[int, str]:
    if found == asked:
        return all_code, all_text
    if found:
        return 206, "some of the records not found"
    return NOT_FOUND


def write_answer(
    outcomes: Sequence[WriteOutcome],
    status: tuple[int, str],
    millis: float,
    records: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``answer_records`` (written, projected when ``records`` has them) and ``skipped_records``."""
    answer = [
        records.get(o.id, {"_id": o.id}) if records else {"_id": o.id} for o in outcomes if o.ok
    ]
    skipped_records = []
    for o in outcomes:
        if o.ok:
            continue
        code, text = outcome_reason(o)
        extra: dict[str, Any] = {}
        if o.near:
            extra = {
                "answer_records": [{"_id": n.id} for n in o.near],
                "answer_distances": [float(n.distance) for n in o.near],
            }
        skipped_records.append(skipped(o.id, code, text, **extra))
    body = envelope(*status, millis, answer_records=answer, answer_count=len(answer))
    if skipped_records:
        body["skipped_records"] = skipped_records
    return body
