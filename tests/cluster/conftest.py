"""The three-node cluster for ``tests/cluster`` (marker ``cluster``).

``OPENSEARCH_CLUSTER_URL`` (comma-separated) names a running one; otherwise the project's
script starts the local one (``scripts/opensearch.py start --nodes 3``) and this package
stops it after its tests if it started it, unless another session is still using it (each
session holds a shared lock on ``.cache/opensearch/cluster-users.lock`` while it runs).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opensearchpy import OpenSearch

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.search_client import make_client
from tests.conftest import _node_script
from tests.integration.conftest import catalog_docs, engine_config

NODES = 3


@pytest.fixture(scope="package")
def node_script() -> ModuleType:
    return _node_script()


@pytest.fixture(scope="package")
def cluster_urls(node_script: ModuleType) -> Iterator[list[str]]:
    external = bool(os.environ.get("OPENSEARCH_CLUSTER_URL"))
    running = node_script.cluster_urls() is not None and all(
        node_script.live_pid(node_script._member(i)["pid"]) for i in range(1, NODES + 1)
    )
    users = Path(node_script.CACHE) / "cluster-users.lock"
    users.parent.mkdir(parents=True, exist_ok=True)
    with users.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
        try:
            urls: list[str] = node_script.start_cluster(NODES)
        except node_script.NodeError as exc:
            pytest.fail(f"OpenSearch cluster not available: {exc}", pytrace=False)
        yield urls
        if external or running:
            return
        try:  # the last user stops what this session started
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        node_script.stop_cluster()


@pytest.fixture(scope="package")
def cluster_client(cluster_urls: list[str]) -> Iterator[OpenSearch]:
    client = make_client(",".join(cluster_urls), timeout_s=120)
    assert wait_green(client) == "green"
    assert client.cluster.health()["number_of_nodes"] == NODES
    yield client
    client.close()


@pytest.fixture(scope="package")
def cluster_catalog_docs(
    clothing_dataset: Path, tiny_clip_checkpoint: Path
) -> tuple[list[dict[str, Any]], dict[str, Path], EmbedderInfo, EngineConfig]:
    """The integration catalog's documents (same photos, fields and seeded CLIP)."""
    config = engine_config("shop1", "ct-catalog", tiny_clip_checkpoint)
    docs, images, info = catalog_docs(clothing_dataset, config)
    return docs, images, info, config


def wait_green(client: OpenSearch, index: str | None = None, within_s: float = 180.0) -> str:
    """Poll cluster health (each call waits up to 30 s server-side) until green or timeout."""
    deadline = time.monotonic() + within_s
    while True:
        health = client.cluster.health(index=index, wait_for_status="green")
        status = str(health["status"])
        if status == "green" or time.monotonic() > deadline:
            return status
