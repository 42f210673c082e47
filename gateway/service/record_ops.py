"""Neutral operations on stored records: get, find, count, sample, scan, update, delete."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from gateway.engines import EngineRuntime
from gateway.search.model import FilterTree
from gateway.search.records import (
    RecordPage,
    StoredRecord,
    WriteOutcome,
    after_body,
    count_body,
    delete_body,
    find_body,
    random_body,
    read_bulk_outcomes,
    read_mget,
    read_records,
    read_size,
    size_body,
)
from gateway.service.core import ServiceCore
from gateway.service.record_fields import typed_fields
from imgsearch.errors import InvalidRequest, UnknownItem
from imgsearch.sources import read_file

MAX_RESULT_WINDOW = 10_000  # OpenSearch's default index.max_result_window
SCAN_PAGE = 1_000


class RecordOps(ServiceCore):
    async def get(self, engine: EngineRuntime, ids: Sequence[str]) -> dict[str, StoredRecord]:
        """The stored records among ``ids`` (absent ones are left out)."""
        if not ids:
            return {}
        response: dict[str, Any] = await self._backend(
            lambda: self.client.mget(index=engine.config.alias, body={"ids": list(ids)})
        )
        return read_mget(response, ids, engine.config)

    async def find(
        self, engine: EngineRuntime, tree: FilterTree | None, *, size: int, offset: int = 0
    ) -> RecordPage:
        """Records passing ``tree`` in id order, ``size`` from ``offset``, with the total."""
        if offset + size > MAX_RESULT_WINDOW:
            raise InvalidRequest(
                f"page too deep: offset + size must be at most {MAX_RESULT_WINDOW}"
            )
        body = find_body(tree, engine.config, size=size, offset=offset)
        return await self._records(engine, body)

    async def scan(
        self, engine: EngineRuntime, tree: FilterTree | None
    ) -> AsyncIterator[StoredRecord]:
        """Every record passing ``tree``, in id order, page by page (no depth limit)."""
        after: str | None = None
        while True:
            body = after_body(tree, engine.config, size=SCAN_PAGE, after=after)
            page = await self._records(engine, body)
            for record in page.records:
                yield record
            if len(page.records) < SCAN_PAGE:
                return
            after = page.records[-1].id

    async def count(self, engine: EngineRuntime, tree: FilterTree | None = None) -> int:
        body = count_body(tree, engine.config)
        response: dict[str, Any] = await self._backend(
            lambda: self.client.count(index=engine.config.alias, body=body)
        )
        return int(response.get("count", 0))

    async def sample(
        self, engine: EngineRuntime, tree: FilterTree | None, *, size: int
    ) -> tuple[StoredRecord, ...]:
        """Up to ``size`` records passing ``tree``, drawn at random (a fresh draw each call)."""
        seed = random.SystemRandom().randrange(2**31)
        body = random_body(tree, engine.config, size=size, seed=seed)
        return (await self._records(engine, body)).records

    async def update(
        self, engine: EngineRuntime, updates: Sequence[tuple[str, Mapping[str, object]]]
    ) -> list[WriteOutcome]:
        """Change catalog fields of existing records (``None`` removes a field); vectors stay.

        A record whose fields do not type-check is refused whole; the others are written.
        """
        outcomes: dict[str, WriteOutcome] = {}
        actions: list[dict[str, Any]] = []
        for doc_id, raw in updates:
            try:
                fields = typed_fields(raw, engine.config, allow_null=True)
            except InvalidRequest as exc:
                outcomes[doc_id] = WriteOutcome(doc_id, "invalid", exc.message)
                continue
            actions.append({"update": {"_index": engine.config.alias, "_id": doc_id}})
            actions.append({"doc": fields})
        if actions:
            response: dict[str, Any] = await self._backend(
                lambda: self.client.bulk(body=actions, refresh=True)
            )
            outcomes.update(read_bulk_outcomes(response, "update"))
        return [outcomes[doc_id] for doc_id, _ in updates]

    async def delete(self, engine: EngineRuntime, ids: Sequence[str]) -> list[WriteOutcome]:
        """Delete records by id; absent ids come back ``not_found``."""
        if not ids:
            return []
        actions = [{"delete": {"_index": engine.config.alias, "_id": i}} for i in ids]
        response: dict[str, Any] = await self._backend(
            lambda: self.client.bulk(body=actions, refresh=True)
        )
        outcomes = read_bulk_outcomes(response, "delete")
        return [outcomes[i] for i in ids]

    async def delete_where(self, engine: EngineRuntime, tree: FilterTree | None) -> int:
        """Delete every record passing ``tree``; returns how many. ``None`` deletes nothing."""
        if tree is None:
            raise InvalidRequest("a filter is required: refusing to delete every record")
        body = delete_body(tree, engine.config)
        response: dict[str, Any] = await self._backend(
            lambda: self.client.delete_by_query(
                index=engine.config.alias,
                body=body,
                params={"refresh": "true", "conflicts": "proceed"},
            )
        )
        return int(response.get("deleted", 0))

    async def size(self, engine: EngineRuntime, field: str) -> tuple[int, float]:
        """(number of records, sum of ``field`` over them)."""
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=size_body(field))
        )
        return read_size(response)

    async def file(self, engine: EngineRuntime, doc_id: str) -> tuple[StoredRecord, bytes]:
        """A synced collection's file: its record and its bytes, read from the source."""
        found = await self.get(engine, [doc_id])
        record = found.get(doc_id)
        uri = record.fields.get("file_uri") if record is not None else None
        if record is None or not isinstance(uri, str):
            raise UnknownItem(f"No file {doc_id!r} in this collection")
        data = await self._in_thread(read_file, engine.config, uri, self.limits.max_bytes)
        return record, data

    async def _records(self, engine: EngineRuntime, body: dict[str, Any]) -> RecordPage:
        response: dict[str, Any] = await self._backend(
            lambda: self.client.search(index=engine.config.alias, body=body)
        )
        return read_records(response, engine.config)
