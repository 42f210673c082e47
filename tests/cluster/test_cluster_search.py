"""On the three-node cluster (one replica), the gateway still agrees with the brute-force
reference on indexes of 1, 3 and 6 primary shards: the same comparisons as
``tests/integration/test_gateway_search.py``, the shards now spread over nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.settings import GatewaySettings
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from tests.cluster.conftest import wait_green
from tests.integration.conftest import Catalog, catalog_gateway, engine_config, index_catalog
from tests.integration.test_gateway_search import (
    SHARD_COUNTS,
    check_one_result_per_product,
    check_random_requests,
)

pytestmark = pytest.mark.cluster

CatalogDocs = tuple[list[dict[str, Any]], dict[str, Path], EmbedderInfo, EngineConfig]


@pytest.fixture(scope="module", params=SHARD_COUNTS, ids=lambda n: f"{n}-shards")
def sharded(
    request: pytest.FixtureRequest,
    cluster_client: OpenSearch,
    cluster_urls: list[str],
    cluster_catalog_docs: CatalogDocs,
    tiny_clip_checkpoint: Path,
) -> Iterator[tuple[TestClient, Catalog]]:
    shards: int = request.param
    docs, images, info, _ = cluster_catalog_docs
    config = engine_config(
        "shop1", f"ct-catalog-shards{shards}", tiny_clip_checkpoint, shards=shards, replicas=1
    )
    index = index_catalog(cluster_client, config, docs, info)
    assert wait_green(cluster_client, index) == "green"
    settings = GatewaySettings(
        opensearch_url=",".join(cluster_urls), max_body_bytes=2_000_000, max_image_bytes=1_500_000
    )
    catalog = Catalog(config=config, docs=docs, images=images, index=index)
    try:
        with catalog_gateway(catalog, settings, tiny_clip_checkpoint) as client:
            yield client, catalog
    finally:
        cluster_client.indices.delete(index=index, ignore_unavailable=True)


def test_shards_spread_over_the_nodes(
    sharded: tuple[TestClient, Catalog], cluster_client: OpenSearch
) -> None:
    rows = cluster_client.cat.shards(index=sharded[1].index, format="json")
    assert {row["state"] for row in rows} == {"STARTED"}
    assert len(rows) == 2 * sharded[1].config.shards, "each primary has its replica"
    assert len({row["node"] for row in rows}) == min(3, len(rows))


def test_random_requests_match_brute_force(sharded: tuple[TestClient, Catalog]) -> None:
    check_random_requests(*sharded)


def test_one_result_per_product_matches_brute_force(sharded: tuple[TestClient, Catalog]) -> None:
    check_one_result_per_product(*sharded)
