"""Session fixtures: the real OpenSearch node and per-test indexes.

The node comes from ``OPENSEARCH_URL`` or is started by ``scripts/opensearch.py``. If it
cannot be reached, integration tests fail with the reason; they are never skipped.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from opensearchpy import OpenSearch

from imgsearch.search_client import make_client

pytest_plugins = [
    "tests.fixtures_clip",
    "tests.private_node",
    "tests.integration.collection_fixtures",
]

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "clothing"


@functools.cache  # one module: the nodes it spawned keep their Popen for the session
def _node_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("opensearch_node", ROOT / "scripts/opensearch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def opensearch_url() -> str:
    node = _node_script()
    try:
        url: str = node.start()
    except node.NodeError as exc:
        pytest.fail(f"OpenSearch node not available: {exc}", pytrace=False)
    os.environ["OPENSEARCH_URL"] = url
    return url


@pytest.fixture(scope="session")
def os_client(opensearch_url: str) -> Iterator[OpenSearch]:
    client = make_client(opensearch_url, timeout_s=60)
    health = client.cluster.health(wait_for_status="yellow")
    assert health["status"] in ("green", "yellow"), health
    yield client
    client.close()


@pytest.fixture
def index_name(os_client: OpenSearch) -> Iterator[Callable[[str], str]]:
    """Factory for unique index/alias names; everything matching is deleted after the test."""
    prefix = f"t-{uuid.uuid4().hex[:10]}"

    def make(suffix: str = "idx") -> str:
        return f"{prefix}-{suffix}"

    yield make
    os_client.indices.delete(index=f"{prefix}-*", ignore_unavailable=True)


@pytest.fixture(scope="session")
def clothing_dataset() -> Path:
    if not DATASET.is_dir():
        pytest.fail(f"dataset missing at {DATASET} (../shared beside the project)", pytrace=False)
    return DATASET
