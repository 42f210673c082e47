"""Snapshots of an engine's live index to a filesystem repository, and restores from them.

A snapshot holds the one index the engine's alias points at (no global state). A restore
brings it back as the engine's next version, ``<alias>_v<N+1>``, then moves the alias there
atomically (like a rebuild), so searches never see a missing index and the version that was
live stays as a rollback target (``retain_versions``).

Filesystem repositories need ``path.repo`` on every node (a folder all nodes share, e.g. an
NFS mount); ``location`` is resolved under it when relative.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc

from imgsearch.engine_config import EngineConfig
from imgsearch.errors import ConfigError, InvalidRequest, NotFound
from imgsearch.search_client import backend_errors
from indexer.lifecycle import alias_indexes, swap_alias
from indexer.versions import list_versions

logger = logging.getLogger(__name__)

_SNAPSHOT_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    index: str
    state: str
    engine: str
    started: str


def ensure_repository(client: OpenSearch, repository: str, location: str) -> None:
    """Register the filesystem repository (idempotent); a clear error without ``path.repo``."""
    body = {"type": "fs", "settings": {"location": location, "compress": True}}
    with backend_errors():
        try:
            client.snapshot.create_repository(repository=repository, body=body)
        except os_exc.TransportError as exc:
            if isinstance(exc, os_exc.ConnectionError):
                raise  # unreachable: backend_errors makes it a 503-like error
            raise ConfigError(
                f"cannot register snapshot repository {repository!r} at {location!r}: "
                f"{_reason(exc)}; every node needs path.repo set to a folder that contains "
                "this location (one folder all nodes share)"
            ) from exc


def snapshot_engine(
    client: OpenSearch, config: EngineConfig, repository: str, name: str | None = None
) -> SnapshotInfo:
    """Snapshot the index behind the engine's alias; waits until it is complete."""
    live = alias_indexes(client, config.alias)
    if not live:
        raise NotFound(f"engine {config.hashid!r} has no index behind alias {config.alias!r}")
    index = live[0]
    name = name or f"{config.alias}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    if not _SNAPSHOT_NAME.match(name):
        raise InvalidRequest(f"snapshot name {name!r}: lowercase letters, digits, '.-_' only")
    body = {
        "indices": index,
        "include_global_state": False,
        "metadata": {"engine": config.hashid, "alias": config.alias, "index": index},
    }
    with backend_errors():
        answer = client.snapshot.create(
            repository=repository, snapshot=name, body=body, wait_for_completion=True
        )
    snap = answer["snapshot"]
    if snap.get("state") != "SUCCESS":
        raise ConfigError(f"snapshot {name!r} ended {snap.get('state')}: {snap.get('failures')}")
    logger.info("snapshot %s/%s holds %s", repository, name, index)
    return _info(snap)


def list_snapshots(client: OpenSearch, config: EngineConfig, repository: str) -> list[SnapshotInfo]:
    """The repository's snapshots of this engine, oldest first."""
    with backend_errors():
        answer = client.snapshot.get(repository=repository, snapshot="_all")
    found = [_info(s) for s in answer.get("snapshots", [])]
    return [s for s in found if s.engine == config.hashid]


def restore_engine(
    client: OpenSearch, config: EngineConfig, repository: str, snapshot: str
) -> tuple[str, list[str]]:
    """Restore as the next version and move the alias there; returns it and deleted versions."""
    with backend_errors():
        answer = client.snapshot.get(repository=repository, snapshot=snapshot)
    snaps = answer.get("snapshots", [])
    if not snaps:
        raise NotFound(f"no snapshot {snapshot!r} in repository {repository!r}")
    info = _info(snaps[0])
    if info.engine != config.hashid:
        raise InvalidRequest(
            f"snapshot {snapshot!r} holds engine {info.engine!r}, not {config.hashid!r}"
        )
    versions = [v.version for v in list_versions(client, config.alias)]
    target = f"{config.alias}_v{max(versions, default=0) + 1}"
    body = {
        "indices": info.index,
        "include_global_state": False,
        "include_aliases": False,
        "rename_pattern": "^.*$",
        "rename_replacement": target,
    }
    with backend_errors():
        client.snapshot.restore(
            repository=repository, snapshot=snapshot, body=body, wait_for_completion=True
        )
        client.cluster.health(index=target, wait_for_status="yellow", request_timeout=120)
    deleted = swap_alias(client, config.alias, target, config.retain_versions)
    logger.info("restored %s/%s as %s", repository, snapshot, target)
    return target, deleted


def _info(snap: dict[str, Any]) -> SnapshotInfo:
    meta = snap.get("metadata") or {}
    indices = snap.get("indices") or [""]
    return SnapshotInfo(
        name=str(snap.get("snapshot")),
        index=str(meta.get("index") or indices[0]),
        state=str(snap.get("state")),
        engine=str(meta.get("engine", "")),
        started=str(snap.get("start_time", "")),
    )


def _reason(exc: os_exc.TransportError) -> str:
    info = exc.info
    if isinstance(info, dict) and isinstance(info.get("error"), dict):
        error = info["error"]
        cause = error.get("caused_by") or {}
        return str(cause.get("reason") or error.get("reason") or error)
    return str(info)
