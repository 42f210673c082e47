"""A node SIGKILLed under load: searches keep answering, no acknowledged write is lost.

Three nodes, an index of 3 primaries with one replica each, and one gateway (``create_app``
served by uvicorn in this process, knowing every node's URL) that is never restarted. One
client thread searches (Doofinder ``_image_search``) and one inserts (Ximilar ``insert``,
one record per call) without pause while the cluster-manager node is killed with SIGKILL,
left dead for a while, and started again on the same data. Then the index must be green
again, every insert the gateway acknowledged must be found, and searches must have gone on
answering: the longest gap between two answered searches (the failover window) and the
errors are printed with ``-s``. On the compose cluster (``scripts/test-compose.sh``) the node
is its container, killed with ``docker kill -s SIGKILL`` and started again on its volume.
"""

from __future__ import annotations

import base64
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from opensearchpy import OpenSearch

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from tests.cluster.conftest import wait_green
from tests.integration.conftest import engine_config, index_catalog

pytestmark = pytest.mark.cluster

TOKEN = "ct-failover-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
BEFORE_S, DEAD_S, AFTER_S = 4.0, 20.0, 3.0
MAX_WINDOW_S = 30.0  # the longest gap between answered searches tolerated (a loaded machine)

CatalogDocs = tuple[list[dict[str, Any]], dict[str, Path], EmbedderInfo, EngineConfig]


@dataclass
class Traffic:
    """What the client threads saw: (started, ended, status) per call, ids acknowledged."""

    searches: list[tuple[float, float, int]] = field(default_factory=list)
    inserts: list[tuple[float, float, int]] = field(default_factory=list)
    acknowledged: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served_gateway(
    cluster_client: OpenSearch,
    cluster_urls: list[str],
    cluster_catalog_docs: CatalogDocs,
    tiny_clip_checkpoint: Path,
) -> Iterator[str]:
    docs, _, info, _ = cluster_catalog_docs
    config = engine_config(
        "shop1", "ct-failover", tiny_clip_checkpoint, shards=3, replicas=1, tokens=[TOKEN]
    )
    index = index_catalog(cluster_client, config, docs[:200], info)
    assert wait_green(cluster_client, index) == "green"
    # Writes wait for a replica's promotion rather than time out (the read timeout bounds them).
    settings = GatewaySettings(opensearch_url=",".join(cluster_urls), search_timeout_s=30.0)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, {"shop1": config}),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        cluster_client.indices.delete(index=index, ignore_unavailable=True)


def _search(base: str, photos: list[str], traffic: Traffic) -> None:
    with httpx.Client(base_url=base, timeout=60) as http:
        i = 0
        while not traffic.stop.is_set():
            started = time.monotonic()
            response = http.post(
                "/6/shop1/_image_search",
                params=[("rpp", "10"), ("facets[0][field]", "brand")],
                json={"image": photos[i % len(photos)]},
                headers=AUTH,
            )
            traffic.searches.append((started, time.monotonic(), response.status_code))
            i += 1


def _insert(base: str, photos: list[str], traffic: Traffic) -> None:
    headers = {**AUTH, "collection-id": "shop1"}
    with httpx.Client(base_url=base, timeout=60) as http:
        i = 0
        while not traffic.stop.is_set():
            record = {"_id": f"new-{i}", "_base64": photos[i % len(photos)], "brand": "Fjord"}
            started = time.monotonic()
            response = http.post(
                "/similarity/photos/v2/insert", json={"records": [record]}, headers=headers
            )
            traffic.inserts.append((started, time.monotonic(), response.status_code))
            if response.status_code == 200 and response.json()["status"]["code"] == 210:
                traffic.acknowledged.append(record["_id"])
            i += 1


def _longest_gap(calls: list[tuple[float, float, int]], since: float) -> float:
    """The longest time without an answered call (status 200) after ``since``."""
    answered = sorted(end for _, end, status in calls if status == 200 and end >= since)
    points = [since, *answered]
    return max((b - a for a, b in pairwise(points)), default=float("inf"))


def test_node_loss_under_load(
    served_gateway: str,
    cluster_client: OpenSearch,
    node_script: ModuleType,
    cluster_catalog_docs: CatalogDocs,
) -> None:
    images = sorted(cluster_catalog_docs[1].values())[:12]
    photos = [base64.b64encode(p.read_bytes()).decode() for p in images]
    traffic = Traffic()
    threads = [
        threading.Thread(target=work, args=(served_gateway, photos, traffic), daemon=True)
        for work in (_search, _insert)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_S)
        manager = cluster_client.cat.cluster_manager(format="json")[0]["node"]
        victim = int(re.sub(r"^\D+", "", str(manager)))  # node-2 here, opensearch2 in compose
        killed = time.monotonic()
        node_script.kill_node(victim)
        time.sleep(DEAD_S)
        restarted = time.monotonic()
        node_script.start_node(victim)
        status = wait_green(cluster_client, "ct-failover")
        green = time.monotonic()
        time.sleep(AFTER_S)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=90)
    assert status == "green", "the index is green again"

    searches, inserts = traffic.searches, traffic.inserts
    errors = [status for _, _, status in searches if status != 200]
    window = _longest_gap(searches, killed)
    while_dead = [c for c in searches if killed <= c[0] and c[1] <= restarted and c[2] == 200]
    print(
        f"\n{manager} (cluster manager) killed; {len(searches)} searches, "
        f"{len(errors)} errors {sorted(set(errors))}, {len(while_dead)} answered while it was "
        f"down; longest gap between answered searches after the kill {window:.2f}s; "
        f"{len(inserts)} inserts, {len(traffic.acknowledged)} acknowledged, longest insert "
        f"gap {_longest_gap(inserts, killed):.2f}s; restart to green {green - restarted:.1f}s"
    )
    assert while_dead, "searches answered while the node was down"
    assert window <= MAX_WINDOW_S, window
    assert len(errors) <= len(searches) // 20, errors
    assert [s for _, _, s in searches[-3:]] == [200, 200, 200], "answering after recovery"

    cluster_client.indices.refresh(index="ct-failover")
    found = cluster_client.search(
        index="ct-failover",
        body={
            "query": {"terms": {"id": traffic.acknowledged}},
            "size": len(traffic.acknowledged),
            "_source": ["id"],
        },
    )
    stored = {hit["_source"]["id"] for hit in found["hits"]["hits"]}
    assert traffic.acknowledged, "some inserts were acknowledged"
    assert set(traffic.acknowledged) <= stored, set(traffic.acknowledged) - stored
