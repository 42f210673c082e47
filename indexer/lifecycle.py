"""Versioned indexes ``<alias>_v<N>`` behind the engine's alias.

* First run: create ``<alias>_v1`` and point the alias at it.
* Normal runs write into the alias's index, after checking that its ``_meta`` records the
  same embedders (name, version, dim) as the current config; otherwise ``EmbedderMismatch``
  tells the user to ``--rebuild``.
* ``--rebuild`` writes ``<alias>_v<N+1>`` (resuming an unfinished one whose embedders
  match), then moves the alias in one ``_aliases`` request (remove + add, atomic) and
  deletes versions beyond ``retain_versions``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import ConfigError, EmbedderMismatch
from imgsearch.mapping import build_index_body, vector_meta
from imgsearch.search_client import backend_errors

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where a run writes: ``fresh`` means the index was created by this run."""

    index: str
    alias: str
    fresh: bool
    swap_alias: bool


def version_of(alias: str, index: str) -> int | None:
    match = re.fullmatch(re.escape(alias) + r"_v(\d+)", index)
    return int(match.group(1)) if match else None


def _versions(client: OpenSearch, alias: str) -> dict[int, str]:
    with backend_errors():
        found = client.indices.get(index=f"{alias}_v*", expand_wildcards="open,closed")
    versions = {}
    for name in found:
        number = version_of(alias, name)
        if number is not None:
            versions[number] = name
    return versions


def alias_indexes(client: OpenSearch, alias: str) -> list[str]:
    with backend_errors():
        if not client.indices.exists_alias(name=alias):
            return []
        return sorted(client.indices.get_alias(name=alias))


def embedder_mismatch(
    recorded: dict[str, EmbedderInfo], current: dict[str, EmbedderInfo]
) -> list[str]:
    """Human-readable differences between an index's ``_meta`` and the current embedders."""
    problems = []
    for name in sorted(set(recorded) | set(current)):
        old, new = recorded.get(name), current.get(name)
        if old is None:
            problems.append(f"{name}: not in the index")
        elif new is None:
            problems.append(f"{name}: in the index but not in the config")
        elif old != new:
            problems.append(
                f"{name}: index has {old.embedder} {old.version} dim {old.dim}, "
                f"config has {new.embedder} {new.version} dim {new.dim}"
            )
    return problems


def check_embedders(client: OpenSearch, index: str, infos: dict[str, EmbedderInfo]) -> None:
    with backend_errors():
        mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    problems = embedder_mismatch(vector_meta(mapping.get("_meta", {})), infos)
    if problems:
        raise EmbedderMismatch(
            f"index {index} was written by other embedders ({'; '.join(problems)}); "
            "run again with --rebuild to write a new index version and swap the alias"
        )


def _create(client: OpenSearch, index: str, body: dict[str, Any]) -> None:
    logger.info("creating index %s", index)
    with backend_errors():
        client.indices.create(index=index, body=body)


def prepare_target(
    client: OpenSearch,
    config: EngineConfig,
    infos: dict[str, EmbedderInfo],
    *,
    rebuild: bool,
) -> Target:
    """Pick (and create if needed) the index this run writes into."""
    alias = config.alias
    with backend_errors():
        if client.indices.exists(index=alias) and not client.indices.exists_alias(name=alias):
            raise ConfigError(f"{alias!r} is a concrete index, not an alias; rename it first")
    current = alias_indexes(client, alias)
    if len(current) > 1:
        raise ConfigError(f"alias {alias!r} points at several indexes: {current}")
    versions = _versions(client, alias)
    body = build_index_body(config, infos)
    if not current and not rebuild:
        if versions:  # a first run that stopped before the alias was added
            index = versions[max(versions)]
            check_embedders(client, index, infos)
            fresh = False
        else:
            index, fresh = f"{alias}_v1", True
            _create(client, index, body)
        with backend_errors():
            client.indices.put_alias(index=index, name=alias)
        return Target(index, alias, fresh, swap_alias=False)
    if not rebuild:
        check_embedders(client, current[0], infos)
        return Target(current[0], alias, fresh=False, swap_alias=False)
    live = version_of(alias, current[0]) if current else None
    newest = max(versions, default=0)
    if newest and newest != live and (live is None or newest > live):
        unfinished = versions[newest]
        try:
            check_embedders(client, unfinished, infos)
        except EmbedderMismatch:
            logger.info("deleting unfinished rebuild %s (other embedders)", unfinished)
            with backend_errors():
                client.indices.delete(index=unfinished)
        else:
            logger.info("resuming unfinished rebuild into %s", unfinished)
            return Target(unfinished, alias, fresh=False, swap_alias=True)
    index = f"{alias}_v{newest + 1}"
    _create(client, index, body)
    return Target(index, alias, fresh=True, swap_alias=True)


def swap_alias(client: OpenSearch, alias: str, index: str, retain_versions: int) -> list[str]:
    """Point ``alias`` at ``index`` atomically; delete old versions beyond the retained ones.

    Returns the deleted index names.
    """
    old = [name for name in alias_indexes(client, alias) if name != index]
    actions: list[dict[str, Any]] = [{"remove": {"index": name, "alias": alias}} for name in old]
    actions.append({"add": {"index": index, "alias": alias}})
    with backend_errors():
        client.indices.update_aliases(body={"actions": actions})
    logger.info("alias %s now points at %s (was %s)", alias, index, old or "nothing")
    live = version_of(alias, index) or 0
    older = sorted((number for number in _versions(client, alias) if number < live), reverse=True)
    doomed = [f"{alias}_v{number}" for number in older[retain_versions:]]
    if doomed:
        logger.info("deleting old versions %s", doomed)
        with backend_errors():
            client.indices.delete(index=",".join(doomed))
    return doomed
