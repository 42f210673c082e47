"""``imgsearch cluster``: the cluster's health, nodes and each engine's shards, for operators."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from imgsearch.cli_options import opensearch_url
from imgsearch.cluster_report import gather, render
from imgsearch.engine_config import EngineConfig, load_engine_config, load_engine_configs
from imgsearch.errors import ImgSearchError
from imgsearch.search_client import make_client

EXIT_BY_STATUS = {"green": 0, "yellow": 1}


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "cluster",
        help="cluster health, nodes (heap, disk) and each engine's shards",
        description=(
            "Show the cluster's health, every node's heap and disk, and for each engine the "
            "index behind its alias with its shard copies (node, state, docs). Exit code: 0 "
            "green, 1 yellow, 2 red or unreachable, so it works as a monitoring check."
        ),
    )
    parser.add_argument(
        "--engines", type=Path, metavar="DIR", help="folder of engine configs (default: engines/)"
    )
    parser.add_argument(
        "--engine", type=Path, action="append", default=[], metavar="CONFIG", help="one engine"
    )
    parser.add_argument(
        "--opensearch-url",
        default=None,
        metavar="URL",
        help="one or more node URLs, comma-separated (default: $OPENSEARCH_URL)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run)


def _engines(args: argparse.Namespace) -> dict[str, EngineConfig]:
    engines = {c.hashid: c for c in map(load_engine_config, args.engine)}
    folder = args.engines or (Path("engines") if not args.engine else None)
    if folder is not None and folder.is_dir():
        engines.update(load_engine_configs(folder))
    return engines


def run(args: argparse.Namespace) -> int:
    try:
        engines = _engines(args)
        client = make_client(opensearch_url(args), timeout_s=30)
        try:
            report = gather(client, engines)
        finally:
            client.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else render(report))
    return EXIT_BY_STATUS.get(report["cluster"]["status"], 2)
