"""The orjson serializer writes what opensearch-py's own would, for the types we send."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from opensearchpy.exceptions import SerializationError
from opensearchpy.serializer import JSONSerializer
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from imgsearch.errors import ConfigError
from imgsearch.search_client import FastJSONSerializer, make_client, node_urls

FAST = FastJSONSerializer()
REFERENCE = JSONSerializer()


@pytest.mark.parametrize(
    "value",
    [
        {"knn": {"clip": {"vector": [0.1, -2.5e-7, 3.0], "k": 200}}},
        {"id": "sku-ü-1", "price": 19.99, "in_stock": True, "size": ["M", "L"], "none": None},
        {"phash": -9_223_372_036_854_775_808, "max": 9_223_372_036_854_775_807},
        {"when": date(2026, 11, 24), "at": datetime(2026, 11, 24, 7, 0, tzinfo=UTC)},
        {"uuid": uuid.UUID(int=7), "price": Decimal("19.5")},
        {"vec": np.asarray([0.25, 0.5], dtype=np.float32), "n": np.int64(3)},
        [{"index": "a"}, {"query": {"match_all": {}}}],
    ],
)
def test_same_json_as_the_reference(value: Any) -> None:
    assert json.loads(FAST.dumps(value)) == json.loads(REFERENCE.dumps(value))


def test_strings_pass_through_and_loads_round_trips() -> None:
    assert FAST.dumps('{"already": "json"}') == '{"already": "json"}'
    assert FAST.loads('{"a": [1, 2.5, "x"]}') == {"a": [1, 2.5, "x"]}


def test_errors_are_opensearch_serialization_errors() -> None:
    with pytest.raises(SerializationError):
        FAST.dumps({"bad": object()})
    with pytest.raises(SerializationError):
        FAST.loads("{not json")


def test_several_nodes_are_comma_separated() -> None:
    assert node_urls("http://a:9200/, https://u:p@b:9201 ,") == [
        "http://a:9200",
        "https://u:p@b:9201",
    ]
    with pytest.raises(ConfigError):
        node_urls(" , ")


def test_the_client_bounds_connects_and_reads_separately() -> None:
    client = make_client("http://a:9200,http://b:9200", timeout_s=4, connect_timeout_s=0.5)
    connections = client.transport.connection_pool.connections
    assert sorted(c.host for c in connections) == ["http://a:9200", "http://b:9200"]
    timeout = connections[0].pool.timeout
    assert (timeout.connect_timeout, timeout.read_timeout) == (0.5, 4)
    client.close()


def test_gateway_settings_take_several_node_urls() -> None:
    settings = GatewaySettings(opensearch_url="http://a:9200/, http://b:9200")
    assert settings.opensearch_url == "http://a:9200,http://b:9200"
    with pytest.raises(ValidationError):
        GatewaySettings(opensearch_url="http://a:9200,b:9200")
