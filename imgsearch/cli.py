"""``imgsearch`` command line: one entry point, one subcommand per job.

Each subcommand lives with the code it drives and registers itself through an
``imgsearch.commands`` entry point (``pyproject.toml``) naming its ``add_parser(subparsers)``,
so this core module imports neither the indexer nor the gateway.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib.metadata import entry_points

COMMANDS_GROUP = "imgsearch.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgsearch",
        description="Visual search over OpenSearch: index a catalog, serve the search APIs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = entry_points(group=COMMANDS_GROUP)
    if not commands:
        parser.error("no subcommands are registered: install the project (pip install -e .)")
    for entry in sorted(commands, key=lambda e: e.name):
        entry.load()(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # opensearch-py logs every request at INFO and every failed attempt with its traceback at
    # WARNING; keep those for --verbose (the commands report what failed themselves).
    logging.getLogger("opensearch").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
