"""``imgsearch duplicates``: near-copies of one photo, or every near-duplicate pair (``--all``).

Both go through the neutral service the HTTP dialects use (``gateway.service.dupe_ops``).
``--all`` writes JSON lines: one ``{"pair": [id, id], "distance": bits}`` per pair (closest
first), one ``{"group": [ids]}`` per connected group (largest first), then a ``summary``;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import anyio

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.errors import ImgSearchError

_PHASES = {"read": "reading signatures", "probes": "looking up probes", "verify": "second stage"}


def add_parser(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "duplicates",
        help="near-copies of a photo, or every near-duplicate pair of the catalog (--all)",
        description=(
            "Find indexed photos that are near-copies (resized, recompressed, cropped up to 5 % "
            "per side, brightened, mirrored or bordered) of PHOTO, or with --all every pair of "
            "near-duplicates in the engine's catalog as JSON lines. Distances are bits between "
            "aligned 64-bit hashes; the radius defaults to the engine's phash max_distance "
            "(pairs_max_distance with --all); see docs/indexer.md."
        ),
    )
    parser.add_argument("photo", nargs="?", help="image path or http(s) URL")
    add_engine_options(parser)
    parser.add_argument("--all", action="store_true", help="every pair in the catalog (JSONL)")
    parser.add_argument("--max-distance", type=int, metavar="BITS", help="radius (bits)")
    parser.add_argument("--size", type=int, default=20, help="at most this many items")
    parser.add_argument("--out", type=Path, help="with --all: write the JSONL here, not stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.all == (args.photo is not None):
        print("error: give a PHOTO, or --all", file=sys.stderr)
        return 2
    from gateway.service import CatalogService
    from gateway.settings import GatewaySettings
    from imgsearch.engine_config import load_engine_config

    try:
        config = load_engine_config(args.engine)
        service = CatalogService.create(
            GatewaySettings(opensearch_url=opensearch_url(args)), {config.hashid: config}
        )
        try:
            engine = service.engine(config.hashid)
            if args.all:
                return _all_pairs(service, engine, args)
            return _one_photo(service, engine, args)
        finally:
            service.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


def _one_photo(service: Any, engine: Any, args: argparse.Namespace) -> int:
    from gateway.search.model import ImageQuery
    from imgsearch.image_fetch import fetch_image_bytes

    # The operator's own photo: a local path is fine here, unlike for HTTP clients.
    data = fetch_image_bytes(args.photo, service.limits)
    search = functools.partial(
        service.near_duplicates,
        engine,
        ImageQuery(data),
        max_distance=args.max_distance,
        size=args.size,
    )
    found = anyio.run(search)
    for item in found:
        print(f"{item.distance:3d}  {item.id}")
    return 0 if found else 1


def _all_pairs(service: Any, engine: Any, args: argparse.Namespace) -> int:
    from gateway.search.dupe_pairs import groups

    started = time.monotonic()
    bar = ProgressBar(sys.stderr)
    search = functools.partial(
        service.near_duplicate_pairs, engine, max_distance=args.max_distance, progress=bar.update
    )
    pairs = anyio.run(search)
    bar.close()
    grouped = groups(pairs)
    with _output(args.out) as out:
        for a, b, bits in pairs:
            out.write(json.dumps({"pair": [a, b], "distance": bits}) + "\n")
        for members in grouped:
            out.write(json.dumps({"group": members}) + "\n")
        summary = {
            "items": bar.items,
            "pairs": len(pairs),
            "groups": len(grouped),
            "in_groups": sum(len(m) for m in grouped),
            "elapsed_s": round(time.monotonic() - started, 1),
        }
        out.write(json.dumps({"summary": summary}) + "\n")
    return 0


@contextmanager
def _output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    with path.open("w", encoding="utf-8") as handle:
        yield handle


class ProgressBar:
    """One line per phase on stderr, redrawn at most five times a second."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.items = 0
        self._phase = ""
        self._last = 0.0

    def update(self, phase: str, done: int, total: int) -> None:
        if phase == "read":
            self.items = done
        now = time.monotonic()
        if phase == self._phase and done < total and now - self._last < 0.2:
            return
        if phase != self._phase and self._phase:
            self.stream.write("\n")
        self._phase, self._last = phase, now
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        label = _PHASES.get(phase, phase)
        self.stream.write(f"\r[{bar:<30}] {done}/{total} {share:6.1%} {label}")
        self.stream.flush()

    def close(self) -> None:
        if self._phase:
            self.stream.write("\n")
            self.stream.flush()
