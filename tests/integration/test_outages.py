"""Outages on a real node of our own: the gateway answers fast and recovers by itself, and an
indexing run cut off by an outage resumes with nothing lost or duplicated.

The node is a private one (``tests/private_node.py``), so stopping and freezing it never
disturbs the shared node the other tests use.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from httpx import Response
from opensearchpy import OpenSearch, helpers

from gateway.app import DIALECTS, create_app
from gateway.errors import ErrorShapes
from gateway.settings import GatewaySettings
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import BackendTimeout, BackendUnavailable, ImgSearchError
from imgsearch.mapping import build_index_body
from imgsearch.search_client import make_client
from tests.fixtures_clip import tiny_clip_spec
from tests.integration.conftest import Catalog, engine_config
from tests.private_node import PrivateNode

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HASHID = "outage"
ALIAS = "it-outage"
CONNECT_TIMEOUT_S = 0.5
READ_TIMEOUT_S = 2.0
RETRIES = 2
# A stopped cluster refuses connections: every attempt fails at once, the bound is generous.
DOWN_BOUND_S = (RETRIES + 1) * CONNECT_TIMEOUT_S + 1.0
RECOVERY_S = 90.0
TOKEN = "outage-token"
AUTH = {"Authorization": f"Token {TOKEN}"}


@pytest.fixture
def node(private_node: PrivateNode) -> PrivateNode:
    return private_node


@pytest.fixture(scope="module")
def own_client(private_node_session: PrivateNode) -> Iterator[OpenSearch]:
    client = make_client(private_node_session.url, timeout_s=30)
    yield client
    client.close()


@pytest.fixture(scope="module")
def served(
    private_node_session: PrivateNode,
    own_client: OpenSearch,
    catalog: Catalog,
    tiny_clip_checkpoint: Path,
) -> Iterator[TestClient]:
    """The test catalog on the private node, served by a gateway with short timeouts."""
    plain = engine_config(HASHID, ALIAS, tiny_clip_checkpoint, tokens=[TOKEN])
    # A synced collection, so the Similarix API serves it too (it is never synced here).
    source = {"type": "folder", "path": str(catalog.images[catalog.docs[0]["id"]].parent)}
    config = EngineConfig.model_validate({**plain.model_dump(mode="json"), "source": source})
    embedder = build_embedders(config)["clip"]
    body = build_index_body(config, {"clip": embedder.info})
    body["aliases"] = {ALIAS: {}}
    own_client.indices.create(index=f"{ALIAS}_v1", body=body)
    actions = (
        {"_index": f"{ALIAS}_v1", "_id": d["id"], "_source": {**d, "id_md5": _md5(d["id"])}}
        for d in catalog.docs
    )
    helpers.bulk(own_client, actions, refresh=True)
    settings = GatewaySettings(
        opensearch_url=private_node_session.url,
        search_timeout_s=READ_TIMEOUT_S,
        connect_timeout_s=CONNECT_TIMEOUT_S,
        opensearch_retries=RETRIES,
    )
    app = create_app(settings, {HASHID: config})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _searches(catalog: Catalog) -> dict[str, Callable[[TestClient], Response]]:
    """One search per dialect, each by an indexed item (no model call needed)."""
    item = sorted(catalog.docs_by_id)[7]
    return {
        "doofinder": lambda c: c.get(
            f"/6/{HASHID}/_visually_similar",
            params={"dfid": f"{HASHID}@product@{_md5(item)}", "rpp": "10"},
            headers=AUTH,
        ),
        "ximilar": lambda c: c.post(
            "/similarity/photos/v2/visualKNN",
            json={"query_record": {"_id": item}, "k": 10},
            headers={"collection-id": HASHID, **AUTH},
        ),
        "flow": lambda c: c.get(
            f"/api/cores/{HASHID}/image", params={"id": item, "rows": "10"}, headers=AUTH
        ),
        "similarix": lambda c: c.get(
            "/api/search/", params={"query": "a red dress", "collection": HASHID}, headers=AUTH
        ),
    }


def _assert_error(response: Response, error: ImgSearchError) -> None:
    """The status and body the dialect owning the path promises for ``error``."""
    path = response.request.url.path
    shapes = ErrorShapes(DIALECTS)
    status = shapes.status(path, 503 if isinstance(error, BackendUnavailable) else 504)
    assert response.status_code == status, (path, response.text)
    assert response.json() == shapes.body(path, status, shapes.message(path, error)), path


def _wait_until_served(client: TestClient, search: Callable[[TestClient], Response]) -> Any:
    deadline = time.monotonic() + RECOVERY_S
    while True:
        response = search(client)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response.json()
        time.sleep(0.5)


def test_stopped_cluster_answers_503_fast_and_service_resumes_by_itself(
    node: PrivateNode, served: TestClient, catalog: Catalog
) -> None:
    searches = _searches(catalog)
    before = {}
    for name, search in searches.items():
        response = search(served)
        assert response.status_code == 200, (name, response.text)
        before[name] = response.json()
    assert served.get("/health").json()["status"] == "ok"

    node.stop()
    for search in searches.values():
        began = time.monotonic()
        response = search(served)
        elapsed = time.monotonic() - began
        _assert_error(response, BackendUnavailable("Search backend unavailable"))
        assert elapsed < DOWN_BOUND_S, elapsed
    health = served.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "error": "Search backend unavailable"}

    node.start()  # same port, same data; the gateway is not restarted
    for name, search in searches.items():
        after = _wait_until_served(served, search)
        assert _hits(name, after) == _hits(name, before[name]), name
    assert served.get("/health").status_code == 200


def test_hung_cluster_answers_504_within_the_read_timeout_then_recovers(
    node: PrivateNode, served: TestClient, catalog: Catalog
) -> None:
    searches = _searches(catalog)
    _wait_until_served(served, searches["ximilar"])
    node.freeze()
    try:
        for name in ("doofinder", "ximilar", "flow"):
            began = time.monotonic()
            response = searches[name](served)
            elapsed = time.monotonic() - began
            _assert_error(response, BackendTimeout("Search backend timed out"))
            assert READ_TIMEOUT_S * 0.9 <= elapsed < READ_TIMEOUT_S + 2.0, (name, elapsed)
        assert served.get("/health").status_code == 503
    finally:
        node.thaw()
    for search in searches.values():
        _wait_until_served(served, search)
    assert served.get("/health").status_code == 200


def _hits(dialect: str, body: Any) -> list[Any]:
    """The ranked ids of a dialect's answer (scores compared by rank only)."""
    if dialect == "doofinder":
        return [r["id"] for r in body["results"]]
    if dialect == "ximilar":
        return [r["_id"] for r in body["answer_records"]]
    if dialect == "flow":
        return [d["id"] for d in body["response"]["docs"]]
    return list(body["result"])


# ------------------------------------------------------------------ indexing


def test_indexing_cut_off_by_an_outage_resumes_with_nothing_lost_or_duplicated(
    node: PrivateNode,
    own_client: OpenSearch,
    clothing_dataset: Path,
    tiny_clip_checkpoint: Path,
    tmp_path: Path,
) -> None:
    _wait_for_cluster(node)
    feed = tmp_path / "feed"  # 120 of the photos, in their category folders
    for photo in sorted((clothing_dataset / "validation").rglob("*.jpg"))[:: 341 // 120 + 1][:120]:
        (feed / photo.parent.name).mkdir(parents=True, exist_ok=True)
        (feed / photo.parent.name / photo.name).symlink_to(photo)
    photos = sorted(feed.rglob("*.jpg"))
    alias = "it-outage-index"
    engine = tmp_path / "engine.yaml"
    engine.write_text(
        yaml.safe_dump(
            {
                "hashid": "outageidx",
                "alias": alias,
                "fields": {"category": {"type": "keyword", "facet": True}},
                "vectors": {"clip": tiny_clip_spec(tiny_clip_checkpoint)},
            }
        )
    )
    command = [
        sys.executable, "-m", "imgsearch.cli", "index", str(feed), "--engine", str(engine),
        "--opensearch-url", node.url, "--batch-size", "4", "--bulk-size", "8", "--workers", "1",
    ]  # fmt: skip
    first = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        written = _wait_for_documents(own_client, alias, at_least=16, process=first)
        node.stop()
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert written < len(photos), "the outage must cut the run off midway"
    assert first.returncode == 2, stderr
    assert "unavailable" in stderr.lower(), stderr
    assert "Traceback" not in stderr, stderr

    node.start()
    report = tmp_path / "report.jsonl"
    second = subprocess.run(
        [*command, "--report", str(report)], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert second.returncode == 0, second.stderr
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    outcomes = [line for line in lines if "status" in line]
    assert len(outcomes) == len(photos)
    assert {o["status"] for o in outcomes} <= {"indexed", "unchanged"}
    assert sum(o["status"] == "unchanged" for o in outcomes) >= 1, "the first run's work is kept"
    own_client.indices.refresh(index=alias)
    assert own_client.count(index=alias)["count"] == len(photos)
    expected = {p.relative_to(feed).as_posix() for p in photos}
    ids = [hit["_source"]["id"] for hit in helpers.scan(own_client, index=alias, _source=["id"])]
    assert len(ids) == len(set(ids)), "no record is indexed twice"
    assert set(ids) == expected


def _wait_for_cluster(node: PrivateNode) -> None:
    client = make_client(node.url, timeout_s=30)
    try:
        client.cluster.health(wait_for_status="yellow")
    finally:
        client.close()


def _wait_for_documents(
    client: OpenSearch, alias: str, at_least: int, process: subprocess.Popen[str]
) -> int:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before the outage"
        if client.indices.exists_alias(name=alias) or client.indices.exists(index=alias):
            client.indices.refresh(index=alias)
            count: int = client.count(index=alias)["count"]
            if count >= at_least:
                return count
        time.sleep(0.2)
    raise AssertionError("the indexer wrote nothing")
