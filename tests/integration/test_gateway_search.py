"""The gateway on the real node agrees with the brute-force reference, for many requests.

The comparisons run on indexes of 1, 3 and 6 primary shards holding the same documents (the
pool is the global top-k whatever the shard count); ``tests/cluster`` runs them again on a
three-node cluster.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.dialects.doofinder.params import parse_params
from gateway.settings import GatewaySettings
from imgsearch.embedders.registry import build_embedders
from imgsearch.images import decode_image
from tests.integration.conftest import (
    BRANDS,
    POOL_K,
    SIZES,
    Catalog,
    catalog_gateway,
    engine_config,
    index_catalog,
)
from tests.reference_search import Expected, evaluate
from tests.tolerance import SCORE_ATOL, ranking_problems, tie_runs

Pairs = list[tuple[str, str]]
N_RANDOM_REQUESTS = 60
SHARD_COUNTS = (1, 3, 6)
WORDS = ["Acme dress", "Borealis hat", "shoes", "Cobalt longsleeve", "Dune pants", "t-shirt"]


def _random_params(rng: random.Random, catalog: Catalog) -> Pairs:
    categories = sorted({d["category"] for d in catalog.docs})
    pairs: Pairs = []
    for name in rng.sample(["category", "brand", "size", "price", "in_stock"], rng.randint(0, 2)):
        if name == "price":
            low = rng.uniform(5, 120)
            pairs += [
                ("filter[price][gte]", f"{low:.2f}"),
                ("filter[price][lte]", f"{low + 80:.2f}"),
            ]
        elif name == "in_stock":
            pairs.append(("filter[in_stock]", rng.choice(["true", "false"])))
        else:
            pool = {"category": categories, "brand": BRANDS, "size": SIZES}[name]
            pairs += [(f"filter[{name}][]", v) for v in rng.sample(pool, rng.randint(1, 2))]
    if rng.random() < 0.4:
        if rng.random() < 0.5:
            pairs.append(("exclude[brand][]", rng.choice(BRANDS)))
        else:
            pairs.append(("exclude[price][gt]", f"{rng.uniform(100, 190):.2f}"))
    if rng.random() < 0.25:
        pairs.append(("filter_execution", "or"))
    facets = rng.sample(["category", "brand", "size", "price", "in_stock"], rng.randint(0, 4))
    for i, name in enumerate(facets):
        pairs += [(f"facets[{i}][field]", name), (f"facets[{i}][size]", "50")]
    if rng.random() < 0.4:
        pairs.append(("sort[0][price]", rng.choice(["asc", "desc"])))
    rpp = rng.randint(1, 20)
    page = rng.randint(1, POOL_K // rpp)
    pairs += [("rpp", str(rpp)), ("page", str(page))]
    return pairs


def _expected(gateway: TestClient, catalog: Catalog, pairs: Pairs, image: bytes) -> Expected:
    engine = gateway.app.state.service.registry.get("shop1")  # type: ignore[attr-defined]
    vector = engine.embedder().embed_images([decode_image(image)])[0]
    request = parse_params(pairs, catalog.config).search_request(
        catalog.config, [float(x) for x in vector]
    )
    return evaluate(catalog.docs, request, catalog.config)


def _facets(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for facet in body["facets"]:
        if "range" in facet:
            out[facet["key"]] = (facet["range"]["min"], facet["range"]["max"])
        else:
            items = facet["terms"]["items"]
            out[facet["key"]] = {i["name"]: i["count"] for i in items if i["count"] > 0}
    return out


def _expected_facets(expected: Expected) -> dict[str, Any]:
    def name(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {
        field: value if isinstance(value, tuple) else {name(k): c for k, c in value.items()}
        for field, value in expected.facets.items()
    }


def assert_facets(body: dict[str, Any], expected: Expected, pairs: Pairs) -> None:
    """Every facet as the reference counts it, except over a pool a near-tie decides."""
    got_facets = _facets(body)
    for field, value in _expected_facets(expected).items():
        if field in expected.ambiguous_facets:
            continue  # a near-tie decides which document is in the pool
        if isinstance(value, tuple):
            assert got_facets[field] == pytest.approx(value), (field, pairs)
        else:
            assert got_facets[field] == value, (field, pairs)


def _page(body: dict[str, Any]) -> tuple[list[str], list[float]]:
    return [r["id"] for r in body["results"]], [r["score"] for r in body["results"]]


@contextmanager
def sharded_catalog(
    os_client: OpenSearch,
    catalog: Catalog,
    settings: GatewaySettings,
    checkpoint: Path,
    *,
    shards: int,
    replicas: int = 0,
) -> Iterator[tuple[TestClient, Catalog]]:
    """``catalog``'s documents in an index of ``shards`` primaries, and a gateway serving it."""
    config = engine_config(
        "shop1", f"it-gateway-shards{shards}", checkpoint, shards=shards, replicas=replicas
    )
    info = build_embedders(config)["clip"].info
    index = index_catalog(os_client, config, catalog.docs, info)
    copy = Catalog(config=config, docs=catalog.docs, images=catalog.images, index=index)
    try:
        with catalog_gateway(copy, settings, checkpoint) as client:
            yield client, copy
    finally:
        os_client.indices.delete(index=index, ignore_unavailable=True)


@pytest.fixture(scope="module", params=SHARD_COUNTS, ids=lambda n: f"{n}-shards")
def sharded(
    request: pytest.FixtureRequest,
    os_client: OpenSearch,
    catalog: Catalog,
    gateway: TestClient,
    gateway_settings: GatewaySettings,
    tiny_clip_checkpoint: Path,
) -> Iterator[tuple[TestClient, Catalog]]:
    shards: int = request.param
    if shards == 1:
        yield gateway, catalog
        return
    with sharded_catalog(
        os_client, catalog, gateway_settings, tiny_clip_checkpoint, shards=shards
    ) as pair:
        yield pair


def check_random_requests(gateway: TestClient, catalog: Catalog) -> None:
    """Random filters, facets, sorts and pages: as the brute-force reference says."""
    rng = random.Random(20261124)
    ids = sorted(catalog.images)
    ambiguous = 0
    for _ in range(N_RANDOM_REQUESTS):
        image = catalog.images[rng.choice(ids)].read_bytes()
        pairs = _random_params(rng, catalog)
        response = gateway.post(
            "/6/shop1/_image_search",
            params=pairs,
            json={"image": base64.b64encode(image).decode()},
        )
        assert response.status_code == 200, (pairs, response.text)
        body = response.json()
        expected = _expected(gateway, catalog, pairs, image)
        problems = expected.page_problems(*_page(body))
        assert not problems, (problems, pairs)
        assert body["total"] == expected.total, pairs
        ambiguous += expected.pool_ambiguous
        assert_facets(body, expected, pairs)
    # Near-ties at the pool's boundary are rare (none in these 60); were they common, this test
    # would check little.
    assert ambiguous <= N_RANDOM_REQUESTS // 6, ambiguous


def check_one_result_per_product(gateway: TestClient, catalog: Catalog) -> None:
    """An engine with ``product_field``: pages, totals and facets count products."""
    engine = gateway.app.state.service.engine("products")  # type: ignore[attr-defined]
    config = engine.config
    rng = random.Random(271127)
    ids = sorted(catalog.images)
    for _ in range(N_RANDOM_REQUESTS // 2):
        image = catalog.images[rng.choice(ids)].read_bytes()
        pairs = _random_params(rng, catalog)
        response = gateway.post(
            "/6/products/_image_search",
            params=pairs,
            json={"image": base64.b64encode(image).decode()},
        )
        assert response.status_code == 200, (pairs, response.text)
        body = response.json()
        vector = engine.embedder().embed_images([decode_image(image)])[0]
        request = parse_params(pairs, config).search_request(config, [float(x) for x in vector])
        assert request.collapse == "product"
        expected = evaluate(catalog.docs, request, config)
        problems = expected.page_problems(*_page(body))
        assert not problems, (problems, pairs)
        assert body["total"] == expected.total, pairs
        products = [catalog.docs_by_id[r["id"]]["product"] for r in body["results"]]
        assert len(products) == len(set(products)), "one result per product"
        assert_facets(body, expected, pairs)


def check_hybrid_as_on_one_shard(gateway: TestClient, one_shard: TestClient) -> None:
    """Words (CLIP text tower fused with BM25): the same pages, totals and facets as the same
    documents on one shard, BM25 statistics being the index's (``tests/test_text_search.py``
    checks the one-shard answer against its own reference)."""
    rng = random.Random(5)
    for words in WORDS:
        pairs = [("query", words), ("rpp", "10"), ("page", str(rng.randint(1, 3)))]
        if rng.random() < 0.5:
            pairs.append(("filter[brand][]", rng.choice(BRANDS)))
        pairs += [("facets[0][field]", "brand"), ("facets[1][field]", "category")]
        pairs += [("facets[2][field]", "price")]
        got = gateway.get("/6/shop1/_search", params=pairs)
        want = one_shard.get("/6/shop1/_search", params=pairs)
        assert got.status_code == want.status_code == 200, (got.text, want.text)
        mine, theirs = got.json(), want.json()
        assert _page(mine)[0] == _page(theirs)[0], pairs
        assert _page(mine)[1] == pytest.approx(_page(theirs)[1], abs=1e-9), pairs
        assert mine["total"] == theirs["total"], pairs
        assert _facets(mine) == _facets(theirs), pairs


def test_random_requests_match_brute_force(sharded: tuple[TestClient, Catalog]) -> None:
    check_random_requests(*sharded)


def test_one_result_per_product_matches_brute_force(sharded: tuple[TestClient, Catalog]) -> None:
    check_one_result_per_product(*sharded)


def test_hybrid_text_search_does_not_depend_on_shards(
    sharded: tuple[TestClient, Catalog], gateway: TestClient
) -> None:
    check_hybrid_as_on_one_shard(sharded[0], gateway)


def test_response_shape_and_dfid(gateway: TestClient, catalog: Catalog) -> None:
    item_id = sorted(catalog.images)[0]
    image = catalog.images[item_id].read_bytes()
    response = gateway.post(
        "/6/shop1/_image_search",
        params=[("filter[brand][]", "Acme"), ("facets[0][field]", "brand"), ("rpp", "5")],
        json={"image": base64.b64encode(image).decode()},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query_name"] == "image_search"
    assert (body["page"], body["rpp"]) == (1, 5)
    first = body["results"][0]
    assert first["dfid"] == f"shop1@product@{hashlib.md5(first['id'].encode()).hexdigest()}"
    assert {"title", "url", "image_url", "score", "brand", "price"} <= set(first)
    assert "clip" not in first
    assert "id_md5" not in first, "bookkeeping stays out of results (the catalog stores it)"
    brand = next(f for f in body["facets"] if f["key"] == "brand")
    assert [s["name"] for s in brand["terms"]["selected"]] == ["Acme"]
    # disjunctive: other brands are still offered while Acme is selected
    assert len(brand["terms"]["items"]) > 1
    timing = dict(
        (name.strip(), float(dur))
        for name, _, dur in (
            part.partition(";dur=") for part in response.headers["server-timing"].split(",")
        )
    )
    assert {"decode", "embed", "opensearch", "app"} <= set(timing)
    # the app's whole time holds its parts (each printed to 0.01 ms)
    parts = timing["decode"] + timing["embed"] + timing["opensearch"]
    assert timing["app"] >= parts - 0.03, timing


def test_multipart_upload_equals_base64(gateway: TestClient, catalog: Catalog) -> None:
    image = catalog.images[sorted(catalog.images)[5]].read_bytes()
    as_json = gateway.post(
        "/6/shop1/_image_search", json={"image": base64.b64encode(image).decode(), "rpp": 7}
    )
    as_form = gateway.post(
        "/6/shop1/_image_search",
        files={"image": ("photo.jpg", image, "image/jpeg")},
        data={"rpp": "7"},
    )
    assert as_json.status_code == as_form.status_code == 200, (as_json.text, as_form.text)
    json_ids, json_scores = _page(as_json.json())
    form_ids, form_scores = _page(as_form.json())
    assert len(json_ids) == 7
    # Same bytes, same model: the same page, scores equal up to float noise (tolerance.py).
    runs = tie_runs(json_ids, json_scores)
    scores = dict(zip(json_ids, json_scores, strict=True))
    assert not ranking_problems(form_ids, form_scores, runs, scores)

    def fields(body: dict[str, Any]) -> dict[str, Any]:
        return {r["id"]: {k: v for k, v in r.items() if k != "score"} for r in body["results"]}

    assert fields(as_json.json()) == fields(as_form.json())


def test_visually_similar_uses_stored_vector(gateway: TestClient, catalog: Catalog) -> None:
    doc = catalog.docs[10]
    dfid = f"shop1@product@{hashlib.md5(doc['id'].encode()).hexdigest()}"
    params = [("dfid", dfid), ("rpp", "10"), ("facets[0][field]", "category")]
    response = gateway.get("/6/shop1/_visually_similar", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    request = parse_params(params, catalog.config).search_request(
        catalog.config, doc["clip"], exclude_ids=[doc["id"]]
    )
    expected = evaluate(catalog.docs, request, catalog.config)
    assert not expected.page_problems(*_page(body)), expected.page_problems(*_page(body))
    assert doc["id"] not in [r["id"] for r in body["results"]]
    assert body["total"] == expected.total

    with_self = gateway.get(
        "/6/shop1/_visually_similar", params=[("dfid", doc["id"]), ("exclude_self", "false")]
    )
    assert with_self.status_code == 200
    assert with_self.json()["results"][0]["id"] == doc["id"]


def _request_cache(os_client: OpenSearch, index: str) -> tuple[int, int]:
    stats = os_client.indices.stats(index=index, metric="request_cache")
    cache = stats["_all"]["total"]["request_cache"]
    return int(cache["hit_count"]), int(cache["miss_count"])


def test_item_queries_use_the_request_cache_uploads_do_not(
    gateway: TestClient, catalog: Catalog, os_client: OpenSearch
) -> None:
    """ "More like this" repeats (the same item's page is opened by many shoppers), so its
    searches ask OpenSearch's request cache; an uploaded photo never repeats, so it doesn't."""
    doc = catalog.docs[11]
    params = [("dfid", doc["id"]), ("rpp", "5"), ("facets[0][field]", "brand")]
    first = gateway.get("/6/shop1/_visually_similar", params=params)
    assert first.status_code == 200, first.text
    hits, _ = _request_cache(os_client, catalog.index)
    again = gateway.get("/6/shop1/_visually_similar", params=params)
    assert _page(again.json())[0] == _page(first.json())[0]
    assert _page(again.json())[1] == pytest.approx(_page(first.json())[1], abs=SCORE_ATOL)
    assert _request_cache(os_client, catalog.index)[0] > hits, "the repeat was not a cache hit"

    image = catalog.images[sorted(catalog.images)[12]].read_bytes()
    upload = {"image": base64.b64encode(image).decode()}
    before = _request_cache(os_client, catalog.index)
    for _ in range(2):
        assert gateway.post("/6/shop1/_image_search", json=upload).status_code == 200
    assert _request_cache(os_client, catalog.index) == before, "an upload used the cache"


def test_pages_partition_the_pool(gateway: TestClient, catalog: Catalog) -> None:
    image = catalog.images[sorted(catalog.images)[42]].read_bytes()
    payload = {"image": base64.b64encode(image).decode()}
    seen: list[str] = []
    totals = set()
    for page in range(1, POOL_K // 15 + 1):
        body = gateway.post(
            "/6/shop1/_image_search",
            params=[("rpp", "15"), ("page", str(page)), ("filter[in_stock]", "true")],
            json=payload,
        ).json()
        seen += [r["id"] for r in body["results"]]
        totals.add(body["total"])
    assert len(seen) == len(set(seen)) == min(POOL_K, sum(d["in_stock"] for d in catalog.docs))
    assert len(totals) == 1


def _sample(exposition: str, line_start: str) -> float:
    for line in exposition.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return 0.0


def _counter(exposition: str, route: str, hashid: str, status: str) -> float:
    return _sample(
        exposition,
        f'imgsearch_http_requests_total{{hashid="{hashid}",route="{route}",status="{status}"}} ',
    )


def test_metrics_count_requests_and_stages(gateway: TestClient, catalog: Catalog) -> None:
    route = "/6/{hashid}/_image_search"
    before = gateway.get("/metrics").text
    image = catalog.images[sorted(catalog.images)[3]].read_bytes()
    ok = gateway.post("/6/shop1/_image_search", json={"image": base64.b64encode(image).decode()})
    assert ok.status_code == 200
    assert gateway.post("/6/shop1/_image_search?rpp=0", json={"image": "x"}).status_code == 400
    assert gateway.post("/6/zz-random/_image_search", json={}).status_code == 404
    after = gateway.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain")
    text = after.text
    assert _counter(text, route, "shop1", "200") == _counter(before, route, "shop1", "200") + 1
    assert _counter(text, route, "shop1", "400") == _counter(before, route, "shop1", "400") + 1
    assert _counter(text, route, "unknown", "404") >= 1
    assert "zz-random" not in text
    # Observed once the answer is sent: one each for the one search that got that far.
    for stage in ("decode", "embed", "opensearch"):
        line = f'imgsearch_search_stage_seconds_count{{stage="{stage}"}} '
        assert _sample(text, line) == _sample(before, line) + 1, stage
    latency = f'imgsearch_http_request_seconds_count{{route="{route}"}} '
    assert _sample(text, latency) == _sample(before, latency) + 3
