"""``imgsearch keys create|list|revoke``: the collection API's keys, for operators.

A key is printed once, when created; only its hash is stored (in the gateway's system
index), so a lost key is revoked and replaced, never recovered.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from imgsearch.errors import ImgSearchError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys", help="create, list and revoke API keys of the collection API",
        description=__doc__,
    )  # fmt: skip
    parser.add_argument("--opensearch-url", help="cluster URL (default $OPENSEARCH_URL)")
    actions = parser.add_subparsers(dest="keys_action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="make a key and print it (once)")
    create.add_argument(
        "--access", choices=["read", "write"], default="read", help="write implies read"
    )
    create.add_argument(
        "--collections", metavar="IDS", help="comma-separated collection ids (default: all)"
    )
    create.add_argument("--label", default="", help="who or what the key is for")
    actions.add_parser("list", help="every key: id, access, scope, label, created, revoked")
    revoke = actions.add_parser("revoke", help="revoke a key by its id (the part after isk_)")
    revoke.add_argument("key_id")
    parser.set_defaults(handler=run_keys)


def _collections(text: str | None) -> list[int] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts or not all(p.isdigit() for p in parts):
        raise ValueError("--collections takes comma-separated collection ids, e.g. 1,4")
    return [int(p) for p in parts]


def run_keys(args: argparse.Namespace) -> int:
    from gateway.service.key_store import KeyStore
    from gateway.service.system_index import SystemIndex
    from imgsearch.cli_options import opensearch_url
    from imgsearch.search_client import make_client

    try:
        keys = KeyStore(SystemIndex(make_client(opensearch_url(args))))
        if args.keys_action == "create":
            key, token = keys.create(args.access, _collections(args.collections), args.label)
            print(token)
            scope = "all collections" if key.collections is None else key.collections
            print(f"key {key.key_id}: {key.access}, {scope}; shown once", file=sys.stderr)
        elif args.keys_action == "list":
            for key in keys.list():
                scope = "all" if key.collections is None else ",".join(map(str, key.collections))
                state = f"revoked {key.revoked_at}" if key.revoked else "active"
                print(f"{key.key_id}  {key.access:<5}  {scope:<12}  {key.created_at}  {state}  "
                      f"{key.label}")  # fmt: skip
        else:
            key = keys.revoke(args.key_id)
            print(f"key {key.key_id} revoked at {key.revoked_at}", file=sys.stderr)
    except (ImgSearchError, ValueError) as exc:
        print(f"error: {getattr(exc, 'message', exc)}", file=sys.stderr)
        return 2
    return 0
