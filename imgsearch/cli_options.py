"""Command-line options every cluster-facing subcommand shares, resolved in one place."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from imgsearch.errors import ConfigError


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine", type=Path, required=True, metavar="CONFIG", help="engine config (YAML/JSON)"
    )
    parser.add_argument(
        "--opensearch-url",
        default=None,
        metavar="URL",
        help="cluster URL, e.g. http://user:pass@host:9200 (default: $OPENSEARCH_URL)",
    )


def opensearch_url(args: argparse.Namespace) -> str:
    """``--opensearch-url``, else ``$OPENSEARCH_URL``; ConfigError when neither is given."""
    url: str | None = args.opensearch_url or os.environ.get("OPENSEARCH_URL")
    if not url:
        raise ConfigError("pass --opensearch-url or set OPENSEARCH_URL")
    return url
