"""Fine-tune a collection: learn an adapter from its index, write a new version, swap the alias.

The index already holds every item's vector, so training reads vectors, not images
(augmentation pairs excepted: their copies are embedded). The new version is the live one
with the vector field mapped through the new adapter, written as ``<alias>_v<N+1>`` with the
adapted embedder's version in its ``_meta``; the alias moves only when every document is
there, so queries run against the old version (with the old embedder) until then.

Re-running is safe: training is deterministic, the adapter is content-addressed, an
unfinished version with the same embedders is resumed, and a run that finds the alias already
moved (the previous run swapped, then stopped) has nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from imgsearch.embedders.adapted import adapt
from imgsearch.embedders.base import Embedder, EmbedderInfo
from imgsearch.engine_config import KNN_EMBEDDERS, EngineConfig
from imgsearch.errors import EmbedderMismatch, ImgSearchError, InvalidRequest
from imgsearch.finetune.adapter import Adapter, Stage, split_version
from imgsearch.finetune.augment import augmented_copy
from imgsearch.finetune.store import AdapterStore
from imgsearch.finetune.train import TrainData, TrainResult, TrainSettings, train_adapter
from imgsearch.image_fetch import fetch_image_bytes
from imgsearch.images import ImageLimits, decode_image
from imgsearch.mapping import vector_meta
from imgsearch.search_client import backend_errors
from indexer import bulk, lifecycle

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

logger = logging.getLogger(__name__)

Progress = Callable[[float], None]
_COPY_BATCH = 500


@dataclass(frozen=True)
class FinetuneRequest:
    """What to learn from: a label field, augmentation pairs, or both."""

    vector_field: str | None = None  # default: the field image queries use
    label_field: str | None = None
    augment: bool = False
    max_pairs: int = 2000
    settings: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class FinetuneOutcome:
    """``tuned``: a new version is live; ``unchanged``: the adapter did not help (or the
    previous run had already swapped), nothing moved."""

    status: str
    index: str
    vector_field: str
    adapter_id: str | None
    training: dict[str, object]
    documents: int = 0

    def as_state(self) -> dict[str, object]:
        return {
            "outcome": self.status,
            "index": self.index,
            "vector_field": self.vector_field,
            "adapter": self.adapter_id,
            "documents": self.documents,
            "training": self.training,
        }


def live_index(client: OpenSearch, config: EngineConfig) -> str:
    current = lifecycle.alias_indexes(client, config.alias)
    if len(current) != 1:
        raise InvalidRequest(
            f"collection {config.hashid!r} has no index yet: add images before fine-tuning"
        )
    return current[0]


def finetune_collection(
    client: OpenSearch,
    config: EngineConfig,
    base: Embedder,
    store: AdapterStore,
    request: FinetuneRequest,
    *,
    progress: Progress,
    from_index: str | None = None,
    limits: ImageLimits | None = None,
    image_root: Path | None = None,
) -> FinetuneOutcome:
    """Train, and when the adapter helps, rebuild and swap. ``base`` is the frozen embedder
    of the vector field (the engine config's); ``progress`` may raise to cancel;
    ``image_root`` is where relative image paths (as a folder or CSV feed stored them) are,
    for augmentation pairs."""
    field_name = request.vector_field or config.query_vector_field
    spec = config.vectors.get(field_name)
    if spec is None or spec.embedder not in KNN_EMBEDDERS:
        raise InvalidRequest(f"{field_name!r} is not a clip or color vector field")
    if request.label_field is None and not request.augment:
        raise InvalidRequest("fine-tuning needs a label field or augmentation pairs")
    if request.label_field is not None and request.label_field not in config.fields:
        raise InvalidRequest(f"label field {request.label_field!r} is not a field of the engine")
    index = live_index(client, config)
    if from_index is not None and index != from_index:
        logger.info("%s already moved from %s to %s: nothing left to do", config.alias,
                    from_index, index)  # fmt: skip
        return FinetuneOutcome("unchanged", index, field_name, None,
                               {"note": f"already done: {index} is live"})  # fmt: skip
    recorded = _recorded(client, index)
    current = _current_adapter(recorded, field_name, base.info, store)
    progress(0.02)
    ids, vectors, labels, urls = _read_vectors(client, index, field_name, request.label_field)
    if not ids:
        raise InvalidRequest(f"collection {config.hashid!r} is empty: nothing to fine-tune on")
    pair_vectors, pair_rows = None, None
    if request.augment:
        embedder = adapt(base, current)
        sources = [_image_source(url, image_root) for url in urls]
        pair_vectors, pair_rows = _pairs(sources, embedder, request, limits or ImageLimits(),
                                         lambda f: progress(0.05 + 0.2 * f))  # fmt: skip
    progress(0.25)
    data = TrainData(vectors, labels, pair_vectors, pair_rows)
    result = train_adapter(data, request.settings, progress=lambda f: progress(0.25 + 0.35 * f))
    training = result.summary()
    if result.stage is None:
        return FinetuneOutcome("unchanged", index, field_name, None, training)
    base_adapter = current or Adapter.identity(base.info.version, base.info.dim)
    adapter = base_adapter.then(result.stage)
    adapter_id = store.save(adapter, training)
    infos = {**recorded, field_name: replace(base.info, version=adapter.version)}
    target = lifecycle.prepare_target(client, config, infos, rebuild=True)
    written = _copy(client, index, target.index, field_name, result,
                    lambda f: progress(0.6 + 0.38 * f))  # fmt: skip
    bulk.refresh(client, target.index)
    lifecycle.swap_alias(client, config.alias, target.index, config.retain_versions)
    return FinetuneOutcome("tuned", target.index, field_name, adapter_id, training, written)


def _recorded(client: OpenSearch, index: str) -> dict[str, EmbedderInfo]:
    with backend_errors():
        mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    return vector_meta(mapping.get("_meta", {}))


def _current_adapter(
    recorded: dict[str, EmbedderInfo], field_name: str, base: EmbedderInfo, store: AdapterStore
) -> Adapter | None:
    """The adapter the live index was written through (``None``: the bare base embedder)."""
    theirs = recorded.get(field_name)
    if theirs is None:
        raise EmbedderMismatch(f"the index records no embedder for {field_name!r}")
    base_version, adapter_id = split_version(theirs.version)
    if (theirs.embedder, base_version, theirs.dim) != (base.embedder, base.version, base.dim):
        raise EmbedderMismatch(
            f"field {field_name!r} was written by {theirs.embedder} {base_version} (dim "
            f"{theirs.dim}); the engine has {base.embedder} {base.version} (dim {base.dim}). "
            "Rebuild the index before fine-tuning."
        )
    return store.load(adapter_id) if adapter_id else None


def _read_vectors(
    client: OpenSearch, index: str, field_name: str, label_field: str | None
) -> tuple[list[str], npt.NDArray[np.float32], list[str | None] | None, list[str]]:
    fields = [field_name, "image_url", *([label_field] if label_field else [])]
    ids, rows, labels, urls = [], [], [], []
    for doc_id, source in bulk.scan_sources(client, index, fields):
        vector = source.get(field_name)
        if not isinstance(vector, list):
            continue
        ids.append(doc_id)
        rows.append(vector)
        urls.append(str(source.get("image_url") or ""))
        if label_field:
            value = source.get(label_field)
            labels.append(_label(value))
    matrix = np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
    return ids, matrix, (labels if label_field else None), urls


def _label(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def _image_source(url: str, root: Path | None) -> str:
    """Where to read an item's image: URLs and absolute paths as stored, relative paths
    under ``root`` (the folder or media directory they are relative to)."""
    if not url or root is None or "://" in url or Path(url).is_absolute():
        return url
    return str(root / url)


def _pairs(
    urls: list[str], embedder: Embedder, request: FinetuneRequest, limits: ImageLimits,
    progress: Progress,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:  # fmt: skip
    """Embedded augmented copies of (a seeded sample of) the items, and whose copies they are."""
    rng = np.random.default_rng(request.settings.seed)
    candidates = [i for i, url in enumerate(urls) if url]
    if len(candidates) > request.max_pairs:
        candidates = sorted(rng.choice(candidates, request.max_pairs, replace=False).tolist())
    rows: list[int] = []
    copies: list[npt.NDArray[np.float32]] = []
    batch: list[tuple[int, Any]] = []

    def flush() -> None:
        if batch:
            copies.append(embedder.embed_images([image for _, image in batch]))
            rows.extend(row for row, _ in batch)
            batch.clear()

    for done, row in enumerate(candidates):
        try:
            image = decode_image(fetch_image_bytes(urls[row], limits), limits)
        except ImgSearchError as exc:  # a vanished image only costs its pair
            logger.warning("no augmented copy of %s: %s", urls[row], exc.message)
            continue
        batch.append((row, augmented_copy(image, rng)))
        if len(batch) == 32:
            flush()
            progress(done / len(candidates))
    flush()
    if not rows:
        raise InvalidRequest("no image of the collection could be read for augmentation")
    dim = copies[0].shape[1]
    return np.concatenate(copies).reshape(-1, dim), np.asarray(rows, dtype=np.int64)


def _copy(
    client: OpenSearch,
    source_index: str,
    target_index: str,
    field_name: str,
    result: TrainResult,
    progress: Progress,
) -> int:
    """Every document of ``source_index`` into ``target_index``, the field mapped through the
    newly learnt stage (the stored vectors already carry any earlier adapter)."""
    assert result.stage is not None
    stage = result.stage
    with backend_errors():
        total = int(client.count(index=source_index)["count"]) or 1
    written = 0
    failures: list[str] = []

    def actions() -> Iterator[dict[str, Any]]:
        nonlocal written
        docs: list[tuple[str, dict[str, Any]]] = []
        for doc in bulk.scan_sources(client, source_index, ["*"]):
            docs.append(doc)
            if len(docs) == _COPY_BATCH:
                yield from _mapped(docs, target_index, field_name, stage)
                written += len(docs)
                progress(written / total)
                docs = []
        yield from _mapped(docs, target_index, field_name, stage)
        written += len(docs)

    for doc_id, error in bulk.bulk_write(client, actions(), bulk.BulkSettings()):
        if error is not None:
            failures.append(f"{doc_id}: {error}")
    if failures:
        raise ImgSearchError(
            f"{len(failures)} document(s) could not be written to {target_index} "
            f"(first: {failures[0]}); the alias was not moved"
        )
    progress(1.0)
    return written


def _mapped(
    docs: list[tuple[str, dict[str, Any]]],
    index: str,
    field_name: str,
    stage: Stage,
) -> Iterator[dict[str, Any]]:
    with_vector = [i for i, (_, doc) in enumerate(docs) if isinstance(doc.get(field_name), list)]
    if with_vector:
        rows = np.asarray([docs[i][1][field_name] for i in with_vector], dtype=np.float32)
        mapped = stage.apply(rows)
        for i, row in zip(with_vector, mapped, strict=True):
            docs[i][1][field_name] = [float(x) for x in row]
    for doc_id, source in docs:
        yield {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}
