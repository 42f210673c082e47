"""The run report: one JSON line per record, then one summary line; plus progress output.

Every record ends as ``indexed``, ``unchanged`` or ``failed`` (with ``stage`` and
``reason``); ids removed by ``--prune`` get a ``deleted`` line. The last line is
``{"summary": {...}}``. Progress goes to stderr: a bar with rate and ETA on a terminal,
a plain log line every few seconds otherwise.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Literal

logger = logging.getLogger(__name__)

Status = Literal["indexed", "unchanged", "failed", "deleted"]
Stage = Literal["feed", "fetch", "decode", "embed", "bulk", "prune"]


@dataclass
class IndexSummary:
    """What one run did; ``ok`` is False when any record failed or the run stopped early."""

    index: str
    alias: str
    total: int = 0
    indexed: int = 0
    unchanged: int = 0
    failed: int = 0
    deleted: int = 0
    complete: bool = False
    alias_moved: bool = False
    elapsed_s: float = 0.0
    failed_by_stage: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.complete and self.failed == 0

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["rate_per_s"] = round(self.total / self.elapsed_s, 2) if self.elapsed_s else None
        return data


class Report:
    """Thread-safe sink for record outcomes: counts, the JSONL file and progress."""

    def __init__(
        self,
        summary: IndexSummary,
        path: Path | None,
        *,
        expected: int | None = None,
        stream: IO[str] | None = None,
        interval_s: float = 5.0,
        keep_lines: bool = False,
    ) -> None:
        self.summary = summary
        self._lock = threading.Lock()
        # Callers that answer per record (API writes) read the lines back from here.
        self.lines: list[dict[str, object]] | None = [] if keep_lines else None
        # Line-buffered: a killed run still leaves every finished record in the report.
        self._file = path.open("w", encoding="utf-8", buffering=1) if path is not None else None
        self._stages: Counter[str] = Counter()
        self._progress = Progress(expected, stream or sys.stderr, interval_s)

    def record(
        self,
        ref: str,
        doc_id: str | None,
        status: Status,
        *,
        stage: Stage | None = None,
        reason: str | None = None,
    ) -> None:
        line: dict[str, object] = {"ref": ref, "id": doc_id, "status": status}
        if stage is not None:
            line["stage"] = stage
        if reason is not None:
            line["reason"] = reason
        with self._lock:
            if status == "deleted":
                self.summary.deleted += 1
            else:
                self.summary.total += 1
                if status == "indexed":
                    self.summary.indexed += 1
                elif status == "unchanged":
                    self.summary.unchanged += 1
                else:
                    self.summary.failed += 1
                    self._stages[stage or "unknown"] += 1
                    logger.warning("failed %s (%s, %s): %s", doc_id, ref, stage, reason)
            if self._file is not None:
                self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
            if self.lines is not None:
                self.lines.append(line)
            self._progress.update(self.summary)

    def close(self, elapsed_s: float) -> IndexSummary:
        with self._lock:
            self.summary.elapsed_s = round(elapsed_s, 3)
            self.summary.failed_by_stage = dict(self._stages)
            self._progress.finish(self.summary)
            if self._file is not None:
                self._file.write(json.dumps({"summary": self.summary.as_dict()}) + "\n")
                self._file.close()
                self._file = None
        return self.summary


class Progress:
    """A one-line bar on a TTY, periodic log lines elsewhere."""

    def __init__(self, expected: int | None, stream: IO[str], interval_s: float) -> None:
        self.expected = expected
        self.stream = stream
        self.tty = stream.isatty()
        self.interval_s = 0.2 if self.tty else interval_s
        self.started = time.monotonic()
        self._last = self.started

    def _line(self, summary: IndexSummary) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = summary.total / elapsed
        counts = (
            f"{summary.indexed} indexed, {summary.unchanged} unchanged, {summary.failed} failed"
        )
        if self.expected:
            done = min(summary.total / self.expected, 1.0)
            eta = (self.expected - summary.total) / rate if rate > 0 else float("inf")
            eta_text = f"{eta:,.0f}s" if eta != float("inf") else "?"
            bar = "#" * int(done * 30)
            return (
                f"[{bar:<30}] {summary.total}/{self.expected} {done:6.1%} "
                f"{rate:6.1f}/s ETA {eta_text} ({counts})"
            )
        return f"{summary.total} records {rate:6.1f}/s ({counts})"

    def update(self, summary: IndexSummary) -> None:
        now = time.monotonic()
        if now - self._last < self.interval_s:
            return
        self._last = now
        if self.tty:
            self.stream.write("\r" + self._line(summary))
            self.stream.flush()
        else:
            logger.info("progress: %s", self._line(summary))

    def finish(self, summary: IndexSummary) -> None:
        if self.tty:
            self.stream.write("\r" + self._line(summary) + "\n")
            self.stream.flush()
