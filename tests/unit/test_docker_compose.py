"""docker-compose.yml cannot run here (no Docker engine); keep it consistent with the project."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

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
