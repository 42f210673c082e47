"""Bounded fuzzing of every API route on the real node: no input may cause a 5xx.

Hypothesis generates JSON bodies and query strings from each API's own vocabulary (so they
reach deep into the parsers, not just the first type check), plus arbitrary values. Every
answer must be below 500 and, when it is an error, in the dialect's own error shape. The
examples are derandomised, so CI runs the same bounded set every time.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opensearchpy import OpenSearch

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.mapping import build_index_body
from tests.fixtures_clip import tiny_clip_spec

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token"
ALIAS = "it-fuzz"
EXAMPLES = 60
XIMILAR_EXAMPLES = 100  # 19 methods: the most parameters to reach
XIMILAR_METHODS = [
    "ping", "insert", "nearDupsInsert", "delete", "get", "find", "update", "deleteByFilter",
    "getRecordCount", "allRecords", "random", "visualKNN", "visualKNNMulti", "visualTagsKNN",
    "visualTagsKNNMulti", "visualRankRecords", "range", "nearDuplicates", "allNearDupPairs",
]  # fmt: skip
KEYS = [
    "_id", "_url", "_base64", "_file", "k", "from", "filter", "records", "query_record",
    "query_records", "fields_to_return", "radius", "count", "size", "page", "limit",
    "product_field", "tags", "price", "brand", "$gte", "$lt", "$in", "$nin", "$and", "$or",
    "$not", "$exists", "$eq", "$ne", "$regex", "category", "nope",
]  # fmt: skip
PNG = base64.b64encode(Path(__file__).read_bytes()[:64]).decode()

# Edge numbers come up often on purpose: they are where parsers break (int(nan), 2**63…).
edge_numbers = st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, 2**63, -1, 0])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    edge_numbers,
    edge_numbers,
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["acme", "1", "http://127.0.0.1:9/x.jpg", PNG, "*", "", "dress"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    ),
    max_leaves=12,
)
# A well-formed request with one or two of its parameters replaced, so the fuzz gets past
# the first required-field checks into every parameter's parsing.
SKELETON: dict[str, Any] = {
    "query_record": {"_id": "no-such-id"},
    "query_records": [{"_id": "no-such-id"}, {"_url": "http://127.0.0.1:9/x.jpg"}],
    "records": [{"_id": "a", "_url": "http://127.0.0.1:9/x.jpg", "tags": ["x"]}],
    "filter": {"brand": "acme"},
    "k": 5,
}
PARAMS = ["k", "from", "limit", "count", "size", "page", "radius", "fields_to_return",
          "filter", "product_field", "query_record", "query_records", "records"]  # fmt: skip
bodies = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=5),
    st.dictionaries(
        st.sampled_from(PARAMS),
        st.one_of(edge_numbers, edge_numbers, values),
        min_size=1,
        max_size=2,
    ).map(lambda changed: {**SKELETON, **changed}),
)
params = st.lists(
    st.tuples(
        st.sampled_from(["query", "rpp", "page", "filter[brand][]", "filter[price][gte]",
                         "facets[0][field]", "sort[0][price]", "dfid", "limit", "collection",
                         "color", "exclude[nope][]", "filter_execution"]),
        st.one_of(st.text(max_size=10), st.sampled_from(["0", "-1", "1e9", "brand", "asc", ""])),
    ),
    max_size=5,
)  # fmt: skip

SEGMENT = string.ascii_letters + string.digits + "-_.~%@"
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_client(
    os_client: OpenSearch, opensearch_url: str, tiny_clip_checkpoint: Path
) -> Iterator[TestClient]:
    config = EngineConfig.model_validate(
        {
            "hashid": "fuzz",
            "alias": ALIAS,
            "fields": {"brand": {"type": "keyword", "facet": True}, "price": {"type": "number"},
                       "tags": {"type": "keyword"}, "category": {"type": "keyword"}},
            "vectors": {
                "clip": tiny_clip_spec(tiny_clip_checkpoint),
                "phash": {"embedder": "phash"},
            },
            "gateway": {"tokens": [TOKEN], "k": 50},
        }
    )  # fmt: skip
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
    body = build_index_body(config, {n: e.info for n, e in build_embedders(config).items()})
    body["aliases"] = {ALIAS: {}}
    os_client.indices.create(index=f"{ALIAS}_v1", body=body)
    app = create_app(GatewaySettings(opensearch_url=opensearch_url), {"fuzz": config})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)


def _check(response: Any, shape: str, what: object) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])
    if response.status_code >= 400:
        body = response.json()
        if shape == "ximilar":
            assert body["status"]["code"] == response.status_code, (what, body)
        elif shape == "similarix":
            assert body["success"] is False and body["info"]["error"], (what, body)
        else:
            assert isinstance(body["error"], str) and body["error"], (what, body)


@pytest.mark.parametrize("method", XIMILAR_METHODS)
def test_ximilar_methods_never_fail_with_5xx(fuzz_client: TestClient, method: str) -> None:
    headers = {"collection-id": "fuzz", "Authorization": f"Token {TOKEN}"}

    @settings(FUZZ, max_examples=XIMILAR_EXAMPLES)
    @given(body=bodies)
    def check(body: dict[str, Any]) -> None:
        raw = json.dumps(body)  # NaN and Infinity included: Python's json writes them
        url = f"/similarity/photos/v2/{method}"
        json_headers = {**headers, "Content-Type": "application/json"}
        response = fuzz_client.post(url, content=raw, headers=json_headers)
        _check(response, "ximilar", body)

    check()


@pytest.mark.parametrize(
    ("verb", "path"),
    [("post", "/6/fuzz/_image_search"), ("get", "/6/fuzz/_visually_similar"),
     ("get", "/6/fuzz/_search"), ("post", "/6/fuzz/_search")],
)  # fmt: skip
def test_doofinder_routes_never_fail_with_5xx(
    fuzz_client: TestClient, verb: str, path: str
) -> None:
    @FUZZ
    @given(pairs=params, body=bodies)
    def check(pairs: list[tuple[str, str]], body: dict[str, Any]) -> None:
        if verb == "get":
            response = fuzz_client.get(path, params=pairs)
        else:
            response = fuzz_client.post(path, params=pairs, content=json.dumps(body),
                                        headers={"Content-Type": "application/json"})  # fmt: skip
        _check(response, "doofinder", (pairs, body))

    check()


def test_similarix_routes_never_fail_with_5xx(fuzz_client: TestClient) -> None:
    headers = {"Authorization": f"Token {TOKEN}"}

    @FUZZ
    @given(pairs=params, segment=st.text(alphabet=SEGMENT, min_size=1, max_size=12))
    def check(pairs: list[tuple[str, str]], segment: str) -> None:
        for response in (
            fuzz_client.get("/api/search/", params=pairs, headers=headers),
            fuzz_client.post("/api/search/", params=pairs, headers=headers,
                             files={"file": ("x.jpg", segment.encode())}),
            fuzz_client.get(f"/api/collections/{segment}/", headers=headers),
            fuzz_client.get(f"/api/files/{segment}/download/", headers=headers),
        ):  # fmt: skip
            _check(response, "similarix", (pairs, segment))

    check()
