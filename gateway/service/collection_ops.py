"""Neutral operations on collections created over HTTP: create, rename, list, delete, keys,
content replaced from a CSV (a long job), CSV export and the state the ``info`` route shows.

Replacing the content rebuilds the collection into a new index version through the
indexer's own ``index_items`` (the same record → document path as every feed) and swaps the
alias when done, so the old content stays searchable until then. Rows that fail (bad CSV
row, wrong type, image that cannot be fetched or decoded) are reported per row; the rest is
indexed. The job's state is in the jobs index, so it survives a gateway restart.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.engines import EngineRuntime
from gateway.service.collection_store import CollectionRecord, CollectionStore, ReadAccess, now
from gateway.service.job_runner import JobContext, JobRunner
from gateway.service.key_store import KeyStore
from gateway.service.write_ops import WriteOps
from imgsearch.api_keys import ApiKey
from imgsearch.engine_config import RESERVED_FIELDS, EngineConfig, FieldSpec, FieldType
from imgsearch.errors import Conflict, Forbidden, InvalidRequest, NotFound
from indexer import lifecycle
from indexer.catalog_csv import (
    CsvTable,
    columns_of,
    read_table,
    row_of,
    table_items,
    write_table,
)
from indexer.feeds import FeedError, FeedItem, FeedRecord, SeenIds
from indexer.pipeline import PipelineSettings
from indexer.runner import IndexOptions, index_items

logger = logging.getLogger(__name__)

CONTENT_JOB = "content"
FINETUNE_JOB = "finetune"  # written by the fine-tuning job; read here for ``info``
MAX_REPORTED_PROBLEMS = 1_000


class CollectionOps(WriteOps):
    def __init__(self, *, collections: CollectionStore, keys: KeyStore, **parts: Any) -> None:
        super().__init__(**parts)
        self.collections = collections
        self.keys = keys
        self.runner = JobRunner(self.client)
        self.runner.register(CONTENT_JOB, self._replace_content_job)

    # -- access ---------------------------------------------------------------------------

    async def check_key(self, token: str | None) -> ApiKey:
        """The valid key ``token`` is (``Forbidden`` otherwise)."""
        return await self._backend(lambda: self.keys.check(token))

    async def authorize(
        self, record: CollectionRecord | None, token: str | None, *, write: bool
    ) -> None:
        """Writes need a write key for the collection; reads one only if it is not open.

        ``record`` ``None`` is an act on no one collection (creating one)."""
        if not write and record is not None and record.read_access == "open" and token is None:
            return
        key = await self.check_key(token)
        if not key.permits(record.id if record else None, write=write):
            raise Forbidden("This API key may not " + ("change" if write else "read") + " it")

    # -- records --------------------------------------------------------------------------

    async def collection(self, collection_id: int) -> CollectionRecord:
        return await self._backend(lambda: self.collections.get(collection_id))

    async def collection_engine(self, record: CollectionRecord) -> EngineRuntime:
        return await self._in_thread(self.registry.get, record.hashid)

    async def readable_collections(self, token: str | None) -> list[CollectionRecord]:
        """Every collection the caller may read: the open ones, and the key's."""
        key = await self.check_key(token) if token is not None else None
        records = await self._backend(self.collections.all)
        return [
            r
            for r in records
            if r.read_access == "open" or (key is not None and key.permits(r.id, write=False))
        ]

    async def create_collection(
        self, name: str, heidicon_tag: str | None, read_access: ReadAccess | None
    ) -> CollectionRecord:
        """A new, empty collection with its engine config from the gateway's template."""
        access = read_access or self.settings.collection_read_access
        record = await self._backend(lambda: self.collections.new(name, heidicon_tag, access))
        engine = await self._in_thread(self.registry.reload, record.hashid)
        await self._in_thread(self._create_index, engine)
        return record

    def _create_index(self, engine: EngineRuntime) -> None:
        infos = {name: engine.embedder(name).info for name in engine.config.vectors}
        lifecycle.prepare_target(self.client, engine.config, infos, rebuild=False)

    async def rename_collection(self, record: CollectionRecord, name: str) -> CollectionRecord:
        renamed = record.model_copy(update={"name": name, "last_modified": now()})
        await self._backend(lambda: self.collections.save(renamed))
        return renamed

    async def delete_collection(self, record: CollectionRecord) -> None:
        """Its indexes and alias, its jobs' state and its record; ``Conflict`` mid-job."""
        hashid = record.hashid
        alias = record.config.alias

        def remove() -> None:
            for kind in (CONTENT_JOB, FINETUNE_JOB):
                if self.runner.active(kind, hashid):
                    raise Conflict(f"a {kind} job of collection {record.id} is in progress")
            self.client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
            for kind in (CONTENT_JOB, FINETUNE_JOB):
                self.runner.forget(kind, hashid)
            self.collections.remove(record.id)

        await self._backend(remove)
        with contextlib.suppress(NotFound):  # gone, as it should be: forget it here
            await self._in_thread(self.registry.reload, hashid)

    # -- info -----------------------------------------------------------------------------

    async def collection_info(self, record: CollectionRecord) -> dict[str, Any]:
        """Counts and job states: number_of_images, content_update, fine-tuning state."""
        engine = await self._in_thread(self.registry.get, record.hashid)
        try:
            count = await self.count(engine)
        except NotFound:
            count = 0
        content = await self._backend(lambda: self.runner.state(CONTENT_JOB, record.hashid))
        finetune = await self._backend(lambda: self.runner.state(FINETUNE_JOB, record.hashid))
        return {"number_of_images": count, "content": content, "finetune": finetune}

    # -- content --------------------------------------------------------------------------

    async def replace_content(self, record: CollectionRecord, text: str) -> dict[str, Any]:
        """Check the CSV, then replace the content in the background.

        Returns the job's state plus the rows refused already (the job reports the rest).
        """
        engine = await self._in_thread(self.registry.get, record.hashid)
        table = read_table(text, image_column=engine.config.image_field,
                           id_column=engine.config.id_field)  # fmt: skip
        config = content_config(engine.config, table.columns)
        refused = [
            {"row": item.ref, "id": item.id, "reason": item.reason}
            for item in _items(table, config, self.settings.collection_media_dir)
            if isinstance(item, FeedError)
        ]
        if await self._backend(lambda: self.runner.active(FINETUNE_JOB, record.hashid)):
            raise Conflict(f"collection {record.id} is being fine-tuned; update it afterwards")
        # Whichever gateway runs the job (this one, or another after a restart) reads images
        # under the rules of the gateway that accepted the upload.
        media = self.settings.collection_media_dir
        params = {
            "collection": record.id,
            "csv": text,
            "media_dir": str(media.resolve()) if media is not None else None,
            "public_urls_only": not self.settings.image_url_allow_private,
        }
        state = await self._backend(lambda: self.runner.submit(CONTENT_JOB, record.hashid, params))
        return {**state, "rows": len(table.rows) + len(table.problems), "refused": refused}

    def _replace_content_job(self, context: JobContext) -> dict[str, Any]:
        record = self.collections.get(int(context.params["collection"]))
        current = self.registry.reload(record.hashid).config
        table = read_table(str(context.params["csv"]), image_column=current.image_field,
                           id_column=current.id_field)  # fmt: skip
        config = content_config(current, table.columns)
        media = context.params.get("media_dir")
        items = _items(table, config, Path(media) if media else None)
        seen = SeenIds()
        for item in items:
            if item.id is not None:
                seen.add(item.id)
        total = max(len(items), 1)
        pipeline = replace(
            PipelineSettings(workers=2, batch_size=16),
            image_limits=self.limits,
            on_written=lambda written: context.progress(written / total),
            public_urls_only=bool(context.params.get("public_urls_only", True)),
        )
        embedders = {name: self.registry.make_embedder(config, name) for name in config.vectors}
        with tempfile.TemporaryDirectory(prefix="imgsearch-content-") as folder:
            report_path = Path(folder) / "report.jsonl"
            options = IndexOptions(
                rebuild=True, swap_with_failures=True, pipeline=pipeline,
                report_path=report_path, progress_stream=io.StringIO(),
            )  # fmt: skip
            summary = index_items(iter(items), seen, config, self.client, options,
                                  embedders=embedders)  # fmt: skip
            problems = _failures(report_path)
        stamp = now()
        updated = record.model_copy(
            update={"config": config, "last_modified": stamp, "content_modified": stamp}
        )
        self.collections.save(updated)
        self.registry.reload(record.hashid)
        return {
            "rows": len(items), "indexed": summary.indexed, "failed": summary.failed,
            "problems": problems[:MAX_REPORTED_PROBLEMS],
        }  # fmt: skip

    async def cancel_jobs(self, record: CollectionRecord) -> list[str]:
        """Cancel the collection's active jobs (content update, fine-tuning); their kinds."""

        def cancel() -> list[str]:
            kinds = [k for k in (CONTENT_JOB, FINETUNE_JOB) if self.runner.active(k, record.hashid)]
            if not kinds:
                raise Conflict(f"collection {record.id} has no job in progress")
            for kind in kinds:
                self.runner.cancel(kind, record.hashid)
            return kinds

        return await self._backend(cancel)

    async def export_csv(self, record: CollectionRecord) -> str:
        """The content as the CSV that uploads back to the same records."""
        engine = await self._in_thread(self.registry.get, record.hashid)
        config = engine.config
        rows: list[dict[str, object]] = []
        try:
            async for stored in self.scan(engine, None):
                rows.append(row_of(stored.id, stored.fields, config))
        except NotFound:
            pass  # no index: an empty collection
        return write_table(columns_of(config), rows)


def content_config(config: EngineConfig, columns: tuple[str, ...]) -> EngineConfig:
    """``config`` with one field per metadata column: the template's type where it declares
    the column, else text (stored as written, searchable by words)."""
    metadata = [c for c in columns if c not in (config.id_field, config.image_field)]
    reserved = sorted(set(metadata) & RESERVED_FIELDS)
    if reserved:
        raise InvalidRequest(f"CSV header: column name {reserved[0]!r} is reserved")
    fields = {name: config.fields.get(name, FieldSpec(type=FieldType.TEXT)) for name in metadata}
    try:
        return EngineConfig.model_validate({**config.model_dump(), "fields": fields})
    except ValueError as exc:
        raise InvalidRequest(f"CSV header: {_first_error(exc)}") from None


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc))
    return str(exc)


def _items(table: CsvTable, config: EngineConfig, media: Path | None) -> list[FeedItem]:
    """The rows as records, image paths resolved in (and confined to) the media folder."""
    base = media.resolve() if media is not None else Path("/nonexistent")
    return [confine(item, media) for item in table_items(table, config, SeenIds(), base)]


def confine(item: FeedItem, media: Path | None) -> FeedItem:
    """Local image paths only inside the media folder (clients name files, never read any)."""
    if not isinstance(item, FeedRecord) or item.image.startswith(("http://", "https://")):
        return item
    if media is None:
        return FeedError(item.ref, item.id, "image must be an http(s) URL")
    root = media.resolve()
    if not Path(item.image).resolve().is_relative_to(root):
        return FeedError(item.ref, item.id, "image path is outside the media folder")
    return item


def _failures(report_path: Path) -> list[dict[str, Any]]:
    """The report's failed rows as ``{row, id, stage, reason}``."""
    problems = []
    with report_path.open(encoding="utf-8") as lines:
        for line in lines:
            entry = json.loads(line)
            if entry.get("status") == "failed":
                keys = {"row": "ref", "id": "id", "stage": "stage", "reason": "reason"}
                problems.append({ours: entry.get(theirs) for ours, theirs in keys.items()})
    return problems
