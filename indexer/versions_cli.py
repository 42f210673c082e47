"""``imgsearch versions`` and ``imgsearch rollback``: see and move an engine's live index."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.engine_config import load_engine_config
from imgsearch.errors import ImgSearchError
from imgsearch.search_client import make_client
from indexer.versions import list_versions, set_live


def add_parser(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_engine_options(common)
    listing = subparsers.add_parser(
        "versions", parents=[common], help="list an engine's index versions and the live one"
    )
    listing.set_defaults(handler=run_versions)
    rollback = subparsers.add_parser(
        "rollback",
        parents=[common],
        help="point the alias at an older kept version (or --to N), atomically",
        description="Moves the engine's alias; deletes nothing, so you can roll forward again.",
    )
    rollback.add_argument("--to", type=int, metavar="N", help="version number (default: previous)")
    rollback.set_defaults(handler=run_rollback)


def _alias_and_client(args: argparse.Namespace) -> tuple[str, Any]:
    return load_engine_config(args.engine).alias, make_client(opensearch_url(args))


def run_versions(args: argparse.Namespace) -> int:
    try:
        alias, client = _alias_and_client(args)
        versions = list_versions(client, alias)
    except ImgSearchError as exc:
        print(f"error: {exc.message}")
        return 2
    if not versions:
        print(f"no versions of {alias!r}")
        return 1
    print(f"{'':2}{'index':<32} {'docs':>10} {'size MB':>9}  {'created (UTC)':<17}  embedders")
    for v in versions:
        created = (
            datetime.fromtimestamp(int(v.created) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
            if v.created.isdigit()
            else "?"
        )
        mark = "* " if v.live else "  "
        size = v.size_bytes / 1e6
        print(f"{mark}{v.index:<32} {v.docs:>10} {size:>9.1f}  {created:<17}  {v.embedders}")
    return 0


def run_rollback(args: argparse.Namespace) -> int:
    try:
        alias, client = _alias_and_client(args)
        target = set_live(client, alias, args.to)
    except ImgSearchError as exc:
        print(f"error: {exc.message}")
        return 2
    print(f"{alias} -> {target.index} ({target.docs} docs)")
    return 0
