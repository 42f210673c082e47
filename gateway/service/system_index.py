"""The gateway's own index: collections created over HTTP, API keys, and id counters.

Every gateway on the cluster reads and writes the same documents (``refresh`` on write, so
the next read anywhere sees it); nothing here lives only in one process.
"""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch

from imgsearch.errors import NotFound
from imgsearch.search_client import backend_errors

SYSTEM_INDEX = "imgsearch-system"
MAX_LISTED = 10_000  # collections or keys one listing returns
_MAPPING = {
    "settings": {"number_of_shards": 1, "auto_expand_replicas": "0-1"},
    "mappings": {
        "dynamic": False,
        "properties": {"kind": {"type": "keyword"}, "id": {"type": "long"}},
    },
}


class SystemIndex:
    def __init__(self, client: OpenSearch) -> None:
        self.client = client
        self._ready = False

    def _ensure(self) -> None:
        if self._ready:
            return
        with backend_errors():
            if not self.client.indices.exists(index=SYSTEM_INDEX):
                # ignore 400: another gateway created it between the check and now
                self.client.indices.create(index=SYSTEM_INDEX, body=_MAPPING, ignore=[400])
        self._ready = True

    def get(self, doc_id: str) -> dict[str, Any] | None:
        try:
            with backend_errors():
                doc = self.client.get(index=SYSTEM_INDEX, id=doc_id)
        except NotFound:  # no such document, or no system index yet
            return None
        source: dict[str, Any] = doc["_source"]
        return source

    def put(self, doc_id: str, body: dict[str, Any]) -> None:
        self._ensure()
        with backend_errors():
            self.client.index(index=SYSTEM_INDEX, id=doc_id, body=body, params={"refresh": "true"})

    def delete(self, doc_id: str) -> None:
        with backend_errors():
            self.client.delete(index=SYSTEM_INDEX, id=doc_id, params={"refresh": "true"})

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Every document of ``kind``, by ``id`` (at most ``MAX_LISTED``)."""
        body = {
            "query": {"term": {"kind": kind}},
            "size": MAX_LISTED,
            "sort": [{"id": "asc"}],
        }
        try:
            with backend_errors():
                found = self.client.search(index=SYSTEM_INDEX, body=body)
        except NotFound:
            return []
        return [hit["_source"] for hit in found["hits"]["hits"]]

    def next_number(self, counter: str) -> int:
        """1, 2, 3, … for ``counter``, atomically across gateways."""
        self._ensure()
        body = {
            "script": {"source": "ctx._source.value += 1", "lang": "painless"},
            "upsert": {"kind": "counter", "value": 1},
            "scripted_upsert": False,
        }
        with backend_errors():
            done = self.client.update(
                index=SYSTEM_INDEX, id=f"counter:{counter}", body=body,
                params={"refresh": "true", "retry_on_conflict": "10", "_source": "true"},
            )  # fmt: skip
        return int(done["get"]["_source"]["value"])
