"""The gateway's ``imgsearch`` subcommands: ``serve`` and ``duplicates``.

Registered through the ``imgsearch.commands`` entry points in ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import anyio
from pydantic import ValidationError

from imgsearch.cli_options import add_engine_options, opensearch_url
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
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "duplicates",
        help="list indexed items that are near-copies of a photo (perceptual hash)",
        description=(
            "Compute the photo's 64-bit perceptual hash and list the engine's items within "
            "--max-distance differing bits (0 = same picture; resized or recompressed copies "
            "are usually within 6)."
        ),
    )
    parser.add_argument("photo", help="image path or http(s) URL")
    add_engine_options(parser)
    parser.add_argument("--max-distance", type=int, default=6, metavar="BITS")
    parser.add_argument("--size", type=int, default=20, help="at most this many items")
    parser.set_defaults(handler=run_duplicates)


def run_duplicates(args: argparse.Namespace) -> int:
    """Near-copies through the same neutral service the HTTP dialects use."""
    from gateway.search.model import ImageQuery
    from gateway.service import CatalogService
    from gateway.settings import GatewaySettings
    from imgsearch.engine_config import load_engine_config
    from imgsearch.image_fetch import fetch_image_bytes

    try:
        config = load_engine_config(args.engine)
        service = CatalogService.create(
            GatewaySettings(opensearch_url=opensearch_url(args)), {config.hashid: config}
        )
        try:
            # The operator's own photo: a local path is fine here, unlike for HTTP clients.
            data = fetch_image_bytes(args.photo, service.limits)
            search = functools.partial(
                service.near_duplicates,
                service.engine(config.hashid),
                ImageQuery(data),
                max_distance=args.max_distance,
                size=args.size,
            )
            found = anyio.run(search)
        finally:
            service.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}")
        return 2
    for item in found:
        print(f"{item.distance:3d}  {item.id}")
    return 0 if found else 1
