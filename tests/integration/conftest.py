"""A small real catalog on the real node, and a gateway app serving it.

The catalog is the clothing ``validation`` split (341 photos) embedded with the tiny seeded
CLIP model, with seeded synthetic shop fields. The documents and their vectors are kept in
memory so tests can compare the gateway with the brute-force reference.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch, helpers

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.images import decode_image
from imgsearch.mapping import build_index_body
from tests.fixtures_clip import tiny_clip_spec

BRANDS = ["Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord"]
SIZES = ["XS", "S", "M", "L", "XL"]
POOL_K = 60


@dataclass
class Catalog:
    config: EngineConfig
    docs: list[dict[str, Any]]  # _source as indexed, with the vector under "clip"
    images: dict[str, Path]  # id -> photo
    index: str

    @property
    def docs_by_id(self) -> dict[str, dict[str, Any]]:
        return {d["id"]: d for d in self.docs}


def engine_config(
    hashid: str, alias: str, checkpoint: Path, shards: int = 1, replicas: int = 0, **gateway: Any
) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": hashid,
            "alias": alias,
            "shards": shards,
            "replicas": replicas,
            "fields": {
                "title": {"type": "text"},
                "url": {"type": "keyword"},
                "category": {"type": "keyword", "facet": True},
                "brand": {"type": "keyword", "facet": True},
                "size": {"type": "keyword", "facet": True},
                "price": {"type": "number", "facet": True},
                "in_stock": {"type": "boolean", "facet": True},
                "product": {"type": "keyword"},
            },
            "vectors": {"clip": tiny_clip_spec(checkpoint)},
            "result_fields": {"title": "title", "url": "url", "image_url": "image_url"},
            "gateway": {"k": POOL_K, **gateway},
        }
    )


def catalog_docs(
    clothing_dataset: Path, config: EngineConfig
) -> tuple[list[dict[str, Any]], dict[str, Path], EmbedderInfo]:
    """The validation photos embedded by ``config``'s CLIP, with seeded shop fields."""
    embedder = build_embedders(config)["clip"]
    rng = random.Random(1234)
    photos = sorted((clothing_dataset / "validation").rglob("*.jpg"))
    docs: list[dict[str, Any]] = []
    images: dict[str, Path] = {}
    batch = 64
    for start in range(0, len(photos), batch):
        chunk = photos[start : start + batch]
        vectors = embedder.embed_images([decode_image(p.read_bytes()) for p in chunk])
        for path, vector in zip(chunk, vectors, strict=True):
            item_id = f"{path.parent.name}/{path.stem}"
            images[item_id] = path
            doc: dict[str, Any] = {
                "id": item_id,
                "title": f"{rng.choice(BRANDS)} {path.parent.name}",
                "url": f"https://shop.example/p/{path.stem}",
                "image_url": f"https://cdn.shop.example/{path.name}",
                "category": path.parent.name,
                "brand": rng.choice(BRANDS),
                "size": rng.sample(SIZES, rng.randint(1, 3)),
                "price": round(rng.uniform(5, 200), 2),
                "in_stock": rng.random() < 0.7,
                # about three photos per product, so one-result-per-product has work to do
                "product": f"{path.parent.name}-{rng.randrange(12)}",
                "clip": [float(x) for x in vector],
            }
            docs.append(doc)
    return docs, images, embedder.info


def index_catalog(
    os_client: OpenSearch, config: EngineConfig, docs: list[dict[str, Any]], info: EmbedderInfo
) -> str:
    """``docs`` in a fresh ``<alias>_v1`` (``config``'s shards and replicas) behind the alias."""
    alias = config.alias
    index = f"{alias}_v1"
    os_client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
    body = build_index_body(config, {"clip": info})
    body["aliases"] = {alias: {}}
    os_client.indices.create(index=index, body=body)
    actions = (
        {"_index": index, "_id": d["id"], "_source": {**d, "id_md5": _md5(d["id"])}} for d in docs
    )
    helpers.bulk(os_client, actions, refresh=True)
    return index


@pytest.fixture(scope="session")
def catalog(
    os_client: OpenSearch, clothing_dataset: Path, tiny_clip_checkpoint: Path
) -> Iterator[Catalog]:
    config = engine_config("shop1", "it-gateway-catalog", tiny_clip_checkpoint)
    docs, images, info = catalog_docs(clothing_dataset, config)
    index = index_catalog(os_client, config, docs, info)
    yield Catalog(config=config, docs=docs, images=images, index=index)
    os_client.indices.delete(index=index, ignore_unavailable=True)


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()


@pytest.fixture(scope="session")
def gateway_settings(opensearch_url: str) -> GatewaySettings:
    return GatewaySettings(
        opensearch_url=opensearch_url,
        max_body_bytes=2_000_000,
        max_image_bytes=1_500_000,
        max_image_pixels=30_000_000,
        image_url_allow_private=True,  # the test image server is on loopback
    )


@contextmanager
def catalog_gateway(
    catalog: Catalog, settings: GatewaySettings, tiny_clip_checkpoint: Path
) -> Iterator[TestClient]:
    """A gateway serving ``catalog``'s alias as shop1, plus locked, noimages and products."""
    alias = catalog.config.alias
    restricted = engine_config(
        "locked", alias, tiny_clip_checkpoint,
        tokens=["secret-token"], allowed_origins=["https://*.shop.example"],
    )  # fmt: skip
    disabled = engine_config("noimages", alias, tiny_clip_checkpoint, image_search=False)
    products = engine_config("products", alias, tiny_clip_checkpoint, product_field="product")
    engines = {
        "shop1": catalog.config,
        "locked": restricted,
        "noimages": disabled,
        "products": products,
    }
    app = create_app(settings, engines)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def gateway(
    catalog: Catalog, gateway_settings: GatewaySettings, tiny_clip_checkpoint: Path
) -> Iterator[TestClient]:
    with catalog_gateway(catalog, gateway_settings, tiny_clip_checkpoint) as client:
        yield client
