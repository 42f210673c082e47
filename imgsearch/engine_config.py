"""Engine (collection) config: the one source of truth for an index's schema and its API.

One YAML or JSON file per engine. The indexer builds the OpenSearch mapping from it
(``imgsearch.mapping``); the gateway serves it under its ``hashid``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imgsearch.errors import ConfigError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Fields the indexer writes itself; engine configs may not declare them.
RESERVED_FIELDS = frozenset(
    {"id", "id_md5", "image_url", "content_hash", "indexed_at", "palette", "colors"}
) | frozenset({"color_palette_hex", "color_palette_freq", "color_names", "color_isolated"})


class FieldType(StrEnum):
    KEYWORD = "keyword"
    TEXT = "text"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATE = "date"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """A normal (non-vector) field of the catalog."""

    type: FieldType
    facet: bool = False
    required: bool = False

    @model_validator(mode="after")
    def _facetable(self) -> FieldSpec:
        if self.facet and self.type is FieldType.TEXT:
            raise ValueError("text fields cannot be facets; use keyword")
        return self


class ClipSpec(_Strict):
    embedder: Literal["clip"] = "clip"
    model: str = "ViT-B-32"
    pretrained: str | None = "laion2b_s34b_b79k"
    checkpoint: Path | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    batch_size: Annotated[int, Field(ge=1, le=1024)] = 32
    # torch: open_clip as loaded. onnx / onnx-int8: the same weights exported to ONNX Runtime
    # (fp32, or int8 weights with dynamic quantisation), a faster CPU path; see clip_onnx.py.
    runtime: Literal["torch", "onnx", "onnx-int8"] = "torch"

    @model_validator(mode="after")
    def _onnx_on_cpu(self) -> ClipSpec:
        if self.runtime != "torch" and self.device == "cuda":
            raise ValueError(f"runtime {self.runtime!r} runs on the CPU; use runtime torch on cuda")
        return self


class ColorSpec(_Strict):
    embedder: Literal["color"] = "color"


class PhashSpec(_Strict):
    """Near-duplicate signatures, and the thresholds the near-duplicate search applies.

    A query's probes (crops and mirror of the query) are compared with each item's stored box
    hashes: items within ``max_distance`` bits are candidates (the default radius of
    ``imgsearch duplicates`` and of API calls without one); a candidate is a near-duplicate
    when, aligned, their details correlate by at least ``min_similarity`` and their colours
    differ by at most ``max_colour_difference`` (chromaticity). ``pairs_max_distance`` is the
    radius of the all-pairs search (``imgsearch duplicates --all``), whose cost grows steeply
    with it.
    Measured in ``bench/near_duplicates.py``; see docs/indexer.md.
    """

    embedder: Literal["phash"] = "phash"
    max_distance: Annotated[int, Field(ge=0, le=32)] = 8
    min_similarity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.84
    max_colour_difference: Annotated[float, Field(ge=0.0, le=2.0)] = 0.05
    pairs_max_distance: Annotated[int, Field(ge=0, le=12)] = 4


# Normal fields an embedder adds to every document (see ``Embedder.extra_fields``).
DERIVED_FIELDS: dict[str, dict[str, FieldSpec]] = {
    "color": {
        "colors": FieldSpec(type=FieldType.KEYWORD, facet=True),
        # the palette as aligned lists, largest share first, and the plain-background flag
        "color_palette_hex": FieldSpec(type=FieldType.KEYWORD),
        "color_palette_freq": FieldSpec(type=FieldType.NUMBER),
        "color_names": FieldSpec(type=FieldType.KEYWORD, facet=True),
        "color_isolated": FieldSpec(type=FieldType.BOOLEAN, facet=True),
    },
}

# Embedders whose vectors are ranked by k-NN similarity (phash is matched by Hamming distance).
KNN_EMBEDDERS = frozenset({"clip", "color"})

VectorSpec = Annotated[ClipSpec | ColorSpec | PhashSpec, Field(discriminator="embedder")]


def _default_vectors() -> dict[str, ClipSpec | ColorSpec | PhashSpec]:
    return {"clip": ClipSpec()}


class ResultFields(_Strict):
    """Which catalog fields the APIs return as title/url/image_url/description."""

    title: str | None = "title"
    url: str | None = "url"
    image_url: str | None = None
    description: str | None = "description"


class FacetDefault(_Strict):
    field: str
    size: Annotated[int, Field(ge=1, le=1000)] = 20
    type: Literal["terms", "range"] | None = None


class GatewaySpec(_Strict):
    """How the gateway serves this engine."""

    image_search: bool = True
    vector_field: str | None = None
    k: Annotated[int, Field(ge=1, le=10_000)] = 200
    tokens: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    facets: list[FacetDefault] = Field(default_factory=list)
    # One result per value of this keyword field (e.g. a product id shared by its photos).
    product_field: str | None = None
    # Text queries: CLIP text tower fused with BM25 (hybrid), one of them alone, or off.
    text_search: Literal["hybrid", "vector", "lexical", "off"] = "hybrid"
    # Image (or item) query plus colours: the image's k-NN pool re-ranked by
    # (1 - color_weight) * image similarity + color_weight * colour similarity.
    color_weight: Annotated[float, Field(ge=0.0, le=1.0)] = 0.5


class KnnMethod(_Strict):
    """How the k-NN vector fields are indexed: the library, HNSW's graph, and quantisation.

    ``lucene`` (the default, in every OpenSearch with the k-NN plugin) filters inside the
    graph walk; ``encoder: sq`` stores 7-bit scalar-quantised copies the search walks
    (lucene keeps the float vectors too, for merging and rescoring). ``faiss`` and ``nmslib``
    are native libraries the cluster must ship (the local test node has neither);
    ``encoder: sq`` with faiss means fp16. ``ef_search`` is the search breadth: with lucene
    it travels with every k-NN query (``method_parameters``: the walk keeps
    ``max(k, ef_search)`` candidates per shard; unset, it keeps the pool size ``gateway.k``);
    with the native libraries it is an index setting. Measured in
    ``bench/knn_quantization.py`` and ``bench/opensearch_tuning.py``.
    """

    engine: Literal["lucene", "faiss", "nmslib"] = "lucene"
    m: Annotated[int, Field(ge=2, le=100)] = 16
    ef_construction: Annotated[int, Field(ge=2, le=4096)] = 128
    ef_search: Annotated[int, Field(ge=2, le=10_000)] | None = None
    encoder: Literal["none", "sq"] = "none"

    @model_validator(mode="after")
    def _supported(self) -> KnnMethod:
        if self.engine == "nmslib" and self.encoder != "none":
            raise ValueError("nmslib has no encoders; use lucene or faiss for quantisation")
        return self


# What a synced collection stores about each file (Similarix's file fields).
SOURCE_FIELDS = {
    "file_name": {"type": "keyword"},
    "file_size": {"type": "number"},
    "md5": {"type": "keyword"},
    "file_uri": {"type": "keyword"},
}


class SourceSpec(_Strict):
    """Where a synced collection's images live: a local folder, or an S3 bucket and prefix
    (``endpoint_url`` for S3-compatible servers). ``interval_s`` syncs on a schedule."""

    type: Literal["folder", "s3"]
    path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    region: str | None = None
    endpoint_url: str | None = None
    interval_s: Annotated[int, Field(ge=60)] | None = None

    @model_validator(mode="after")
    def _where(self) -> SourceSpec:
        if self.type == "folder" and self.path is None:
            raise ValueError("a folder source needs path")
        if self.type == "s3" and not self.bucket:
            raise ValueError("an s3 source needs bucket")
        return self


class EngineConfig(_Strict):
    hashid: str
    alias: str
    id_field: str = "id"
    image_field: str = "image"
    category_from_folder: str | None = "category"
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    vectors: dict[str, VectorSpec] = Field(default_factory=_default_vectors)
    result_fields: ResultFields = ResultFields()
    gateway: GatewaySpec = GatewaySpec()
    source: SourceSpec | None = None
    shards: Annotated[int, Field(ge=1, le=64)] = 1
    replicas: Annotated[int, Field(ge=0, le=8)] = 0
    knn: KnnMethod = KnnMethod()
    retain_versions: Annotated[int, Field(ge=0, le=20)] = 1

    @field_validator("hashid", "alias")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("lowercase letters, digits, '-' and '_' only")
        return value

    @model_validator(mode="before")
    @classmethod
    def _source_fields(cls, data: object) -> object:
        """A synced collection stores its files' metadata; declare those fields for it."""
        if isinstance(data, dict) and data.get("source") is not None:
            fields = dict(data.get("fields") or {})
            for name, spec in SOURCE_FIELDS.items():
                fields.setdefault(name, spec)
            data = {**data, "fields": fields}
        return data

    @field_validator("fields", "vectors")
    @classmethod
    def _field_names(cls, value: dict[str, object]) -> dict[str, object]:
        for name in value:
            if not _FIELD.match(name):
                raise ValueError(f"invalid field name {name!r}")
            if name in RESERVED_FIELDS:
                raise ValueError(f"{name!r} is reserved")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> EngineConfig:
        clash = set(self.fields) & set(self.vectors)
        if clash:
            raise ValueError(f"names used as both field and vector: {sorted(clash)}")
        if not self.vectors:
            raise ValueError("at least one vector field is required")
        if self.gateway.vector_field is not None and self.gateway.vector_field not in self.vectors:
            raise ValueError(f"gateway.vector_field {self.gateway.vector_field!r} is not a vector")
        searchable = [n for n, v in self.vectors.items() if v.embedder in KNN_EMBEDDERS]
        if self.gateway.vector_field is not None and self.gateway.vector_field not in searchable:
            raise ValueError(
                f"gateway.vector_field {self.gateway.vector_field!r} is a perceptual hash "
                "(exact Hamming matching), not a similarity vector; use a clip or color field"
            )
        if self.gateway.image_search and not searchable:
            raise ValueError("image search needs a clip or color vector (phash alone cannot rank)")
        known = self.searchable_fields()
        product = self.gateway.product_field
        if product is not None and (
            product not in known or known[product].type is not FieldType.KEYWORD
        ):
            raise ValueError(f"gateway.product_field {product!r} is not a keyword field")
        for facet in self.gateway.facets:
            spec = known.get(facet.field)
            if spec is None or not spec.facet:
                raise ValueError(f"default facet {facet.field!r} is not a facet field")
        return self

    @property
    def query_vector_field(self) -> str:
        """The field image queries use: the configured one, else clip, else the first knn one."""
        if self.gateway.vector_field is not None:
            return self.gateway.vector_field
        if "clip" in self.vectors and self.vectors["clip"].embedder == "clip":
            return "clip"
        return next(n for n, v in self.vectors.items() if v.embedder in KNN_EMBEDDERS)

    @property
    def color_vector_field(self) -> str | None:
        """The colour descriptor field colour queries search (``None`` without one)."""
        return next((n for n, v in self.vectors.items() if v.embedder == "color"), None)

    def searchable_fields(self) -> Mapping[str, FieldSpec]:
        """Declared fields plus those the embedders derive (``colors`` from the palette).

        Read-only: without derived fields it is ``fields`` itself (a search asks ~10 times).
        """
        derived = [
            DERIVED_FIELDS[v.embedder]
            for v in self.vectors.values()
            if v.embedder in DERIVED_FIELDS
        ]
        if not derived:
            return self.fields
        merged: dict[str, FieldSpec] = {}
        for fields in derived:
            merged.update(fields)
        merged.update(self.fields)
        return merged

    def facet_fields(self) -> dict[str, FieldSpec]:
        return {name: spec for name, spec in self.searchable_fields().items() if spec.facet}


def load_engine_config(path: Path) -> EngineConfig:
    """Read and validate one engine config; errors name the file and the bad key."""
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return EngineConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def load_engine_configs(directory: Path) -> dict[str, EngineConfig]:
    """All configs in a folder, keyed by hashid; duplicate hashids are an error."""
    engines: dict[str, EngineConfig] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix not in (".yaml", ".yml", ".json"):
            continue
        config = load_engine_config(path)
        if config.hashid in engines:
            raise ConfigError(f"{path}: duplicate hashid {config.hashid!r}")
        engines[config.hashid] = config
    return engines
