"""``imgsearch cluster``, ``snapshot`` and ``restore`` on a real node (the private one, whose
launcher sets ``path.repo``): snapshot, delete, restore, and search answers as before."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch, helpers

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.cli import main
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.mapping import build_index_body
from imgsearch.search_client import make_client
from tests.integration.conftest import Catalog, engine_config
from tests.private_node import PrivateNode
from tests.tolerance import SCORE_ATOL

pytestmark = pytest.mark.integration

HASHID = "opsengine"
ALIAS = "it-ops"
SHARDS = 2


@pytest.fixture
def engine(
    private_node: PrivateNode, catalog: Catalog, tiny_clip_checkpoint: Path, tmp_path: Path
) -> Iterator[tuple[EngineConfig, Path, OpenSearch]]:
    """The test catalog as a two-shard engine on the private node, and its config file."""
    plain = engine_config(HASHID, ALIAS, tiny_clip_checkpoint)
    config = EngineConfig.model_validate({**plain.model_dump(mode="json"), "shards": SHARDS})
    path = tmp_path / "engine.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    client = make_client(private_node.url, timeout_s=60)
    client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
    body = build_index_body(config, {"clip": build_embedders(config)["clip"].info})
    body["aliases"] = {ALIAS: {}}
    client.indices.create(index=f"{ALIAS}_v1", body=body)
    actions = (
        {"_index": f"{ALIAS}_v1", "_id": d["id"], "_source": {**d, "id_md5": _md5(d["id"])}}
        for d in catalog.docs
    )
    helpers.bulk(client, actions, refresh=True)
    yield config, path, client
    client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
    client.close()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cluster_reports_health_nodes_and_the_engines_shards(
    private_node: PrivateNode,
    engine: tuple[EngineConfig, Path, OpenSearch],
    catalog: Catalog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path, client = engine
    client.cluster.health(index=ALIAS, wait_for_status="green")
    args = ("cluster", "--engine", str(path), "--opensearch-url", private_node.url)
    code, out, _ = _run(capsys, *args, "--json")
    report = json.loads(out)
    assert code == 0 and report["cluster"]["status"] == "green"
    assert report["cluster"]["number_of_nodes"] == len(report["nodes"]) == 1
    node = report["nodes"][0]
    assert 0 < node["heap_used_bytes"] <= node["heap_max_bytes"]
    assert 0 < node["disk_available_bytes"] <= node["disk_total_bytes"]
    shards = report["engines"][HASHID]["shards"]
    assert report["engines"][HASHID]["index"] == f"{ALIAS}_v1"
    assert sorted(s["shard"] for s in shards) == list(range(SHARDS))
    assert all(s["primary"] and s["state"] == "STARTED" for s in shards)
    assert sum(s["docs"] for s in shards) == len(catalog.docs)
    code, text, _ = _run(capsys, *args)
    assert code == 0 and f"engine {HASHID}: {ALIAS} -> {ALIAS}_v1, 2 primary shard(s)" in text


def test_snapshot_delete_restore_gives_the_same_results(
    private_node: PrivateNode,
    engine: tuple[EngineConfig, Path, OpenSearch],
    catalog: Catalog,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, path, client = engine
    common = ("--engine", str(path), "--opensearch-url", private_node.url)
    app = create_app(GatewaySettings(opensearch_url=private_node.url), {HASHID: config})
    with TestClient(app, raise_server_exceptions=False) as gateway:
        before = [_search(gateway, item) for item in sorted(catalog.docs_by_id)[:5]]

        code, out, err = _run(capsys, "snapshot", *common, "--name", "snap-1")
        assert code == 0, err
        assert out.strip() == f"imgsearch/snap-1: {ALIAS}_v1 (SUCCESS)"
        code, out, _ = _run(capsys, "snapshot", *common, "--list")
        assert code == 0 and out.split("\t")[:3] == ["snap-1", f"{ALIAS}_v1", "SUCCESS"]

        client.indices.delete(index=f"{ALIAS}_v1")
        lost = gateway.get(f"/6/{HASHID}/_visually_similar", params={"dfid": _dfid(catalog, 0)})
        assert lost.status_code == 404

        code, out, err = _run(capsys, "restore", *common, "--snapshot", "snap-1")
        assert code == 0, err
        assert out.startswith(f"{ALIAS} -> {ALIAS}_v1 (restored from imgsearch/snap-1)")
        after = [_search(gateway, item) for item in sorted(catalog.docs_by_id)[:5]]
    for got, want in zip(after, before, strict=True):
        assert [i for i, _ in got] == [i for i, _ in want]  # the same segments: the same order
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=SCORE_ATOL, rtol=0)
    assert client.count(index=ALIAS)["count"] == len(catalog.docs)


def test_restore_beside_a_live_version_moves_the_alias(
    private_node: PrivateNode,
    engine: tuple[EngineConfig, Path, OpenSearch],
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path, client = engine
    common = ("--engine", str(path), "--opensearch-url", private_node.url)
    assert _run(capsys, "snapshot", *common, "--name", "snap-2")[0] == 0
    code, _, err = _run(capsys, "restore", *common, "--snapshot", "snap-2")
    assert code == 0, err
    assert sorted(client.indices.get_alias(name=ALIAS)) == [f"{ALIAS}_v2"]
    assert client.indices.exists(index=f"{ALIAS}_v1"), "the old version stays for rollback"


def test_a_location_outside_path_repo_is_a_clear_error(
    private_node: PrivateNode,
    engine: tuple[EngineConfig, Path, OpenSearch],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, path, _ = engine
    code, _, err = _run(
        capsys, "snapshot", "--engine", str(path), "--opensearch-url", private_node.url,
        "--repository", "elsewhere", "--location", str(tmp_path / "not-under-path-repo"),
    )  # fmt: skip
    assert code == 2
    assert "path.repo" in err and "elsewhere" in err


def _dfid(catalog: Catalog, n: int) -> str:
    return f"{HASHID}@product@{_md5(sorted(catalog.docs_by_id)[n])}"


def _search(gateway: TestClient, item: str) -> list[tuple[str, float]]:
    response = gateway.get(
        f"/6/{HASHID}/_visually_similar",
        params={"dfid": f"{HASHID}@product@{_md5(item)}", "rpp": "20"},
    )
    assert response.status_code == 200, response.text
    return [(r["id"], float(r["score"])) for r in response.json()["results"]]
