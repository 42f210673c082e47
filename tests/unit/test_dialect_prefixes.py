"""Error shapes by path prefix, on whole path segments: the collection API (``/api/collection/``,
``/api/verify``) beside Similarix (``/api/``, ``/api/collections/``)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.app import DIALECTS, create_app
from gateway.dialect import under_prefix
from gateway.errors import ErrorShapes
from gateway.settings import GatewaySettings


@pytest.mark.parametrize(
    ("path", "prefix", "under"),
    [
        ("/api/collection/1/info", "/api/collection/", True),
        ("/api/collection", "/api/collection/", True),
        ("/api/collections/", "/api/collection/", False),
        ("/api/collectionx", "/api/collection/", False),
        ("/api/verify", "/api/verify", True),
        ("/api/verify/", "/api/verify", True),
        ("/api/verifyx", "/api/verify", False),
        ("/api/search/", "/api/", True),
    ],
)
def test_prefixes_match_whole_segments(path: str, prefix: str, under: bool) -> None:
    assert under_prefix(path, prefix) is under


@pytest.mark.parametrize(
    ("path", "dialect"),
    [
        ("/api/collection/1/info", "collection"),
        ("/api/collection/list", "collection"),
        ("/api/collection", "collection"),
        ("/api/verify", "collection"),
        ("/api/collections/", "similarix"),
        ("/api/collections/abc/sync/", "similarix"),
        ("/api/verifyx", "similarix"),
        ("/api/search/", "similarix"),
        ("/api/cores/x/select", "flow"),
        ("/6/x/_image_search", "doofinder"),
        ("/healthz", None),
    ],
)
def test_each_path_gets_its_dialects_shape(path: str, dialect: str | None) -> None:
    found = ErrorShapes(DIALECTS).dialect(path)
    assert (found.name if found else None) == dialect


def test_unknown_routes_answer_in_the_shape_of_their_prefix() -> None:
    app = create_app(GatewaySettings(opensearch_url="http://127.0.0.1:1"), engines={})
    client = TestClient(app, raise_server_exceptions=False)
    ours = client.get("/api/collection/nothing/here")
    assert ours.json() == {"error": "Not Found", "status": 400}, "404 is 400 in this API"
    theirs = client.get("/api/collections/nothing/here/")
    assert theirs.status_code == 404 and theirs.json()["success"] is False
    bad_id = client.get("/api/collection/abc/info")
    assert bad_id.status_code == 400 and set(bad_id.json()) == {"error", "status"}
