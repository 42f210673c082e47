"""Build the OpenSearch index body for an engine from the templates in ``mappings/``.

Pure: config + embedder infos in, dict out. The templates are JSON with ``"{{name}}"``
placeholders, so operators can read and tune them without reading Python.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig, KnnMethod
from imgsearch.errors import ConfigError

MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"

# Stored, not indexed: the palette as [{hex, name, fraction}].
_PALETTE_MAPPING = {"type": "object", "enabled": False}


@cache
def _template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((MAPPINGS_DIR / f"{name}.json").read_text())
    return data


def _fill(node: Any, values: dict[str, int | str]) -> Any:
    if isinstance(node, dict):
        return {key: _fill(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(value, values) for value in node]
    if isinstance(node, str) and node.startswith("{{") and node.endswith("}}"):
        return values[node[2:-2]]
    return node


def build_index_body(config: EngineConfig, infos: dict[str, EmbedderInfo]) -> dict[str, Any]:
    """The ``PUT <index>`` body: settings, normal fields, vector fields and ``_meta``."""
    missing = set(config.vectors) - set(infos)
    if missing:
        raise ConfigError(f"no embedder info for vector fields {sorted(missing)}")
    body: dict[str, Any] = _fill(
        copy.deepcopy(_template("index")), {"shards": config.shards, "replicas": config.replicas}
    )
    properties: dict[str, Any] = body["mappings"]["properties"]
    field_templates = _template("fields")
    for name, spec in config.searchable_fields().items():
        properties[name] = copy.deepcopy(field_templates[spec.type.value])
    if any(v.embedder == "color" for v in config.vectors.values()):
        properties["palette"] = dict(_PALETTE_MAPPING)
    vector_templates = _template("vectors")
    for name, info in infos.items():
        properties[name] = _fill(copy.deepcopy(vector_templates[info.storage]), {"dim": info.dim})
        if "method" in properties[name]:
            properties[name]["method"] = knn_method(config.knn, properties[name]["method"])
    if config.knn.ef_search is not None and config.knn.engine != "lucene":
        # lucene's breadth is a query parameter (``dsl.knn_query``), not an index setting
        body["settings"]["index"]["knn.algo_param.ef_search"] = config.knn.ef_search
    body["mappings"]["_meta"] = {
        "engine": config.hashid,
        "vectors": {name: info.as_meta() for name, info in infos.items()},
    }
    return body


def knn_method(method: KnnMethod, template: dict[str, Any]) -> dict[str, Any]:
    """The template's ``method`` (its space type) with the engine's library and parameters."""
    parameters: dict[str, Any] = {"m": method.m, "ef_construction": method.ef_construction}
    if method.encoder == "sq":
        sq_type = {"faiss": {"type": "fp16"}, "lucene": {}}[method.engine]
        parameters["encoder"] = {"name": "sq", "parameters": sq_type}
    return {**template, "engine": method.engine, "parameters": parameters}


def vector_meta(mapping_meta: dict[str, Any]) -> dict[str, EmbedderInfo]:
    """Read back the embedder infos recorded by ``build_index_body``."""
    return {
        name: EmbedderInfo(
            embedder=str(meta["embedder"]),
            version=str(meta["version"]),
            dim=int(meta["dim"]),
            storage=meta["storage"],
        )
        for name, meta in mapping_meta.get("vectors", {}).items()
    }
