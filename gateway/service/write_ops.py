"""Neutral inserts: API records go through the indexer's own decode → embed → bulk pipeline.

One way turns a record into a document (DESIGN principle 6): the feed indexer and every
dialect's insert share ``indexer.pipeline``. Images given as URLs are fetched here with
the gateway's public-only client (clients never reach private hosts or local files), so
the pipeline only ever sees bytes. Writes use ``create``: an id that exists is refused
atomically, even when two inserts race.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import anyio

from gateway.engines import EngineRuntime
from gateway.search.model import ImageQuery, NearDuplicate
from gateway.search.records import NewRecord, WriteOutcome
from gateway.service.record_fields import typed_fields
from gateway.service.record_ops import RecordOps
from gateway.service.search_ops import SearchOps
from imgsearch.errors import ImgSearchError, InvalidRequest
from indexer.feeds import MAX_ID_BYTES, FeedRecord
from indexer.pipeline import PipelineSettings
from indexer.runner import write_records

MAX_BATCH = 100


class WriteOps(SearchOps, RecordOps):
    async def insert(
        self,
        engine: EngineRuntime,
        records: Sequence[NewRecord],
        *,
        near_duplicate_bits: int | None = None,
    ) -> list[WriteOutcome]:
        """Insert new records; one outcome per record, in order. Existing ids are refused.

        With ``near_duplicate_bits``, a record whose image is within that many bits of an
        indexed one (perceptual hash) is refused too, and the outcome names the copies.
        When this returns, every written record is searchable.
        """
        if len(records) > MAX_BATCH:
            raise InvalidRequest(f"at most {MAX_BATCH} records per call")
        config = engine.config
        outcomes: dict[int, WriteOutcome] = {}
        accepted: dict[int, tuple[NewRecord, dict[str, object]]] = {}
        seen: set[str] = set()
        for i, record in enumerate(records):
            problem = _id_problem(record.id)
            if problem is None and record.id in seen:
                outcomes[i] = WriteOutcome(record.id, "duplicate", "id repeated in this batch")
                continue
            seen.add(record.id)
            if problem is not None:
                outcomes[i] = WriteOutcome(record.id, "invalid", problem)
                continue
            try:
                fields = typed_fields(record.fields, config)
            except InvalidRequest as exc:
                outcomes[i] = WriteOutcome(record.id, "invalid", exc.message)
                continue
            missing = [n for n, spec in config.fields.items() if spec.required and n not in fields]
            if missing:
                outcomes[i] = WriteOutcome(record.id, "invalid", f"missing field {missing[0]!r}")
                continue
            accepted[i] = (record, fields)

        existing = await self.get(engine, [record.id for record, _ in accepted.values()])
        for i, (record, _) in list(accepted.items()):
            if record.id in existing:
                outcomes[i] = WriteOutcome(record.id, "duplicate", "record with this _id exists")
                del accepted[i]

        images = await self._fetch_all({i: rec for i, (rec, _) in accepted.items()})
        feed: list[FeedRecord] = []
        for i, (record, fields) in accepted.items():
            image = images[i]
            if isinstance(image, ImgSearchError):
                outcomes[i] = WriteOutcome(record.id, "failed", image.message)
                continue
            if near_duplicate_bits is not None:
                near = await self._near_copies(engine, image, near_duplicate_bits)
                if near:
                    outcomes[i] = WriteOutcome(
                        record.id, "near_duplicate", "near duplicate of an indexed record", near
                    )
                    continue
            url = record.image.url if not isinstance(record.image, ImageQuery) else ""
            feed.append(FeedRecord(f"record {i}", record.id, url, url, fields, data=image))

        if feed:
            by_id = {rec.id: i for i, (rec, _) in accepted.items()}
            for line in await self._write(engine, feed):
                doc_id = str(line["id"])
                outcomes[by_id[doc_id]] = _outcome(doc_id, line)
        return [outcomes[i] for i in range(len(records))]

    async def _fetch_all(self, records: dict[int, NewRecord]) -> dict[int, bytes | ImgSearchError]:
        """Every record's image bytes (URLs fetched concurrently), or the error per record."""
        out: dict[int, bytes | ImgSearchError] = {}

        async def one(i: int, record: NewRecord) -> None:
            try:
                out[i] = await self._image_bytes(record.image)
            except ImgSearchError as exc:
                out[i] = exc

        async with anyio.create_task_group() as group:
            for i, record in records.items():
                group.start_soon(one, i, record)
        return out

    async def _near_copies(
        self, engine: EngineRuntime, image: bytes, bits: int
    ) -> tuple[NearDuplicate, ...]:
        try:
            return await self.near_duplicates(engine, ImageQuery(image), max_distance=bits, size=10)
        except ImgSearchError:
            return ()  # an undecodable image fails in the pipeline with its reason

    async def _write(
        self, engine: EngineRuntime, feed: list[FeedRecord]
    ) -> list[dict[str, object]]:
        config = engine.config
        for name in config.vectors:  # the index's embedders, adapters included, or refuse
            await self._ensure_index_matches(engine, name)
        embedders = {name: engine.embedder(name) for name in config.vectors}
        settings = replace(
            PipelineSettings(workers=2, batch_size=16),
            image_limits=self.limits,
            skip_unchanged=False,
            op_type="create",
        )
        async with self._embed_slots:
            return await self._in_thread(
                lambda: write_records(feed, self.client, config.alias, embedders, settings)
            )


def _id_problem(doc_id: str) -> str | None:
    if not doc_id.strip():
        return "missing _id"
    if len(doc_id.encode()) > MAX_ID_BYTES:
        return f"_id longer than {MAX_ID_BYTES} bytes"
    return None


def _outcome(doc_id: str, line: dict[str, object]) -> WriteOutcome:
    if line.get("status") == "indexed":
        return WriteOutcome(doc_id, "written")
    reason = str(line.get("reason", "failed"))
    if line.get("stage") == "bulk" and "409" in reason:
        return WriteOutcome(doc_id, "duplicate", "record with this _id exists")
    return WriteOutcome(doc_id, "failed", f"{line.get('stage')}: {reason}")
