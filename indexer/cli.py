"""``imgsearch index``: the command-line shell around ``indexer.runner.index_feed``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.engine_config import load_engine_config
from imgsearch.errors import BackendTimeout, BackendUnavailable, ImgSearchError
from indexer.bulk import BulkSettings
from indexer.pipeline import PipelineSettings
from indexer.runner import IndexOptions, index_feed

logger = logging.getLogger(__name__)

RESUME_HINT = (
    "the run stopped; what was written is kept, so run the same command again once the "
    "cluster is back and it goes on where it stopped"
)

DESCRIPTION = """\
Index a catalog into OpenSearch: read every record of FEED, fetch and decode its image,
compute the vectors the engine config asks for (CLIP, colour, perceptual hash) and write
one document per record into the index behind the engine's alias.

FEED is one of:
  a folder of images    id = path relative to the folder, the image's folder name goes
                        into the engine's `category_from_folder` field
  a .jsonl file         one JSON object per line with the id field, the image field (an
                        http(s) URL or a path relative to the feed file) and other fields
  a .csv file           a header row naming the same columns

Runs are incremental: records whose image and fields did not change are skipped.
Every record ends as indexed, unchanged or failed (with a reason) in the --report file.
Exit code: 0 when every record is indexed or unchanged, 1 when some failed, 2 on errors
that stop the run (bad config, OpenSearch unreachable, index written by other embedders).
"""

EPILOG = """\
examples:
  # index a folder of images (folder name = category), report to a file
  imgsearch index datasets/clothing/train --engine engines/clothing.yaml \\
      --opensearch-url http://localhost:9200 --report index-report.jsonl

  # a JSONL catalog; delete documents whose ids are no longer in the feed
  imgsearch index catalog.jsonl --engine engines/shop.yaml --prune

  # changed the model? write a new index version, then swap the alias with no downtime
  imgsearch index catalog.jsonl --engine engines/shop.yaml --rebuild --device cuda

  # try it on the first 100 records
  imgsearch index catalog.csv --engine engines/shop.yaml --limit 100
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "index",
        help="index a catalog feed (folder, JSONL or CSV) into OpenSearch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("feed", type=Path, metavar="FEED", help="folder, .jsonl or .csv")
    add_engine_options(parser)
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="write a new index version <alias>_v<N+1>, then move the alias to it",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="delete documents whose ids are not in the feed (after a complete read)",
    )
    parser.add_argument(
        "--swap-with-failures",
        action="store_true",
        help="with --rebuild: move the alias even if some records failed",
    )
    parser.add_argument(
        "--report", type=Path, metavar="PATH", help="write the JSONL report (one line per record)"
    )
    parser.add_argument(
        "--batch-size", type=_positive, default=32, metavar="N", help="images per embedding batch"
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=min(8, (os.cpu_count() or 2) * 2),
        metavar="N",
        help="threads fetching and decoding images",
    )
    parser.add_argument(
        "--bulk-size", type=_positive, default=200, metavar="N", help="documents per bulk request"
    )
    parser.add_argument(
        "--device", choices=["cpu", "cuda"], help="where CLIP runs (default: the config's)"
    )
    parser.add_argument(
        "--limit", type=_positive, metavar="N", help="only the first N records (no pruning)"
    )
    parser.set_defaults(handler=run)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace) -> int:
    from imgsearch.search_client import make_client

    if not getattr(args, "verbose", False):  # per-request lines and retry tracebacks are noise
        logging.getLogger("opensearch").setLevel(logging.ERROR)
    try:
        url = opensearch_url(args)
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    options = IndexOptions(
        rebuild=args.rebuild,
        prune=args.prune,
        report_path=args.report,
        limit=args.limit,
        device=args.device,
        swap_with_failures=args.swap_with_failures,
        pipeline=PipelineSettings(
            batch_size=args.batch_size,
            workers=args.workers,
            bulk=BulkSettings(chunk_size=args.bulk_size),
        ),
    )
    client = make_client(url, timeout_s=60)
    try:
        config = load_engine_config(args.engine)
        summary = index_feed(args.feed, config, client, options)
    except (BackendUnavailable, BackendTimeout) as exc:
        print(f"error: {exc.message}: {RESUME_HINT}", file=sys.stderr)
        return 2
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    finally:
        client.close()
    print(
        f"{summary.index}: {summary.indexed} indexed, {summary.unchanged} unchanged, "
        f"{summary.failed} failed, {summary.deleted} deleted in {summary.elapsed_s:.1f}s",
        file=sys.stderr,
    )
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0 if summary.ok else 1
