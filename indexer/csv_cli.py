"""``imgsearch csv export|import``: a file-defined engine's content as the collection CSV.

The same format and the same semantics as the collection API (docs/collections.md):
``export`` writes every document as a row; ``import`` replaces the content, rebuilding into
a new index version through the indexer and swapping the alias when done. Rows that fail
are listed (and in ``--report``); the rest is indexed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.engine_config import load_engine_config
from imgsearch.errors import ImgSearchError, NotFound
from imgsearch.search_client import make_client
from indexer.bulk import scan_sources
from indexer.catalog_csv import (
    IMAGE_URL_FIELD,
    columns_of,
    read_table,
    row_of,
    table_items,
    write_table,
)
from indexer.feeds import SeenIds
from indexer.runner import IndexOptions, index_items


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "csv", help="export an engine's content as CSV, or replace it from one",
        description=__doc__,
    )  # fmt: skip
    actions = parser.add_subparsers(dest="csv_action", required=True, metavar="ACTION")
    export = actions.add_parser("export", help="write every document as a CSV row")
    add_engine_options(export)
    export.add_argument("file", type=Path, help="CSV to write ('-' for stdout)")
    export.set_defaults(handler=run_export)
    load = actions.add_parser("import", help="replace the content (rebuild, then alias swap)")
    add_engine_options(load)
    load.add_argument("file", type=Path, help="CSV to read")
    load.add_argument("--report", type=Path, help="JSONL report, one line per row")
    load.add_argument("--device", help="torch device for the embedders (default: auto)")
    load.set_defaults(handler=run_import)


def run_export(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.engine)
        client = make_client(opensearch_url(args))
        fields = [*config.fields, IMAGE_URL_FIELD]
        try:
            rows = [row_of(i, source, config) for i, source in scan_sources(
                client, config.alias, fields)]  # fmt: skip
        except NotFound:
            rows = []
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    rows.sort(key=lambda row: str(row[config.id_field]))
    text = write_table(columns_of(config), rows)
    if str(args.file) == "-":
        sys.stdout.write(text)
    else:
        args.file.write_text(text, encoding="utf-8", newline="")
    print(f"{len(rows)} rows from {config.alias}", file=sys.stderr)
    return 0


def run_import(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.engine)
        text = args.file.read_text(encoding="utf-8")
        table = read_table(text, image_column=config.image_field, id_column=config.id_field)
        ignored = [c for c in table.columns if c not in columns_of(config)]
        if ignored:
            print(f"note: columns not in the engine config are ignored: {ignored}", file=sys.stderr)
        seen = SeenIds()
        items = list(table_items(table, config, seen, args.file.resolve().parent))
        options = IndexOptions(
            rebuild=True, swap_with_failures=True, report_path=args.report, device=args.device
        )  # fmt: skip
        summary = index_items(iter(items), seen, config, make_client(opensearch_url(args)), options)
    except (ImgSearchError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    print(
        f"{summary.indexed} indexed, {summary.failed} failed of {len(items)} rows; "
        f"alias {'moved to' if summary.alias_moved else 'NOT moved to'} {summary.index}",
        file=sys.stderr,
    )
    return 0 if summary.alias_moved else 1
