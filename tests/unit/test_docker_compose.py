"""Keep docker-compose.yml and docker-compose.cluster.yml consistent with the project. Neither
runs in the suite (build machines have no Docker daemon); scripts/test-compose.sh runs the
cluster tests against docker-compose.cluster.yml where Docker is available."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from gateway.settings import GatewaySettings

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_opensearch_matches_the_version_the_tests_run_against() -> None:
    pom = (ROOT / "scripts/opensearch/pom.xml").read_text()
    match = re.search(r"<opensearch.version>([^<]+)</opensearch.version>", pom)
    assert match is not None
    service = _compose()["services"]["opensearch"]
    assert service["image"] == f"opensearchproject/opensearch:{match.group(1)}"
    assert "discovery.type=single-node" in service["environment"]
    assert "DISABLE_SECURITY_PLUGIN=true" in service["environment"]
    assert "_cluster/health" in " ".join(service["healthcheck"]["test"])


def test_gateway_waits_for_a_healthy_cluster_and_serves_existing_paths() -> None:
    gateway = _compose()["services"]["gateway"]
    assert gateway["depends_on"]["opensearch"]["condition"] == "service_healthy"
    assert "OPENSEARCH_URL=http://opensearch:9200" in gateway["environment"]
    command = " ".join(gateway["command"])
    for path in re.findall(r"(demo/[\w./-]+)", command):
        assert (ROOT / path).exists(), path
    assert "imgsearch serve" in command and "imgsearch index" in command


# docker-compose.cluster.yml: three nodes, structurally checked here too.
NODES = ("opensearch1", "opensearch2", "opensearch3")


def _default(value: str) -> str:
    """What compose makes of ``${NAME:-default}`` when NAME is unset."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


def _cluster() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    return data


def test_cluster_nodes_discover_each_other_and_run_the_tested_version() -> None:
    services = _cluster()["services"]
    single = _compose()["services"]["opensearch"]
    names = set()
    for name in NODES:
        node = services[name]
        env = node["environment"]
        assert _default(node["image"]) == single["image"], "the k-NN image the single node uses"
        assert env["node.name"] == name
        assert env["discovery.seed_hosts"].split(",") == list(NODES)
        assert env["cluster.initial_cluster_manager_nodes"].split(",") == list(NODES)
        assert "discovery.type" not in env, "single-node discovery would split the cluster"
        assert env["DISABLE_SECURITY_PLUGIN"] == "true"
        assert "_cluster/health" in " ".join(node["healthcheck"]["test"])
        names.add(env["cluster.name"])
        mounts = dict(v.split(":", 1) for v in node["volumes"])
        assert mounts["snapshots"] == env["path.repo"], "one shared snapshot repository"
        assert (
            services["snapshots-owner"]["volumes"][0].split(":")[0] == "snapshots"
            and node["depends_on"]["snapshots-owner"]["condition"]
            == "service_completed_successfully"
        )
    assert len(names) == 1
    data = {v.split(":", 1)[0] for n in NODES for v in services[n]["volumes"]} - {"snapshots"}
    assert len(data) == len(NODES), "each node keeps its own data volume"
    ports = [services[n]["ports"][0] for n in NODES]
    assert ports == [f"127.0.0.1:{9200 + i}:9200" for i in range(3)], "scripts/test-compose.sh"


def test_compose_test_script_matches_the_cluster_file() -> None:
    script = (ROOT / "scripts/test-compose.sh").read_text()
    image = _default(_cluster()["services"]["opensearch1"]["image"])
    assert f"official={image}" in script
    assert "docker/opensearch-standin/build.sh" in script
    assert "http://127.0.0.1:9200,http://127.0.0.1:9201,http://127.0.0.1:9202" in script
    dockerfile = (ROOT / "docker/opensearch-standin/Dockerfile").read_text()
    assert f"stand-in for {image}" in dockerfile


def test_cluster_gateway_points_at_every_node() -> None:
    gateway = _cluster()["services"]["gateway"]
    env = dict(e.split("=", 1) for e in gateway["environment"])
    assert env["OPENSEARCH_URL"].split(",") == [f"http://{n}:9200" for n in NODES]
    assert GatewaySettings(opensearch_url=env["OPENSEARCH_URL"]).opensearch_url.count(",") == 2
    for name in NODES:
        assert gateway["depends_on"][name]["condition"] == "service_healthy"
    assert gateway["command"] == _compose()["services"]["gateway"]["command"]
