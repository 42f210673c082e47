"""The indexing pipeline: keep the model busy, keep memory bounded, account for every record.

    feed ─► [producer] ─► fetch+hash (pool) ─► [checker: mget hashes] ─┬─► unchanged
                                                                       └─► decode+preprocess (pool)
         ─► [main thread: embed in batches, build documents] ─► [writer: streaming_bulk]

Threads talk through bounded queues, so a slow stage blocks the one before it (backpressure)
and at most ``window`` images are in flight. Image bytes are hashed before decoding, so an
unchanged record costs one read and one ``mget`` slot, never a decode or an embedding.
Writes use the record id as ``_id``: rerunning after an interruption cannot duplicate.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

import httpx
import numpy as np
import numpy.typing as npt
from PIL import Image

from imgsearch.embedders.base import Embedder, EmbedderInfo
from imgsearch.errors import ImgSearchError
from imgsearch.image_fetch import fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.url_guard import refuse_non_public_hosts
from indexer.bulk import BulkSettings, bulk_write, existing_hashes
from indexer.documents import build_document, content_hash, index_action
from indexer.feeds import FeedError, FeedItem, FeedRecord
from indexer.report import Report, Stage

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)

T = TypeVar("T")
_DONE = object()


@runtime_checkable
class PreprocessingEmbedder(Protocol):
    """An embedder (CLIP) whose per-image preprocessing can run in worker threads."""

    def preprocess(self, image: Image.Image) -> Any: ...

    def embed_preprocessed(self, batch: Any) -> npt.NDArray[np.float32]: ...


@dataclass(frozen=True)
class PipelineSettings:
    batch_size: int = 32
    workers: int = 4
    image_limits: ImageLimits = field(default_factory=ImageLimits)
    bulk: BulkSettings = field(default_factory=BulkSettings)
    skip_unchanged: bool = True
    # "create" refuses ids that exist (API inserts); "index" writes over them (feeds).
    op_type: Literal["index", "create"] = "index"
    # Test and tooling hook: called by the writer with the running count of written docs.
    on_written: Callable[[int], None] | None = None
    # Image URLs from untrusted users (collections uploaded over HTTP): refuse private hosts.
    public_urls_only: bool = False

    @property
    def window(self) -> int:
        """Records allowed between two stages (bounds memory)."""
        return max(2 * self.batch_size, 4 * self.workers)


@dataclass
class _Fetched:
    record: FeedRecord
    data: bytes | None = None
    digest: str = ""
    error: str | None = None


@dataclass
class _Decoded:
    record: FeedRecord
    digest: str
    image: Image.Image | None = None
    preprocessed: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    stage: Stage = "decode"
    error: str | None = None


class _AbortedError(Exception):
    """Another stage failed; this one stops quietly."""


class Pipeline:
    """One run over one feed into one index; ``run`` returns True when every item was seen."""

    def __init__(
        self,
        client: OpenSearch,
        index: str,
        embedders: dict[str, Embedder],
        report: Report,
        settings: PipelineSettings,
    ) -> None:
        self.client = client
        self.index = index
        self.embedders = embedders
        self.infos: dict[str, EmbedderInfo] = {n: e.info for n, e in embedders.items()}
        self.report = report
        self.settings = settings
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._pending: dict[str, str] = {}  # doc id -> ref, while its bulk write is in flight
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="indexer-io")
        # One connection pool for every image URL (httpx.Client is thread-safe).
        hooks = {"request": [refuse_non_public_hosts]} if settings.public_urls_only else {}
        self._http = httpx.Client(
            limits=httpx.Limits(max_connections=settings.workers * 2), event_hooks=hooks
        )

    # -- plumbing ---------------------------------------------------------------------------

    def _put(self, q: queue.Queue[Any], item: object) -> None:
        while True:
            if self._stop.is_set():
                raise _AbortedError
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _get(self, q: queue.Queue[Any]) -> Any:
        while True:
            if self._stop.is_set():
                raise _AbortedError
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def _result(self, future: Future[T]) -> T:
        while True:
            if self._stop.is_set():
                raise _AbortedError
            try:
                return future.result(timeout=0.1)
            except TimeoutError:
                continue

    def _thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def guarded() -> None:
            try:
                target()
            except _AbortedError:
                pass
            except BaseException as exc:
                self._errors.append(exc)
                self._stop.set()

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        return thread

    # -- the run ----------------------------------------------------------------------------

    def run(self, items: Iterable[FeedItem]) -> None:
        """Process every item; raises the first stage error (the run is then incomplete)."""
        window = self.settings.window
        fetched: queue.Queue[Any] = queue.Queue(maxsize=window)
        decoded: queue.Queue[Any] = queue.Queue(maxsize=window)
        actions: queue.Queue[Any] = queue.Queue(maxsize=max(window, self.settings.bulk.chunk_size))
        threads = [
            self._thread("indexer-feed", lambda: self._produce(items, fetched)),
            self._thread("indexer-check", lambda: self._check(fetched, decoded)),
            self._thread("indexer-bulk", lambda: self._write(actions)),
        ]
        try:
            self._embed_loop(decoded, actions)
            while threads[-1].is_alive() and not self._stop.is_set():
                threads[-1].join(timeout=0.1)
        except _AbortedError:
            pass
        except BaseException:
            self._stop.set()
            raise
        finally:
            if self._errors:
                self._stop.set()
            self._pool.shutdown(wait=not self._stop.is_set(), cancel_futures=True)
            for thread in threads:
                thread.join(timeout=30)
            self._http.close()
        if self._errors:
            raise self._errors[0]

    def _produce(self, items: Iterable[FeedItem], fetched: queue.Queue[Any]) -> None:
        for item in items:
            if isinstance(item, FeedError):
                self.report.record(item.ref, item.id, "failed", stage="feed", reason=item.reason)
                continue
            self._put(fetched, self._pool.submit(self._fetch, item))
        self._put(fetched, _DONE)

    def _fetch(self, record: FeedRecord) -> _Fetched:
        try:
            data = record.data
            if data is None:
                data = fetch_image_bytes(
                    record.image, self.settings.image_limits, client=self._http
                )
        except ImgSearchError as exc:
            return _Fetched(record, error=exc.message)
        except Exception as exc:
            return _Fetched(record, error=f"{type(exc).__name__}: {exc}")
        digest = content_hash(data, record.image_url, record.fields, self.infos)
        return _Fetched(record, data, digest)

    def _check(self, fetched: queue.Queue[Any], decoded: queue.Queue[Any]) -> None:
        done = False
        while not done:
            group: list[_Fetched] = []
            while len(group) < self.settings.batch_size:
                future = self._get(fetched)
                if future is _DONE:
                    done = True
                    break
                group.append(self._result(future))
            ok = [item for item in group if item.error is None]
            known = (
                existing_hashes(self.client, self.index, [item.record.id for item in ok])
                if self.settings.skip_unchanged
                else {}
            )
            for item in group:
                record = item.record
                if item.error is not None:
                    self.report.record(
                        record.ref, record.id, "failed", stage="fetch", reason=item.error
                    )
                elif known.get(record.id) == item.digest:
                    self.report.record(record.ref, record.id, "unchanged")
                else:
                    self._put(decoded, self._pool.submit(self._decode, item))
        self._put(decoded, _DONE)

    def _decode(self, item: _Fetched) -> _Decoded:
        out = _Decoded(item.record, item.digest)
        data, item.data = item.data or b"", None
        try:
            image = decode_image(data, self.settings.image_limits)
        except ImgSearchError as exc:
            out.error = exc.message
            return out
        except Exception as exc:
            out.error = f"{type(exc).__name__}: {exc}"
            return out
        try:
            for name, embedder in self.embedders.items():
                if isinstance(embedder, PreprocessingEmbedder):
                    out.preprocessed[name] = embedder.preprocess(image)
                out.extra.update(embedder.extra_fields(image))
        except Exception as exc:
            out.stage, out.error = "embed", f"{type(exc).__name__}: {exc}"
            return out
        out.image = image
        return out

    def _embed_loop(self, decoded: queue.Queue[Any], actions: queue.Queue[Any]) -> None:
        done = False
        while not done:
            batch: list[_Decoded] = []
            while len(batch) < self.settings.batch_size:
                future = self._get(decoded)
                if future is _DONE:
                    done = True
                    break
                item: _Decoded = self._result(future)
                if item.error is not None:
                    record = item.record
                    self.report.record(
                        record.ref, record.id, "failed", stage=item.stage, reason=item.error
                    )
                else:
                    batch.append(item)
            if batch:
                for action in self._documents(batch):
                    self._put(actions, action)
        self._put(actions, _DONE)

    def _documents(self, batch: list[_Decoded]) -> Iterator[dict[str, Any]]:
        """Embed a batch; if the batch fails, embed one by one to isolate the culprit."""
        try:
            vectors = self._embed(batch)
        except Exception as exc:
            if len(batch) == 1:
                record = batch[0].record
                reason = f"{type(exc).__name__}: {exc}"
                self.report.record(record.ref, record.id, "failed", stage="embed", reason=reason)
                return
            logger.warning("batch embedding failed (%s); retrying one by one", exc)
            for item in batch:
                yield from self._documents([item])
            return
        indexed_at = datetime.now(UTC).isoformat(timespec="seconds")
        for row, item in enumerate(batch):
            values = {name: vectors[name][row] for name in vectors}
            source = build_document(item.record, values, item.extra, item.digest, indexed_at)
            self._pending[item.record.id] = item.record.ref
            yield index_action(self.index, item.record.id, source, self.settings.op_type)

    def _embed(self, batch: Sequence[_Decoded]) -> dict[str, list[object]]:
        out: dict[str, list[object]] = {}
        for name, embedder in self.embedders.items():
            if isinstance(embedder, PreprocessingEmbedder):
                import torch  # the pipeline only needs torch when CLIP is configured

                matrix = embedder.embed_preprocessed(
                    torch.stack([item.preprocessed[name] for item in batch])
                )
            else:
                matrix = embedder.embed_images([item.image for item in batch if item.image])
            if matrix.shape[0] != len(batch):
                raise ValueError(f"{name}: {matrix.shape[0]} vectors for {len(batch)} images")
            out[name] = [embedder.field_value(row) for row in matrix]
        return out

    def _write(self, actions: queue.Queue[Any]) -> None:
        def stream() -> Iterator[dict[str, Any]]:
            while True:
                action = self._get(actions)
                if action is _DONE:
                    return
                yield action

        results = bulk_write(self.client, stream(), self.settings.bulk)
        for written, (doc_id, error) in enumerate(results, start=1):
            ref = self._pending.pop(doc_id, doc_id)
            if error is None:
                self.report.record(ref, doc_id, "indexed")
            else:
                self.report.record(ref, doc_id, "failed", stage="bulk", reason=error)
            if self.settings.on_written is not None:
                self.settings.on_written(written)
