"""The index body generated from an engine config and the templates in mappings/."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import ConfigError
from imgsearch.mapping import build_index_body, vector_meta

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "shop",
        "alias": "shop",
        "shards": 2,
        "replicas": 1,
        "fields": {
            "title": {"type": "text"},
            "brand": {"type": "keyword", "facet": True},
            "price": {"type": "number", "facet": True},
            "in_stock": {"type": "boolean"},
            "released": {"type": "date"},
        },
        "vectors": {
            "clip": {"embedder": "clip"},
            "hist": {"embedder": "color"},
            "hash": {"embedder": "phash"},
        },
    }
)
INFOS = {
    "clip": EmbedderInfo("clip", "open_clip/ViT-B-32/laion2b_s34b_b79k", 512, "knn_cosine"),
    "hist": EmbedderInfo("color", "hsv/v1", 116, "knn_cosine"),
    "hash": EmbedderInfo("phash", "dct/v1", 64, "hamming_long"),
}


@pytest.fixture(scope="module")
def body() -> dict[str, object]:
    return build_index_body(CONFIG, INFOS)


@pytest.mark.parametrize(
    ("field", "expected_type"),
    [
        ("id", "keyword"), ("id_md5", "keyword"), ("content_hash", "keyword"),
        ("title", "text"), ("brand", "keyword"), ("price", "double"), ("in_stock", "boolean"),
        ("released", "date"), ("colors", "keyword"), ("palette", "object"),
        ("clip", "knn_vector"), ("hist", "knn_vector"), ("hash", "long"),
    ],
)  # fmt: skip
def test_field_types(body: dict[str, object], field: str, expected_type: str) -> None:
    properties = body["mappings"]["properties"]  # type: ignore[index]
    assert properties[field]["type"] == expected_type


def test_vectors_are_lucene_hnsw_cosine_with_their_dimension(body: dict[str, object]) -> None:
    properties = body["mappings"]["properties"]  # type: ignore[index]
    for field, dim in (("clip", 512), ("hist", 116)):
        mapping = properties[field]
        assert mapping["dimension"] == dim
        assert mapping["method"]["engine"] == "lucene"
        assert mapping["method"]["name"] == "hnsw"
        assert mapping["method"]["space_type"] == "cosinesimil"


def test_settings_and_strictness(body: dict[str, object]) -> None:
    index = body["settings"]["index"]  # type: ignore[index]
    assert (index["knn"], index["number_of_shards"], index["number_of_replicas"]) == (True, 2, 1)
    assert body["mappings"]["dynamic"] == "strict"  # type: ignore[index]
    assert body["mappings"]["properties"]["title"]["fields"]["raw"]["type"] == "keyword"  # type: ignore[index]


def test_meta_round_trips_the_embedders(body: dict[str, object]) -> None:
    meta = body["mappings"]["_meta"]  # type: ignore[index]
    assert meta["engine"] == "shop"
    assert vector_meta(meta) == INFOS


def test_templates_are_not_mutated_between_calls() -> None:
    first = build_index_body(CONFIG, INFOS)
    first["mappings"]["properties"]["clip"]["dimension"] = 1  # type: ignore[index]
    assert build_index_body(CONFIG, INFOS)["mappings"]["properties"]["clip"]["dimension"] == 512


def test_every_vector_needs_its_embedder_info() -> None:
    with pytest.raises(ConfigError, match="hash"):
        build_index_body(CONFIG, {k: v for k, v in INFOS.items() if k != "hash"})


def _method(knn: dict[str, object]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = EngineConfig.model_validate({**CONFIG.model_dump(mode="json"), "knn": knn})
    body = build_index_body(config, INFOS)
    return body["mappings"]["properties"]["clip"]["method"], body["settings"]["index"]


def test_default_method_is_lucene_hnsw_float() -> None:
    method, settings = _method({})
    assert method == {
        "name": "hnsw",
        "engine": "lucene",
        "space_type": "cosinesimil",
        "parameters": {"m": 16, "ef_construction": 128},
    }
    assert "knn.algo_param.ef_search" not in settings


def test_lucene_ef_search_is_a_query_parameter_not_an_index_setting() -> None:
    _, settings = _method({"ef_search": 1600})
    assert "knn.algo_param.ef_search" not in settings


def test_lucene_scalar_quantisation_and_graph_parameters() -> None:
    method, _ = _method({"m": 32, "ef_construction": 256, "encoder": "sq"})
    assert method["engine"] == "lucene" and method["space_type"] == "cosinesimil"
    assert method["parameters"] == {
        "m": 32,
        "ef_construction": 256,
        "encoder": {"name": "sq", "parameters": {}},
    }


@pytest.mark.parametrize(
    ("knn", "parameters"),
    [
        ({"engine": "faiss", "encoder": "sq", "ef_search": 300},
         {"m": 16, "ef_construction": 128,
          "encoder": {"name": "sq", "parameters": {"type": "fp16"}}}),
        ({"engine": "nmslib", "m": 24, "ef_search": 300}, {"m": 24, "ef_construction": 128}),
    ],
)  # fmt: skip
def test_native_libraries_for_clusters_that_ship_them(
    knn: dict[str, object], parameters: dict[str, object]
) -> None:
    method, settings = _method(knn)
    assert method["engine"] == knn["engine"] and method["parameters"] == parameters
    assert settings["knn.algo_param.ef_search"] == 300
    body = build_index_body(
        EngineConfig.model_validate({**CONFIG.model_dump(mode="json"), "knn": knn}), INFOS
    )
    assert body["mappings"]["properties"]["hist"]["method"]["engine"] == knn["engine"]
    assert "method" not in body["mappings"]["properties"]["hash"]


@pytest.mark.parametrize(
    "knn",
    [{"ef_search": 1}, {"engine": "nmslib", "encoder": "sq"}, {"m": 1}, {"engine": "hnswlib"}],
)
def test_unsupported_methods_are_config_errors(knn: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        EngineConfig.model_validate({**CONFIG.model_dump(mode="json"), "knn": knn})
