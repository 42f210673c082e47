"""Fixtures of the collection API's tests (collections, keys, the served app).

Each test module defines its own ``settings``; these build on it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.app import create_app
from gateway.service.system_index import SYSTEM_INDEX
from gateway.settings import GatewaySettings


@contextmanager
def gateway(settings: GatewaySettings) -> Iterator[tuple[FastAPI, TestClient]]:
    app = create_app(settings, engines={})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client


@pytest.fixture(scope="module")
def served(settings: GatewaySettings) -> Iterator[tuple[FastAPI, TestClient]]:
    with gateway(settings) as pair:
        yield pair


@pytest.fixture(scope="module")
def api(served: tuple[FastAPI, TestClient]) -> TestClient:
    return served[1]


class Keys:
    """Keys made for the tests, deleted afterwards."""

    def __init__(self, app: FastAPI, os_client: OpenSearch) -> None:
        self.store = app.state.service.keys
        self.os_client = os_client
        self.made: list[str] = []

    def make(self, access: str = "write", collections: list[int] | None = None) -> str:
        key, token = self.store.create(access, collections, "test")
        self.made.append(key.key_id)
        return str(token)

    def close(self) -> None:
        for key_id in self.made:
            self.os_client.delete(index=SYSTEM_INDEX, id=f"api_key:{key_id}", refresh=True)


@pytest.fixture(scope="module")
def keys(served: tuple[FastAPI, TestClient], os_client: OpenSearch) -> Iterator[Keys]:
    made = Keys(served[0], os_client)
    yield made
    made.close()


@pytest.fixture(scope="module")
def admin(keys: Keys) -> str:
    return keys.make("write")


@pytest.fixture
def collection(api: TestClient, admin: str) -> Iterator[int]:
    """A new collection, deleted after the test."""
    created = api.post(
        "/api/collection/create", json={"name": "Prints"}, headers={"API-Key": admin}
    )
    assert created.status_code == 200, created.text
    collection_id = int(created.json()["id"])
    yield collection_id
    api.post(f"/api/collection/{collection_id}/delete", headers={"API-Key": admin})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
