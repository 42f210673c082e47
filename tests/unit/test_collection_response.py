"""The collection API's pure formatting: info (fine-tuning state from the jobs index),
the list, and hits."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.dialects.collection import response as r
from gateway.search.model import Hit
from imgsearch.engine_config import EngineConfig

T0 = "2026-11-27T10:00:00+00:00"
T1 = "2026-11-27T11:00:00+00:00"


@pytest.mark.parametrize(
    ("images", "content_modified", "finetune", "requires", "last", "progress"),
    [
        (0, T0, None, False, None, 0.0),  # nothing to fine-tune on
        (5, T0, None, True, None, 0.0),  # never fine-tuned
        (5, T0, {"status": "running", "progress": 0.25}, True, None, 0.25),
        (5, T0, {"status": "queued", "progress": 0.0}, True, None, 0.0),
        (5, T0, {"status": "done", "progress": 1.0, "finished_at": T1}, False, T1, 1.0),
        (5, T1, {"status": "done", "progress": 1.0, "finished_at": T0}, True, T0, 1.0),
        (5, T1, {"status": "done", "finished_at": "2026-11-27T12:00:00Z"}, False,
         "2026-11-27T12:00:00Z", 1.0),  # another ISO spelling of UTC
        (5, T0, {"status": "failed", "progress": 0.5, "error": "x", "finished_at": T1}, True,
         None, 0.5),
        (5, T0, {"status": "cancelled", "progress": 0.1, "finished_at": T1}, True, None, 0.1),
    ],
)  # fmt: skip
def test_finetuning_fields(
    images: int, content_modified: str, finetune: dict[str, Any] | None, requires: bool,
    last: str | None, progress: float,
) -> None:  # fmt: skip
    info = r.info(
        collection_id=3, name="Maps", heidicon_tag=None, read_access="open", last_modified=T0,
        content_modified=content_modified, number_of_images=images, content=None,
        finetune=finetune,
    )  # fmt: skip
    assert info["requires_finetuning"] is requires
    assert info["last_finetuned"] == last
    assert info["finetuning_progess"] == pytest.approx(progress)
    reference = {"number_of_images", "requires_finetuning", "name", "last_modified",
                 "last_finetuned", "finetuning_progess", "heidicon_tag", "id"}  # fmt: skip
    assert reference <= set(info)


def test_list_and_errors() -> None:
    assert r.collection_list([(1, "A"), (4, "B")]) == {
        "ids": [1, 4],
        "names": [{"value": 1, "id": 1, "name": "A"}, {"value": 4, "id": 4, "name": "B"}],
    }
    assert r.error_body(400, "Collection 9 not found") == {
        "error": "Collection 9 not found", "status": 400,
    }  # fmt: skip


def test_a_hit_carries_id_image_fields_score_and_distance() -> None:
    config = EngineConfig.model_validate(
        {"hashid": "c", "alias": "c", "fields": {"title": {"type": "text"}},
         "vectors": {"color": {"embedder": "color"}}}
    )  # fmt: skip
    hit = Hit("p1", 1.0, {"title": "T", "image_url": "a.jpg", "content_hash": "x", "id": "p1"})
    assert r.search_result(hit, config) == {
        "id": "p1", "image": "a.jpg", "title": "T", "score": 1.0, "distance": 0.0,
    }  # fmt: skip
    far = r.search_result(Hit("p2", 0.5, {}), config)
    assert far["distance"] == pytest.approx(2**0.5) and far["image"] is None
