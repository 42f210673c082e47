"""Operator view of an engine's versioned indexes, and rolling the alias back or forward.

Rebuilds keep ``retain_versions`` older versions precisely so a bad rebuild can be undone:
``set_live`` moves the alias to any kept version atomically and deletes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opensearchpy import OpenSearch

from imgsearch.errors import NotFound
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors
from indexer.lifecycle import alias_indexes, swap_alias, version_of


@dataclass(frozen=True)
class IndexVersion:
    index: str
    version: int
    live: bool
    docs: int
    size_bytes: int
    created: str
    embedders: str  # e.g. "clip=open_clip/ViT-B-32/laion2b_s34b_b79k(512)"


def list_versions(client: OpenSearch, alias: str) -> list[IndexVersion]:
    """Every ``<alias>_v<N>`` index, oldest first, with doc count, size and embedders."""
    with backend_errors():
        stats = client.cat.indices(
            index=f"{alias}_v*", format="json", bytes="b", h="index,docs.count,store.size",
            expand_wildcards="open,closed",
        )  # fmt: skip
        mappings: dict[str, Any] = client.indices.get(index=f"{alias}_v*")
    live = set(alias_indexes(client, alias))
    versions = []
    for row in stats:
        name = row["index"]
        number = version_of(alias, name)
        if number is None:
            continue
        info = mappings.get(name, {})
        meta = info.get("mappings", {}).get("_meta", {})
        embedders = ", ".join(
            f"{field}={e.version}({e.dim})" for field, e in sorted(vector_meta(meta).items())
        )
        versions.append(
            IndexVersion(
                index=name,
                version=number,
                live=name in live,
                docs=int(row.get("docs.count") or 0),
                size_bytes=int(row.get("store.size") or 0),
                created=str(info.get("settings", {}).get("index", {}).get("creation_date", "")),
                embedders=embedders,
            )
        )
    return sorted(versions, key=lambda v: v.version)


def set_live(client: OpenSearch, alias: str, version: int | None = None) -> IndexVersion:
    """Point the alias at ``version`` (default: the newest version older than the live one)."""
    versions = list_versions(client, alias)
    live = [v.version for v in versions if v.live]
    if version is None:
        older = [v for v in versions if live and v.version < min(live)]
        if not older:
            raise NotFound(f"no version of {alias!r} older than the live one is kept")
        target = older[-1]
    else:
        matches = [v for v in versions if v.version == version]
        if not matches:
            raise NotFound(f"{alias}_v{version} does not exist")
        target = matches[0]
    # Deleting nothing: retain every older version, so rolling forward again stays possible.
    swap_alias(client, alias, target.index, retain_versions=len(versions))
    return target
