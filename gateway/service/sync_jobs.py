"""Sync jobs: bring an engine's index in line with its folder or bucket, in the background.

One sync per engine runs at a time, in a worker thread, through the indexer's own
``sync_source`` (content hashes skip unchanged files; vanished files are deleted). Each
engine's sync state is a document in the ``imgsearch-jobs`` index, so every gateway sees it
and it survives a restart: a sync that was running when its gateway stopped is started
again on the next start-up (re-running a sync is safe: unchanged files cost a hash).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from anyio import to_thread
from opensearchpy import OpenSearch

from gateway.engines import EngineRegistry, EngineRuntime
from imgsearch.errors import Conflict, ImgSearchError, NotFound
from imgsearch.finetune.store import with_live_adapters
from imgsearch.search_client import backend_errors
from indexer.pipeline import PipelineSettings
from indexer.runner import IndexOptions, sync_source

logger = logging.getLogger(__name__)

JOBS_INDEX = "imgsearch-jobs"
JOBS_MAPPING = {
    "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
    "mappings": {"dynamic": False, "properties": {"status": {"type": "keyword"}}},
}
SCHEDULER_TICK_S = 30.0
PROGRESS_EVERY_S = 2.0


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SyncJobs:
    def __init__(self, client: OpenSearch, registry: EngineRegistry) -> None:
        self.client = client
        self.registry = registry
        self._running: dict[str, threading.Thread] = {}
        self._index_ready = False
        self._lock = threading.Lock()

    # -- state ----------------------------------------------------------------------------

    def _doc_id(self, engine: EngineRuntime) -> str:
        return f"sync:{engine.hashid}"

    def read_state(self, engine: EngineRuntime) -> dict[str, Any]:
        """The engine's sync state: status never|in_progress|completed|failed, timestamps,
        progress counts and the last error."""
        try:
            with backend_errors():
                doc = self.client.get(index=JOBS_INDEX, id=self._doc_id(engine))
        except NotFound:  # no such document, or no jobs index yet
            return {"status": "never"}
        state: dict[str, Any] = doc.get("_source") or {"status": "never"}
        return state

    def _write_state(self, engine: EngineRuntime, **changes: Any) -> None:
        state = {**self.read_state(engine), **changes}
        with backend_errors():
            if not self._index_ready:
                # The cluster may not create indexes on first write; the jobs index is ours.
                if not self.client.indices.exists(index=JOBS_INDEX):
                    self.client.indices.create(index=JOBS_INDEX, body=JOBS_MAPPING, ignore=[400])
                self._index_ready = True
            self.client.index(
                index=JOBS_INDEX, id=self._doc_id(engine), body=state, params={"refresh": "true"}
            )

    # -- runs -----------------------------------------------------------------------------

    def running(self, engine: EngineRuntime) -> bool:
        with self._lock:
            thread = self._running.get(engine.hashid)
            return thread is not None and thread.is_alive()

    def start(self, engine: EngineRuntime, *, auto: bool = False) -> None:
        """Start a sync in the background; ``Conflict`` if one is running here."""
        if engine.config.source is None:
            raise Conflict(f"collection {engine.hashid!r} has no folder or bucket to sync")
        with self._lock:
            thread = self._running.get(engine.hashid)
            if thread is not None and thread.is_alive():
                raise Conflict("a sync of this collection is already in progress")
            kind = "auto" if auto else "manual"
            self._write_state(engine, status="in_progress", kind=kind, started=_now(),
                              progress={"written": 0}, error=None)  # fmt: skip
            thread = threading.Thread(
                target=self._run, args=(engine, auto), name=f"sync-{engine.hashid}", daemon=True
            )
            self._running[engine.hashid] = thread
            thread.start()

    def _run(self, engine: EngineRuntime, auto: bool) -> None:
        last = [0.0]

        def progress(written: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                # progress is best effort; the final state is not
                with contextlib.suppress(ImgSearchError):
                    self._write_state(engine, progress={"written": written})

        options = IndexOptions(pipeline=replace(PipelineSettings(), on_written=progress))
        try:
            # the frozen embedders plus the adapters a fine-tuning left on the live index
            base = {name: engine.base_embedder(name) for name in engine.config.vectors}
            embedders = with_live_adapters(self.client, engine.config.alias, base)
            summary = sync_source(engine.config, self.client, options, embedders=embedders)
        except Exception as exc:  # the state must say why, whatever it was
            logger.exception("sync of %s failed", engine.hashid)
            message = exc.message if isinstance(exc, ImgSearchError) else f"{type(exc).__name__}"
            self._write_state(engine, status="failed", finished=_now(), error=message)
            return
        stamp = {"last_auto_sync" if auto else "last_sync": _now()}
        counts = {
            k: getattr(summary, k) for k in ("total", "indexed", "unchanged", "failed", "deleted")
        }
        # A run that saw every file is completed, even if some files could not be indexed:
        # their count and reasons are in the state and the log; the rest is searchable.
        problem = f"{summary.failed} file(s) could not be indexed" if summary.failed else None
        status = "completed" if summary.complete else "failed"
        self._write_state(engine, status=status, finished=_now(), progress=counts,
                          error=problem, **stamp)  # fmt: skip

    # -- lifecycle ------------------------------------------------------------------------

    async def resume_interrupted(self) -> None:
        """Start again the syncs that were running when a gateway stopped."""
        for engine in self.registry:
            if engine.config.source is None:
                continue
            state = await to_thread.run_sync(self.read_state, engine)
            if state.get("status") == "in_progress" and not self.running(engine):
                logger.info("resuming the interrupted sync of %s", engine.hashid)
                await to_thread.run_sync(self.start, engine)

    async def schedule(self, clock: Callable[[], float] = time.time) -> None:
        """Forever: start the syncs whose ``source.interval_s`` has passed."""
        while True:
            for engine in self.registry:
                source = engine.config.source
                if source is None or source.interval_s is None or self.running(engine):
                    continue
                try:
                    state = await to_thread.run_sync(self.read_state, engine)
                    last = max(state.get("last_sync") or "", state.get("last_auto_sync") or "")
                    due = not last or clock() - datetime.fromisoformat(last).timestamp() >= (
                        source.interval_s
                    )
                    if due and state.get("status") != "in_progress":
                        await to_thread.run_sync(partial(self.start, engine, auto=True))
                except ImgSearchError as exc:
                    logger.warning("scheduled sync of %s: %s", engine.hashid, exc.message)
            await anyio.sleep(SCHEDULER_TICK_S)
