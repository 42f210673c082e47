"""Long jobs (replacing a collection's content, fine-tuning): state in OpenSearch, one runner.

A job is the document ``<kind>:<key>`` in the jobs index: ``status`` (queued, running, done,
failed, cancelled), ``progress`` (0..1), ``started_at``, ``finished_at``, ``error``, the
``params`` it needs to run again, and the ``owner`` gateway with its ``heartbeat``. The
runner that claims a job (an optimistic-concurrency write, so one gateway wins) runs it in
a thread and beats every ``HEARTBEAT_S``. A queued or running job whose heartbeat is older
than ``STALE_S`` (its gateway stopped) is claimed by any gateway's ``watch`` loop and run
again from its params, so handlers must be safe to re-run. Cancelling sets a flag the
running job sees at its next ``progress`` call.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
from anyio import to_thread
from opensearchpy import OpenSearch
from opensearchpy.exceptions import ConflictError

from gateway.service.sync_jobs import JOBS_INDEX, JOBS_MAPPING
from imgsearch.errors import Conflict, ImgSearchError, NotFound
from imgsearch.search_client import backend_errors

logger = logging.getLogger(__name__)

HEARTBEAT_S = 3.0
STALE_S = 30.0
ACTIVE = ("queued", "running")


def _now() -> datetime:
    return datetime.now(UTC)


class JobCancelled(Exception):
    """Raised inside a job at its next progress report after a cancel request."""


@dataclass
class JobContext:
    """What a handler gets: its key and params, and a progress reporter."""

    key: str
    params: dict[str, Any]
    fraction: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)

    def progress(self, fraction: float) -> None:
        self.fraction = min(max(fraction, 0.0), 1.0)
        if self.cancel.is_set():
            raise JobCancelled


# Runs the job; returns extra fields for the final state (counts, per-row problems, ...).
Handler = Callable[[JobContext], dict[str, Any]]


class JobRunner:
    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self.owner = uuid.uuid4().hex
        self._handlers: dict[str, Handler] = {}
        self._running: dict[str, tuple[threading.Thread, JobContext]] = {}
        self._lock = threading.Lock()
        self._ready = False

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    # -- state ----------------------------------------------------------------------------

    def _ensure(self) -> None:
        if not self._ready:
            with backend_errors():
                if not self.client.indices.exists(index=JOBS_INDEX):
                    self.client.indices.create(index=JOBS_INDEX, body=JOBS_MAPPING, ignore=[400])
            self._ready = True

    def _read(self, doc_id: str) -> tuple[dict[str, Any], dict[str, int]] | None:
        try:
            with backend_errors():
                doc = self.client.get(index=JOBS_INDEX, id=doc_id, params={"_source": "true"})
        except NotFound:
            return None
        version = {"if_seq_no": doc["_seq_no"], "if_primary_term": doc["_primary_term"]}
        return doc["_source"], version

    def state(self, kind: str, key: str) -> dict[str, Any] | None:
        """The job's state without its params, or ``None`` if it never ran."""
        found = self._read(f"{kind}:{key}")
        if found is None:
            return None
        return {k: v for k, v in found[0].items() if k != "params"}

    def _update(self, doc_id: str, **changes: Any) -> None:
        with backend_errors():
            self.client.update(
                index=JOBS_INDEX, id=doc_id, body={"doc": changes}, params={"refresh": "true"}
            )

    def _claim(self, doc_id: str, body: dict[str, Any], version: dict[str, int] | None) -> bool:
        """Write ``body`` only if the document is still as read; ``False`` if it was not."""
        self._ensure()
        params: dict[str, Any] = {"refresh": "true"}
        params.update({k: str(v) for k, v in (version or {}).items()})
        if version is None:
            params["op_type"] = "create"
        try:
            with backend_errors():
                self.client.index(index=JOBS_INDEX, id=doc_id, body=body, params=params)
        except ConflictError:
            return False
        return True

    @staticmethod
    def stale(state: dict[str, Any]) -> bool:
        beat = state.get("heartbeat")
        return not beat or _now() - datetime.fromisoformat(beat) > timedelta(seconds=STALE_S)

    def active(self, kind: str, key: str) -> bool:
        """Is the job queued or running (on a live gateway)?"""
        state = self.state(kind, key)
        return state is not None and state.get("status") in ACTIVE and not self.stale(state)

    # -- runs -----------------------------------------------------------------------------

    def submit(self, kind: str, key: str, params: dict[str, Any]) -> dict[str, Any]:
        """Queue the job and start it here; ``Conflict`` while it is active anywhere."""
        doc_id = f"{kind}:{key}"
        found = self._read(doc_id)
        if found is not None and found[0].get("status") in ACTIVE and not self.stale(found[0]):
            raise Conflict(f"a {kind} job for {key} is already in progress")
        body = {
            "kind": kind, "status": "queued", "progress": 0.0, "params": params,
            "queued_at": _now().isoformat(), "started_at": None, "finished_at": None,
            "error": None, "owner": self.owner, "heartbeat": _now().isoformat(),
        }  # fmt: skip
        if not self._claim(doc_id, body, found[1] if found else None):
            raise Conflict(f"a {kind} job for {key} is already in progress")
        self._start(kind, key, params)
        return {k: v for k, v in body.items() if k != "params"}

    def cancel(self, kind: str, key: str) -> None:
        """Ask the job to stop (here at once, on another gateway at its next heartbeat);
        ``Conflict`` if none is active."""
        if not self.active(kind, key):
            raise Conflict(f"no {kind} job for {key} is in progress")
        self._update(f"{kind}:{key}", cancel_requested=True)
        with self._lock:
            here = self._running.get(f"{kind}:{key}")
        if here is not None:
            here[1].cancel.set()

    def forget(self, kind: str, key: str) -> None:
        """Delete the job's state (its collection is gone)."""
        with contextlib.suppress(NotFound), backend_errors():
            self.client.delete(index=JOBS_INDEX, id=f"{kind}:{key}", params={"refresh": "true"})

    def _start(self, kind: str, key: str, params: dict[str, Any]) -> None:
        context = JobContext(key, params)
        thread = threading.Thread(
            target=self._run, args=(kind, context), name=f"job-{kind}-{key}", daemon=True
        )
        with self._lock:
            self._running[f"{kind}:{key}"] = (thread, context)
        thread.start()

    def _run(self, kind: str, context: JobContext) -> None:
        doc_id = f"{kind}:{context.key}"
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(doc_id, context, done), daemon=True)
        final: dict[str, Any]
        try:
            self._update(doc_id, status="running", started_at=_now().isoformat(),
                         heartbeat=_now().isoformat(), cancel_requested=False)  # fmt: skip
            beat.start()
            extra = self._handlers[kind](context)
            final = {"status": "done", "progress": 1.0, "error": None, **extra}
        except JobCancelled:
            final = {"status": "cancelled", "error": "cancelled on request"}
        except Exception as exc:  # the state must say why, whatever it was
            logger.exception("job %s failed", doc_id)
            message = exc.message if isinstance(exc, ImgSearchError) else type(exc).__name__
            final = {"status": "failed", "error": message}
        finally:
            done.set()
        if beat.is_alive():
            beat.join()
        with contextlib.suppress(ImgSearchError):  # deleted meanwhile: nothing to record
            self._update(doc_id, finished_at=_now().isoformat(), heartbeat=None, **final)
        with self._lock:
            self._running.pop(doc_id, None)

    def _beat(self, doc_id: str, context: JobContext, done: threading.Event) -> None:
        while not done.wait(HEARTBEAT_S):
            with contextlib.suppress(ImgSearchError):  # best effort; a missed beat is harmless
                found = self._read(doc_id)
                if found is not None and found[0].get("cancel_requested"):
                    context.cancel.set()
                if not done.is_set():
                    self._update(doc_id, heartbeat=_now().isoformat(), progress=context.fraction)

    def running_here(self) -> list[str]:
        with self._lock:
            return [doc_id for doc_id, (t, _) in self._running.items() if t.is_alive()]

    # -- recovery -------------------------------------------------------------------------

    def claim_stale(self) -> list[str]:
        """Claim and start every active job of a known kind whose gateway stopped beating."""
        body = {"query": {"terms": {"status": list(ACTIVE)}}, "size": 1000, "_source": False}
        try:
            with backend_errors():
                hits = self.client.search(index=JOBS_INDEX, body=body)["hits"]["hits"]
        except NotFound:
            return []
        claimed = []
        for hit in hits:
            doc_id = str(hit["_id"])
            kind, _, key = doc_id.partition(":")
            if kind not in self._handlers or doc_id in self.running_here():
                continue
            found = self._read(doc_id)
            if found is None or found[0].get("status") not in ACTIVE or not self.stale(found[0]):
                continue
            state, version = found
            body = {**state, "status": "queued", "owner": self.owner,
                    "heartbeat": _now().isoformat()}  # fmt: skip
            if self._claim(doc_id, body, version):
                logger.info("resuming job %s (its gateway stopped)", doc_id)
                self._start(kind, key, state.get("params") or {})
                claimed.append(doc_id)
        return claimed

    async def watch(self, poll_s: float) -> None:
        """Forever: pick up jobs whose gateway stopped (at start-up, then every ``poll_s``)."""
        while True:
            try:
                await to_thread.run_sync(self.claim_stale)
            except ImgSearchError as exc:
                logger.warning("could not look for interrupted jobs: %s", exc.message)
            await anyio.sleep(poll_s)
