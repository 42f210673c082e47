"""The indexer's OpenSearch writes and reads: bulk with retries, hash look-ups, id scans.

The only indexer module that imports ``opensearchpy.helpers``. Results are reduced to
``(doc_id, error or None)``: failed ids and reasons are logged, payloads (vectors) never.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opensearchpy import helpers

from imgsearch.search_client import backend_errors

if TYPE_CHECKING:
    from opensearchpy import OpenSearch


@dataclass(frozen=True)
class BulkSettings:
    """``chunk_size`` documents or ``max_chunk_bytes`` per request; 429s retried with backoff."""

    chunk_size: int = 200
    max_chunk_bytes: int = 20 * 1024 * 1024
    max_retries: int = 5
    initial_backoff_s: int = 1
    max_backoff_s: int = 30
    request_timeout_s: float = 120.0


def bulk_write(
    client: OpenSearch, actions: Iterable[dict[str, Any]], settings: BulkSettings
) -> Iterator[tuple[str, str | None]]:
    """Stream ``actions``; yield ``(doc_id, None)`` per success, ``(doc_id, reason)`` if not."""
    results = helpers.streaming_bulk(
        client,
        actions,
        chunk_size=settings.chunk_size,
        max_chunk_bytes=settings.max_chunk_bytes,
        max_retries=settings.max_retries,
        initial_backoff=settings.initial_backoff_s,
        max_backoff=settings.max_backoff_s,
        raise_on_error=False,
        raise_on_exception=False,
        yield_ok=True,
        request_timeout=settings.request_timeout_s,
    )
    for ok, item in results:
        op = next(iter(item.values()))
        doc_id = str(op.get("_id"))
        yield doc_id, None if ok else describe_failure(op)


def describe_failure(op: dict[str, Any]) -> str:
    """A short reason from one failed bulk item, without its payload."""
    status = op.get("status")
    error = op.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    elif error is not None:
        text = str(error)
    else:
        text = "unknown bulk error"
    return f"HTTP {status}: {text[:300]}"


def existing_hashes(client: OpenSearch, index: str, ids: list[str]) -> dict[str, str]:
    """``content_hash`` of those ``ids`` already in ``index`` (absent ids are left out)."""
    if not ids:
        return {}
    with backend_errors():
        response = client.mget(
            index=index, body={"ids": ids}, params={"_source_includes": "content_hash"}
        )
    found: dict[str, str] = {}
    for doc in response.get("docs", []):
        if doc.get("found"):
            digest = (doc.get("_source") or {}).get("content_hash")
            if isinstance(digest, str):
                found[str(doc["_id"])] = digest
    return found


def scan_ids(client: OpenSearch, index: str) -> Iterator[str]:
    """Every ``_id`` in ``index``, streamed with a point-in-time-free scroll."""
    with backend_errors():
        for hit in helpers.scan(
            client, index=index, query={"query": {"match_all": {}}, "_source": False}, size=1000
        ):
            yield str(hit["_id"])


def scan_sources(
    client: OpenSearch, index: str, fields: Iterable[str]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``_id``, ``_source`` limited to ``fields``) of every document in ``index``."""
    query = {"query": {"match_all": {}}, "_source": {"includes": sorted(fields)}}
    with backend_errors():
        for hit in helpers.scan(client, index=index, query=query, size=1000):
            yield str(hit["_id"]), hit.get("_source") or {}


def delete_ids(
    client: OpenSearch, index: str, ids: Iterable[str], settings: BulkSettings
) -> Iterator[tuple[str, str | None]]:
    actions = ({"_op_type": "delete", "_index": index, "_id": doc_id} for doc_id in ids)
    return bulk_write(client, actions, settings)


def refresh(client: OpenSearch, index: str) -> None:
    with backend_errors():
        client.indices.refresh(index=index)
