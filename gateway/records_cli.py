"""``imgsearch insert``: add one photo to an engine through the same neutral service (and so
the same indexer pipeline) as the HTTP APIs' live inserts."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.errors import ImgSearchError, InvalidRequest


def add_insert_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "insert",
        help="insert one photo (a file or URL) as a new record, searchable on return",
        description=(
            "Insert PHOTO under --id with the given fields (each --set field=value is typed as "
            "the engine declares it). An existing id is refused; use `imgsearch index` to "
            "update from a feed."
        ),
    )
    parser.add_argument("photo", help="image path or http(s) URL")
    add_engine_options(parser)
    parser.add_argument("--id", required=True, dest="record_id", help="the record's id")
    parser.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="a field (repeatable)"
    )
    parser.set_defaults(handler=run_insert)


def _fields(pairs: list[str]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidRequest(f"--set {pair!r}: use FIELD=VALUE")
        previous = fields.get(name)
        if previous is None:
            fields[name] = value
        else:  # repeated: a multi-valued field
            fields[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
    return fields


def run_insert(args: argparse.Namespace) -> int:
    import anyio

    from gateway.search.model import ImageQuery
    from gateway.search.records import NewRecord
    from gateway.service import CatalogService
    from gateway.settings import GatewaySettings
    from imgsearch.engine_config import load_engine_config
    from imgsearch.image_fetch import fetch_image_bytes

    try:
        config = load_engine_config(args.engine)
        settings = GatewaySettings(opensearch_url=opensearch_url(args))
        service = CatalogService.create(settings, {config.hashid: config})
        try:
            # The operator's own file: a local path is fine here, unlike for HTTP clients.
            data = fetch_image_bytes(args.photo, service.limits)
            record = NewRecord(args.record_id, ImageQuery(data), _fields(args.set))
            engine = service.engine(config.hashid)
            outcome = anyio.run(service.insert, engine, [record])[0]
        finally:
            service.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(json.dumps({"id": outcome.id, "status": outcome.status, "reason": outcome.reason}))
    return 0 if outcome.ok else 1
