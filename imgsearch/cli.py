"""``imgsearch`` command line: one entry point, one subcommand per job.

Each subcommand lives with the code it drives (``indexer.cli``, ``gateway.cli``) and
registers itself through ``add_parser(subparsers)``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gateway import cli as gateway_cli
from gateway import duplicates
from indexer import cli as indexer_cli
from indexer import versions_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgsearch",
        description="Visual search over OpenSearch: index a catalog, serve the search APIs.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    indexer_cli.add_parser(subparsers)
    versions_cli.add_parser(subparsers)
    duplicates.add_parser(subparsers)
    gateway_cli.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # opensearch-py logs every request at INFO; keep that for --verbose.
    logging.getLogger("opensearch").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
