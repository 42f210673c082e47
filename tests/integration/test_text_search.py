"""Doofinder ``_search`` on the real node: hybrid (CLIP text tower + BM25) against a reference.

Each ranking alone is asked of the node with a plain hand-written query (BM25 scoring is
OpenSearch's to compute; its k-NN ranking is checked against numpy in test_knn_node.py);
reciprocal-rank fusion, the pool, paging and facet counts are then computed here,
independently of ``gateway.search``.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.dialects.doofinder.params import parse_params
from tests.integration.conftest import POOL_K, Catalog
from tests.reference_search import matches

pytestmark = pytest.mark.integration

WORDS = ["Acme dress", "Borealis hat", "shoes", "Cobalt longsleeve", "Dune pants", "t-shirt"]
TEXT_FIELDS = ["brand", "category", "size", "title", "url", "product"]


def rrf(rankings: list[list[str]], k: int = 60) -> list[tuple[str, float]]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def ranking(os_client: OpenSearch, catalog: Catalog, query: dict[str, Any]) -> list[str]:
    body = {
        "size": POOL_K,
        "query": query,
        "sort": [{"_score": {"order": "desc"}}, {"id": {"order": "asc"}}],
        "_source": ["id"],
    }
    hits = os_client.search(index=catalog.config.alias, body=body)["hits"]["hits"]
    return [h["_source"]["id"] for h in hits]


def in_stock_only(on: bool) -> list[dict[str, Any]]:
    return [{"term": {"in_stock": True}}] if on else []


def test_hybrid_text_search_matches_the_reference(
    gateway: TestClient, catalog: Catalog, os_client: OpenSearch
) -> None:
    engine = gateway.app.state.service.engine("shop1")  # type: ignore[attr-defined]
    rng = random.Random(11)
    for words in WORDS:
        pairs = [("query", words), ("rpp", "10"), ("page", str(rng.randint(1, 3)))]
        stock = rng.random() < 0.5
        if stock:
            pairs.append(("filter[in_stock]", "true"))
        pairs += [("facets[0][field]", "brand"), ("facets[1][field]", "category")]
        response = gateway.get("/6/shop1/_search", params=pairs)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["query_name"] == "hybrid_search"

        request = parse_params(pairs, catalog.config).search_request(catalog.config)
        text_vector = [float(x) for x in engine.embedder().embed_texts([words])[0]]
        knn: dict[str, Any] = {"vector": text_vector, "k": POOL_K}
        if stock:
            knn["filter"] = {"bool": {"filter": in_stock_only(True)}}
        vector_ids = ranking(os_client, catalog, {"knn": {"clip": knn}})
        words_match = {"multi_match": {"query": words, "fields": TEXT_FIELDS, "lenient": True}}
        bm25 = {"bool": {"must": [words_match], "filter": in_stock_only(stock)}}
        fused = rrf([vector_ids, ranking(os_client, catalog, bm25)])[:POOL_K]
        start = (request.page - 1) * request.rpp
        want = [doc_id for doc_id, _ in fused[start : start + request.rpp]]
        assert [r["id"] for r in body["results"]] == want, words
        assert [r["score"] for r in body["results"]] == pytest.approx(
            [s for _, s in fused[start : start + request.rpp]], abs=1e-9
        )
        assert body["total"] == len(fused)
        pool_docs = [catalog.docs_by_id[doc_id] for doc_id, _ in fused]
        for facet in body["facets"]:
            counts = Counter(d[facet["key"]] for d in pool_docs)
            got = {i["name"]: i["count"] for i in facet["terms"]["items"]}
            assert got == dict(counts), (words, facet["key"])


def test_browse_without_query_lists_the_catalog(gateway: TestClient, catalog: Catalog) -> None:
    response = gateway.get("/6/shop1/_search", params=[("rpp", "20"), ("filter[brand][]", "Acme")])
    assert response.status_code == 200, response.text
    body = response.json()
    acme = sorted(d["id"] for d in catalog.docs if d["brand"] == "Acme")
    assert body["query_name"] == "browse_search"
    assert [r["id"] for r in body["results"]] == acme[:20]
    assert body["total"] == min(POOL_K, len(acme))


def test_text_search_filters_apply_to_both_rankings(gateway: TestClient, catalog: Catalog) -> None:
    params = [("query", "dress"), ("filter[brand][]", "Dune"), ("rpp", "50")]
    body = gateway.post("/6/shop1/_search", params=params).json()
    tree = parse_params(params, catalog.config).search_request(catalog.config).filter_tree()
    assert tree is not None and body["results"]
    for result in body["results"]:
        assert matches(catalog.docs_by_id[result["id"]], tree, catalog.config)


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ([("query", "   ")], "query: it is empty"),
        ([("query", "x" * 10_000)], "at most 1000 characters"),
        ([("query", "dress"), ("filter[nope][]", "x")], "nope"),
    ],
)
def test_bad_text_queries_are_clear_400s(
    gateway: TestClient, params: list[tuple[str, str]], fragment: str
) -> None:
    response = gateway.get("/6/shop1/_search", params=params)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_post_body_parameters(gateway: TestClient) -> None:
    response = gateway.post("/6/shop1/_search", json={"query": "hat", "rpp": 3})
    assert response.status_code == 200 and len(response.json()["results"]) == 3
    assert gateway.post("/6/shop1/_search", content=b"[1]").status_code == 400
