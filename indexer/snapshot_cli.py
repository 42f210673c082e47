"""``imgsearch snapshot`` and ``imgsearch restore``: an engine's live index to and from a
filesystem snapshot repository (see ``indexer/snapshots.py``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.engine_config import load_engine_config
from imgsearch.errors import ImgSearchError
from imgsearch.search_client import make_client
from indexer.snapshots import (
    ensure_repository,
    list_snapshots,
    restore_engine,
    snapshot_engine,
)

REPOSITORY_HELP = "snapshot repository name (default: imgsearch)"
LOCATION_HELP = (
    "its folder: absolute, or relative to the nodes' path.repo (default: imgsearch); "
    "registered if missing"
)


def add_parser(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    add_engine_options(common)
    common.add_argument("--repository", default="imgsearch", metavar="NAME", help=REPOSITORY_HELP)
    common.add_argument("--location", default="imgsearch", metavar="PATH", help=LOCATION_HELP)
    snap = subparsers.add_parser(
        "snapshot",
        parents=[common],
        help="snapshot an engine's live index to a filesystem repository",
        description=(
            "Snapshot the index behind the engine's alias (waits until complete). Every node "
            "needs path.repo in opensearch.yml naming a folder all nodes share; "
            "scripts/opensearch.py sets it for the local node."
        ),
    )
    snap.add_argument("--name", metavar="NAME", help="snapshot name (default: <alias>-<UTC time>)")
    snap.add_argument("--list", action="store_true", help="list this engine's snapshots instead")
    snap.set_defaults(handler=run_snapshot)
    restore = subparsers.add_parser(
        "restore",
        parents=[common],
        help="restore an engine's index from a snapshot as its next version",
        description=(
            "Restore the snapshot as <alias>_v<N+1> and move the alias there atomically, "
            "like a rebuild: no downtime, and the version that was live is kept for "
            "`imgsearch rollback` (retain_versions)."
        ),
    )
    restore.add_argument("--snapshot", required=True, metavar="NAME", help="snapshot to restore")
    restore.set_defaults(handler=run_restore)


def run_snapshot(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.engine)
        client = make_client(opensearch_url(args), timeout_s=60)
        try:
            ensure_repository(client, args.repository, args.location)
            if args.list:
                for s in list_snapshots(client, config, args.repository):
                    print(f"{s.name}\t{s.index}\t{s.state}\t{s.started}")
                return 0
            info = snapshot_engine(client, config, args.repository, args.name)
        finally:
            client.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"{args.repository}/{info.name}: {info.index} ({info.state})")
    return 0


def run_restore(args: argparse.Namespace) -> int:
    try:
        config = load_engine_config(args.engine)
        client = make_client(opensearch_url(args), timeout_s=60)
        try:
            ensure_repository(client, args.repository, args.location)
            index, deleted = restore_engine(client, config, args.repository, args.snapshot)
        finally:
            client.close()
    except ImgSearchError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    print(f"{config.alias} -> {index} (restored from {args.repository}/{args.snapshot})")
    if deleted:
        print(f"deleted old versions: {', '.join(deleted)}")
    return 0
