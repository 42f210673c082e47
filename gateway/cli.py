"""The gateway's ``imgsearch`` subcommands: ``serve`` and ``duplicates`` (``dupes_cli.py``).

Registered through the ``imgsearch.commands`` entry points in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from imgsearch.errors import ImgSearchError


def add_serve_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the search APIs (Doofinder-compatible) and the demo page",
        description=(
            "Serve every engine config found in --engines over HTTP. Settings also come from "
            "IMGSEARCH_* environment variables (see docs/gateway.md)."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--engines", type=Path, help="folder of engine configs (default engines/)")
    parser.add_argument("--opensearch-url", help="cluster URL (default $OPENSEARCH_URL)")
    parser.add_argument("--demo-assets", type=Path, help="folder served at /demo-assets")
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.app import create_app
    from gateway.settings import GatewaySettings

    overrides: dict[str, object] = {}
    if args.engines is not None:
        overrides["engines_dir"] = args.engines
    if args.demo_assets is not None:
        overrides["demo_assets_dir"] = args.demo_assets
    if args.opensearch_url is not None:
        overrides["opensearch_url"] = args.opensearch_url
    try:
        settings = GatewaySettings(**overrides)  # type: ignore[arg-type]
        app = create_app(settings)
    except (ImgSearchError, ValidationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=False)
    return 0


def add_duplicates_parser(subparsers: Any) -> None:
    """``duplicates`` lives in ``gateway.dupes_cli``; the entry point names it here."""
    from gateway.dupes_cli import add_parser

    add_parser(subparsers)
