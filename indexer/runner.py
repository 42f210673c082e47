"""``index_feed``: one complete indexing run, as a library call (the CLI is a thin shell).

Order of a run: pick the target index (``lifecycle``), stream the feed through the
``Pipeline``, refresh, prune ids that left the feed (only after a complete scan), and for
``--rebuild`` move the alias. The report always gets its summary line, even when the run
is interrupted (then ``complete`` is false and nothing is pruned or swapped).
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from imgsearch.embedders.base import Embedder
from imgsearch.engine_config import EngineConfig
from indexer import bulk, lifecycle
from indexer.feeds import FeedItem, FeedRecord, SeenIds, count_feed, read_feed, read_source
from indexer.pipeline import Pipeline, PipelineSettings
from indexer.report import IndexSummary, Report

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexOptions:
    """Everything ``imgsearch index`` can change; defaults suit a laptop CPU."""

    rebuild: bool = False
    prune: bool = False
    report_path: Path | None = None
    limit: int | None = None
    device: str | None = None
    # On --rebuild, move the alias even when some records failed (they are in the report).
    swap_with_failures: bool = False
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    progress_stream: IO[str] | None = None


def index_feed(
    feed_path: Path,
    config: EngineConfig,
    client: OpenSearch,
    options: IndexOptions | None = None,
    *,
    embedders: dict[str, Embedder] | None = None,
) -> IndexSummary:
    """Index ``feed_path`` into ``config.alias``; see the module docstring for the order.

    ``embedders`` may be passed to reuse loaded models; otherwise they are built from the
    config. Raises ``EmbedderMismatch`` (use ``rebuild``), ``ConfigError``, backend errors,
    or whatever interrupted the run.
    """
    options = options or IndexOptions()
    seen = SeenIds()
    stream = options.progress_stream or sys.stderr
    expected = count_feed(feed_path) if stream.isatty() else None
    items = read_feed(feed_path, config, seen)
    return index_items(items, seen, config, client, options, embedders=embedders, expected=expected)


def sync_source(
    config: EngineConfig,
    client: OpenSearch,
    options: IndexOptions | None = None,
    *,
    embedders: dict[str, Embedder] | None = None,
) -> IndexSummary:
    """Bring ``config.alias`` in line with the engine's folder or bucket: index new and
    changed files, skip unchanged ones, and delete documents whose file is gone."""
    options = replace(options or IndexOptions(), prune=True, limit=None)
    seen = SeenIds()
    return index_items(
        read_source(config, seen), seen, config, client, options, embedders=embedders
    )


def index_items(
    items: Iterator[FeedItem],
    seen: SeenIds,
    config: EngineConfig,
    client: OpenSearch,
    options: IndexOptions,
    *,
    embedders: dict[str, Embedder] | None = None,
    expected: int | None = None,
) -> IndexSummary:
    """One run over ``items`` (whose ids ``seen`` collects, for pruning)."""
    if embedders is None:
        from imgsearch.embedders.registry import build_embedders
        from imgsearch.finetune.store import with_live_adapters

        # a fine-tuned engine stays fine-tuned: its adapters come from the live index
        embedders = with_live_adapters(
            client, config.alias, build_embedders(config, device=options.device)
        )
    infos = {name: embedder.info for name, embedder in embedders.items()}
    if options.limit is not None:
        items = itertools.islice(items, options.limit)
    target = lifecycle.prepare_target(client, config, infos, rebuild=options.rebuild)
    logger.info("indexing into %s (alias %s)", target.index, target.alias)
    stream = options.progress_stream or sys.stderr
    if expected is not None and options.limit is not None:
        expected = min(expected, options.limit)
    report = Report(
        IndexSummary(index=target.index, alias=target.alias),
        options.report_path,
        expected=expected,
        stream=stream,
    )
    started = time.monotonic()
    try:
        settings = options.pipeline
        if target.fresh:  # nothing to compare against: skip the hash look-ups
            settings = replace(settings, skip_unchanged=False)
        Pipeline(client, target.index, embedders, report, settings).run(items)
        report.summary.complete = True
        bulk.refresh(client, target.index)
        full_scan = options.limit is None
        if full_scan and (options.prune or (options.rebuild and not target.fresh)):
            _prune(client, target.index, seen, report, settings)
        elif options.prune:
            report.summary.notes.append("prune skipped: --limit means the feed was not fully read")
        if target.swap_alias:
            _swap(client, config, target, report.summary, options.swap_with_failures)
    finally:
        summary = report.close(time.monotonic() - started)
    return summary


def _prune(
    client: OpenSearch, index: str, seen: SeenIds, report: Report, settings: PipelineSettings
) -> None:
    """Delete documents whose id the feed no longer has."""
    gone = [doc_id for doc_id in bulk.scan_ids(client, index) if doc_id not in seen]
    for doc_id, error in bulk.delete_ids(client, index, gone, settings.bulk):
        if error is None:
            report.record(doc_id, doc_id, "deleted", stage="prune")
        else:
            report.summary.notes.append(f"prune of {doc_id} failed: {error}")
    if gone:
        bulk.refresh(client, index)


def _swap(
    client: OpenSearch,
    config: EngineConfig,
    target: lifecycle.Target,
    summary: IndexSummary,
    with_failures: bool,
) -> None:
    if summary.failed and not with_failures:
        summary.notes.append(
            f"alias {target.alias} NOT moved to {target.index}: {summary.failed} record(s) "
            "failed; fix them and run --rebuild again (it resumes into the same index), "
            "or pass --swap-with-failures"
        )
        logger.warning(summary.notes[-1])
        return
    deleted = lifecycle.swap_alias(client, target.alias, target.index, config.retain_versions)
    summary.alias_moved = True
    if deleted:
        summary.notes.append(f"deleted old versions: {', '.join(deleted)}")


def write_records(
    records: Sequence[FeedRecord],
    client: OpenSearch,
    index: str,
    embedders: dict[str, Embedder],
    settings: PipelineSettings,
) -> list[dict[str, object]]:
    """Write already-parsed records (API writes) through the same pipeline as a feed.

    Returns one report line per record (``indexed`` or ``failed`` with stage and reason);
    the index is refreshed before returning, so what was written is searchable.
    """
    report = Report(IndexSummary(index=index, alias=index), None, interval_s=3600, keep_lines=True)
    try:
        Pipeline(client, index, embedders, report, settings).run(records)
    finally:
        bulk.refresh(client, index)
    assert report.lines is not None
    return report.lines
