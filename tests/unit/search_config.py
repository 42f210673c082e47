"""The engine config the search-core unit tests share."""

from __future__ import annotations

from imgsearch.engine_config import EngineConfig

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "abc123",
        "alias": "shop",
        "fields": {
            "brand": {"type": "keyword", "facet": True},
            "size": {"type": "keyword", "facet": True},
            "price": {"type": "number", "facet": True},
            "in_stock": {"type": "boolean", "facet": True},
            "released": {"type": "date", "facet": True},
            "title": {"type": "text"},
            "description": {"type": "text"},
            "url": {"type": "keyword"},
            "sku": {"type": "keyword"},
        },
        "vectors": {"clip": {"embedder": "clip"}, "color": {"embedder": "color"}},
        "gateway": {"k": 200, "facets": [{"field": "brand", "size": 5}, {"field": "price"}]},
    }
)
