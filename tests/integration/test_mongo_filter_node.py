"""Parsed Mongo filters, as OpenSearch DSL on the real node, select what Mongo would."""

from __future__ import annotations

import random
from collections.abc import Callable

from opensearchpy import OpenSearch, helpers

from gateway.search.dsl import filter_to_dsl
from gateway.search.mongo_filter import parse_mongo_filter
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.mapping import build_index_body
from tests.unit.test_mongo_filter import CONFIG, mongo_matches, random_filter, random_record

N_RECORDS = 200
N_FILTERS = 100


def test_mongo_filters_select_what_mongo_selects(
    os_client: OpenSearch, index_name: Callable[[str], str]
) -> None:
    rng = random.Random(20240601)
    records = [random_record(rng, i) for i in range(N_RECORDS)]
    index = index_name("mongo")
    body = build_index_body(CONFIG, {"clip": EmbedderInfo("clip", "test", 4, "knn_cosine")})
    os_client.indices.create(index=index, body=body)
    try:
        actions = ({"_index": index, "_id": r["id"], "_source": r} for r in records)
        ok, errors = helpers.bulk(os_client, actions, refresh=True)
        assert ok == N_RECORDS and not errors
        selective = 0
        for _ in range(N_FILTERS):
            query = random_filter(rng)
            tree = parse_mongo_filter(query, CONFIG)
            assert tree is not None
            response = os_client.search(
                index=index,
                body={
                    "query": {"bool": {"filter": [filter_to_dsl(tree, CONFIG)]}},
                    "size": N_RECORDS,
                    "_source": False,
                },
            )
            got = sorted(hit["_id"] for hit in response["hits"]["hits"])
            want = sorted(r["id"] for r in records if mongo_matches(r, query))
            assert got == want, query
            selective += 0 < len(want) < N_RECORDS
        # the seeded filters are no sea of "all" and "none": most of them select
        assert selective >= N_FILTERS // 2
    finally:
        os_client.indices.delete(index=index)
