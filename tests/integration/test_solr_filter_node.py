"""Parsed Solr ``fq`` filter exactly the documents the brute-force evaluator accepts, on the node.

Random trees are rendered as fq strings (generators in ``tests/unit/test_solr_filter.py``),
parsed back, turned into OpenSearch DSL by ``filter_to_dsl`` and run as a plain filter over
seeded random records with missing, null, empty and multi-valued fields.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from hypothesis import given, settings
from opensearchpy import OpenSearch, helpers

from gateway.search.dsl import filter_to_dsl
from gateway.search.model import FilterTree
from gateway.search.solr_filter import parse_filter_queries
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.mapping import build_index_body
from tests.reference_search import matches
from tests.unit.test_solr_filter import CONFIG, N_IDS, SEEDS, random_record, render_fqs, trees

FIXED_FQS = [
    ["brand:acme"],
    ["price:[100 TO *]"],
    ["-brand:acme"],
    ["*:* -tags:red"],
    ["tags:(red OR x\\:y) AND NOT in_stock:false"],
    ["released:{2024-01-01T00:00:00Z TO *]"],
    ["released:[* TO 2024-01-01T00:00:00Z]"],
    ['brand:"" OR title:""'],
    ["title:[* TO *] -brand:*", "price:{* TO 100}"],
    ["brand:a OR brand:Acme AND size:M"],
]


def test_parsed_fq_select_the_brute_force_documents(
    os_client: OpenSearch, index_name: Callable[[str], str]
) -> None:
    records = [random_record(random.Random(1000 + i), i) for i in range(N_IDS)]
    index = index_name("solr-fq")
    body = build_index_body(CONFIG, {"clip": EmbedderInfo("clip", "test", 4, "knn_cosine")})
    os_client.indices.create(index=index, body=body)
    try:
        actions = ({"_index": index, "_id": r["id"], "_source": r} for r in records)
        ok, errors = helpers.bulk(os_client, actions, refresh=True)
        assert ok == len(records) and not errors

        outcomes: list[bool] = []

        def check(fqs: list[str]) -> None:
            tree = parse_filter_queries(fqs, CONFIG)
            assert tree is not None
            want = {r["id"] for r in records if matches(r, tree, CONFIG)}
            got = search_ids(os_client, index, tree)
            assert got == want, f"{fqs}: node only {got - want}, reference only {want - got}"
            outcomes.append(0 < len(want) < len(records))

        for fqs in FIXED_FQS:
            check(fqs)

        @settings(max_examples=100, derandomize=True, database=None, deadline=None)
        @given(trees(), SEEDS)
        def random_fqs(tree: FilterTree, seed: int) -> None:
            check(render_fqs(tree, random.Random(seed)))

        random_fqs()
        assert len(outcomes) >= 100
        assert sum(outcomes) >= len(outcomes) // 3, "too few filters select some but not all"
    finally:
        os_client.indices.delete(index=index)


def search_ids(client: OpenSearch, index: str, tree: FilterTree) -> set[str]:
    response = client.search(
        index=index,
        body={
            "query": {"bool": {"filter": [filter_to_dsl(tree, CONFIG)]}},
            "size": N_IDS + 1,
            "_source": False,
        },
    )
    assert response["hits"]["total"]["value"] == len(response["hits"]["hits"])
    return {hit["_id"] for hit in response["hits"]["hits"]}
