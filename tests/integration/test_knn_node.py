"""The local node really does filtered k-NN and aggregations: compare with brute force."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
from opensearchpy import OpenSearch, helpers

from gateway.search.dsl import knn_query
from gateway.search.model import SearchRequest
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.mapping import build_index_body
from tests.tolerance import SCORE_ATOL, ranking_problems, tie_runs

DIM = 16
N_DOCS = 300
COLORS = ["red", "green", "blue", "black"]


def _config() -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": "knn-test",
            "alias": "knn-test",
            "fields": {
                "color": {"type": "keyword", "facet": True},
                "price": {"type": "number", "facet": True},
            },
            "vectors": {"clip": {"embedder": "clip"}},
        }
    )


def test_filtered_knn_and_terms_agg_match_brute_force(
    os_client: OpenSearch, index_name: Callable[[str], str]
) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(N_DOCS, DIM)).astype(np.float32)
    colors = [COLORS[i] for i in rng.integers(0, len(COLORS), N_DOCS)]
    prices = rng.uniform(1, 100, N_DOCS).round(2)
    index = index_name("knn")
    body = build_index_body(_config(), {"clip": EmbedderInfo("clip", "test", DIM, "knn_cosine")})
    os_client.indices.create(index=index, body=body)
    actions = (
        {
            "_index": index,
            "_id": str(i),
            "id": str(i),
            "clip": vectors[i].tolist(),
            "color": colors[i],
            "price": float(prices[i]),
        }
        for i in range(N_DOCS)
    )
    ok, errors = helpers.bulk(os_client, actions, refresh=True)
    assert ok == N_DOCS and not errors

    query = rng.normal(size=DIM).astype(np.float32)
    k = 25
    allowed = {"red", "blue"}
    max_price = 70.0
    response = os_client.search(
        index=index,
        body={
            "size": k,
            "_source": ["id"],
            "query": {
                "knn": {
                    "clip": {
                        "vector": query.tolist(),
                        "k": k,
                        "filter": {
                            "bool": {
                                "filter": [
                                    {"terms": {"color": sorted(allowed)}},
                                    {"range": {"price": {"lte": max_price}}},
                                ]
                            }
                        },
                    }
                }
            },
            "aggs": {"colors": {"terms": {"field": "color", "size": 10}}},
        },
    )
    hits = response["hits"]["hits"]

    unit = vectors.astype(np.float64) / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ (query / np.linalg.norm(query))
    eligible = [i for i in range(N_DOCS) if colors[i] in allowed and prices[i] <= max_price]
    ranked = sorted(eligible, key=lambda i: (-cosine[i], i))
    # lucene cosinesimil score is (1 + cos) / 2
    score_of = {str(i): (1 + cosine[i]) / 2 for i in ranked}
    ids = [str(i) for i in ranked]
    allowed_at = tie_runs(ids, [score_of[i] for i in ids])[:k]
    got = [h["_id"] for h in hits]
    assert not ranking_problems(got, [h["_score"] for h in hits], allowed_at, score_of)
    # The seeded vectors have no near-tie at the boundary, so the pool is decidable.
    assert score_of[ids[k - 1]] - score_of[ids[k]] > SCORE_ATOL
    buckets = {b["key"]: b["doc_count"] for b in response["aggregations"]["colors"]["buckets"]}
    assert buckets == dict(Counter(colors[int(i)] for i in ids[:k]))


def test_lucene_ef_search_is_accepted_and_the_pool_is_the_exact_top_k(
    os_client: OpenSearch, index_name: Callable[[str], str]
) -> None:
    """``knn.ef_search`` with lucene goes out as the query's ``method_parameters``; on the
    hardest data for a graph (random 64-d vectors) the widened walk finds the exact pool."""
    dim, n_docs, k = 64, 3000, 50
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(n_docs, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    config = EngineConfig.model_validate(
        {**_config().model_dump(mode="json"), "knn": {"ef_search": 1000}, "gateway": {"k": k}}
    )
    index = index_name("knn-ef")
    body = build_index_body(config, {"clip": EmbedderInfo("clip", "test", dim, "knn_cosine")})
    os_client.indices.create(index=index, body=body)
    actions = (
        {"_index": index, "_id": str(i), "id": str(i), "clip": vectors[i].tolist()}
        for i in range(n_docs)
    )
    ok, errors = helpers.bulk(os_client, actions, refresh=True)
    assert ok == n_docs and not errors
    for _ in range(10):
        query = rng.normal(size=dim).astype(np.float32)
        query /= np.linalg.norm(query)
        req = SearchRequest(engine="knn-test", vector_field="clip", k=k, vector=query.tolist())
        knn = knn_query(req, config)
        assert knn["knn"]["clip"]["method_parameters"] == {"ef_search": 1000}
        hits = os_client.search(index=index, body={"query": knn, "size": k, "_source": False})[
            "hits"
        ]["hits"]
        scores = (1.0 + vectors @ query) / 2.0
        kth = np.sort(scores)[-k]
        exact = {str(i) for i in np.flatnonzero(scores >= kth - SCORE_ATOL)}
        found = {h["_id"] for h in hits}
        assert len(found) == k and found <= exact, sorted(found - exact)
