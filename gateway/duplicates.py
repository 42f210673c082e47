"""``imgsearch duplicates``: find catalog items that are near-copies of a photo.

Catalogs collect the same product photo under several ids (re-listings, marketplace
sellers). The ``phash`` vector field answers exactly: Hamming distance over 64 bits, computed
by OpenSearch for every document that has the field.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch

from gateway.search.dsl import hamming_distance_from_score, near_duplicates_body
from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.embedders.phash import PhashEmbedder, bits_to_long
from imgsearch.engine_config import EngineConfig, load_engine_config
from imgsearch.errors import ConfigError, ImgSearchError
from imgsearch.image_fetch import fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.search_client import backend_errors, make_client


@dataclass(frozen=True)
class Duplicate:
    id: str
    distance: int


def phash_field(config: EngineConfig) -> str:
    fields = [name for name, spec in config.vectors.items() if spec.embedder == "phash"]
    if not fields:
        raise ConfigError(f"engine {config.hashid!r} has no phash vector field")
    return fields[0]


def find_duplicates(
    client: OpenSearch, config: EngineConfig, image_bytes: bytes, *, max_distance: int, size: int
) -> list[Duplicate]:
    bits = PhashEmbedder().embed_images([decode_image(image_bytes)])[0]
    body = near_duplicates_body(
        phash_field(config), bits_to_long(bits), size=size, max_distance=max_distance
    )
    with backend_errors():
        response: dict[str, Any] = client.search(index=config.alias, body=body)
    return [
        Duplicate(
            str(hit["_source"].get("id", hit["_id"])), hamming_distance_from_score(hit["_score"])
        )
        for hit in response["hits"]["hits"]
    ]


def add_parser(subparsers: Any) -> None:
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        client = make_client(opensearch_url(args))
        config = load_engine_config(args.engine)
        data = fetch_image_bytes(args.photo, ImageLimits())
        found = find_duplicates(
            client, config, data, max_distance=args.max_distance, size=args.size
        )
    except ImgSearchError as exc:
        print(f"error: {exc.message}")
        return 2
    for item in found:
        print(f"{item.distance:3d}  {item.id}")
    return 0 if found else 1
