"""Collection records, job states and hits → the collection API's JSON. Pure.

Errors are ``{"error": "<message>", "status": <HTTP status>}``. ``score`` is the cosine
similarity mapped to [0, 1] (``(1 + cos) / 2``, higher is more similar) and ``distance``
the Euclidean distance of the unit embeddings (``sqrt(2 - 2 cos)``, 0 = the same picture).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.search.distances import distance_from_score
from gateway.search.model import Hit
from imgsearch.engine_config import EngineConfig

IMAGE_URL_FIELD = "image_url"


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}


def collection_list(collections: list[tuple[int, str]]) -> dict[str, Any]:
    """``ids`` and ``names`` (``value`` is the id, for a select box's options)."""
    return {
        "ids": [cid for cid, _ in collections],
        "names": [{"value": cid, "id": cid, "name": name} for cid, name in collections],
    }


def _finished(state: dict[str, Any] | None) -> str | None:
    """When the last fine-tuning finished, if it succeeded."""
    if state is None or state.get("status") != "done":
        return None
    finished = state.get("finished_at")
    return str(finished) if finished else None


def requires_finetuning(
    number_of_images: int, content_modified: str | None, finetune: dict[str, Any] | None
) -> bool:
    """Content never fine-tuned on, or changed after the last fine-tuning finished."""
    if number_of_images == 0:
        return False
    finished = _finished(finetune)
    if finished is None:
        return True
    if content_modified is None:
        return False
    return datetime.fromisoformat(content_modified) > datetime.fromisoformat(finished)


def finetuning_progress(finetune: dict[str, Any] | None) -> float:
    if finetune is None:
        return 0.0
    if finetune.get("status") == "done":
        return 1.0
    return float(finetune.get("progress") or 0.0)


def content_update(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last content update: status, progress, counts and the rows that failed."""
    if state is None:
        return None
    keys = ("status", "progress", "queued_at", "started_at", "finished_at", "error", "rows",
            "indexed", "failed", "problems")  # fmt: skip
    return {key: state.get(key) for key in keys}


def finetuning(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """The last fine-tuning: status, progress, times, error and its outcome (``tuned`` with
    the adapter and new index, or ``unchanged`` with the held-out numbers that kept the
    untuned model); see docs/finetuning.md."""
    if state is None:
        return None
    keys = ("status", "progress", "queued_at", "started_at", "finished_at", "error", "outcome",
            "adapter", "index", "documents", "training")  # fmt: skip
    return {key: state.get(key) for key in keys}


def info(
    *,
    collection_id: int,
    name: str,
    heidicon_tag: str | None,
    read_access: str,
    last_modified: str,
    content_modified: str | None,
    number_of_images: int,
    content: dict[str, Any] | None,
    finetune: dict[str, Any] | None,
) -> dict[str, Any]:
    """The reference's fields (``finetuning_progess`` sic), plus ``content_update``,
    ``finetuning`` and ``read_access``."""
    return {
        "id": collection_id,
        "name": name,
        "heidicon_tag": heidicon_tag,
        "number_of_images": number_of_images,
        "requires_finetuning": requires_finetuning(number_of_images, content_modified, finetune),
        "last_modified": last_modified,
        "last_finetuned": _finished(finetune),
        "finetuning_progess": finetuning_progress(finetune),
        "read_access": read_access,
        "content_update": content_update(content),
        "finetuning": finetuning(finetune),
    }


def search_result(hit: Hit, config: EngineConfig) -> dict[str, Any]:
    """One hit: id, score, distance, the image as uploaded and the row's fields."""
    fields = {name: hit.source[name] for name in config.fields if name in hit.source}
    return {
        **fields,
        config.id_field: hit.id,
        config.image_field: hit.source.get(IMAGE_URL_FIELD),
        "score": hit.score,
        "distance": distance_from_score(hit.score),
    }
