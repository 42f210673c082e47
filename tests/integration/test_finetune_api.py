"""Fine-tuning a collection on the real node: it helps on held-out photos, the alias swaps and
queries go through the adapter, searches keep working during the job, the guard refuses a
mismatched pair, empty/unknown collections and wrong keys, cancel, and a restart mid-job.

The collection's vector field is the colour descriptor (no weights needed). The photos are
synthetic and built so that the answer is known: three quarters of each photo is a random
"nuisance" colour, one quarter the colour that is its label. The untuned histogram is ruled
by the nuisance; an adapter that learns to weigh the label's colours up finds the label.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch
from PIL import Image

from gateway.service.sync_jobs import JOBS_INDEX
from gateway.settings import GatewaySettings
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.finetune.adapter import split_version
from imgsearch.images import decode_image
from imgsearch.mapping import vector_meta
from tests.integration.collection_fixtures import Keys, b64, gateway
from tests.tolerance import SCORE_ATOL, assert_same_vector, cosine

WAIT_S = 120.0
LABELS = {"red": (200, 30, 30), "green": (30, 160, 40), "blue": (30, 50, 200),
          "yellow": (230, 210, 40)}  # fmt: skip
TRAIN_PER_LABEL = 30
QUERIES_PER_LABEL = 8
# The fine-tuned precision@10 must beat the untuned one by at least this much (absolute); on
# this data the untuned one is near chance (0.25 for four labels).
MARGIN = 0.2


def photo(label: str, rng: np.random.Generator) -> Image.Image:
    """Nuisance colour on the left three quarters, the label's colour on the right quarter,
    both with pixel noise (so no border is uniform and nothing is taken for a background)."""
    pixels = np.empty((48, 64, 3), dtype=np.float64)
    pixels[:, :48] = rng.integers(0, 256, 3)
    pixels[:, 48:] = LABELS[label]
    pixels += rng.normal(scale=12.0, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("finetune-media")
    rng = np.random.default_rng(0)
    for label in LABELS:
        (folder / label).mkdir()
        for i in range(TRAIN_PER_LABEL + QUERIES_PER_LABEL):
            photo(label, rng).save(folder / label / f"{i:03d}.png")
    return folder


def collection_photos(media: Path) -> list[Path]:
    return [media / lab / f"{i:03d}.png" for lab in LABELS for i in range(TRAIN_PER_LABEL)]


def query_photos(media: Path) -> list[Path]:
    queries = range(TRAIN_PER_LABEL, TRAIN_PER_LABEL + QUERIES_PER_LABEL)
    return [media / label / f"{i:03d}.png" for label in LABELS for i in queries]


def labelled_csv(media: Path, paths: list[Path] | None = None) -> str:
    rows = ["id,image,category"]
    for path in paths if paths is not None else collection_photos(media):
        rows.append(f"{path.parent.name}-{path.stem},{path.relative_to(media)},{path.parent.name}")
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def settings(
    opensearch_url: str, tmp_path_factory: pytest.TempPathFactory, media: Path
) -> GatewaySettings:
    template = tmp_path_factory.mktemp("finetune-template") / "template.json"
    template.write_text(json.dumps({
        "hashid": "template", "alias": "template", "category_from_folder": None,
        "fields": {"category": {"type": "keyword", "facet": True}},
        "vectors": {"color": {"embedder": "color"}},
        "gateway": {"k": 50},
    }))  # fmt: skip
    return GatewaySettings(
        opensearch_url=opensearch_url, collection_template=template,
        collection_media_dir=media, engine_ttl_s=0.2, job_poll_s=0.3,
    )  # fmt: skip


def wait_for(api: TestClient, collection_id: int, job: str) -> dict[str, Any]:
    """The collection's info once its ``job`` (content_update / finetuning) has ended."""
    deadline = time.monotonic() + WAIT_S
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = api.get(f"/api/collection/{collection_id}/info").json()
        if (info.get(job) or {}).get("status") in ("done", "failed", "cancelled"):
            return info
        time.sleep(0.2)
    raise AssertionError(f"{job} of {collection_id} did not end: {info}")


def fill(api: TestClient, collection_id: int, media: Path, key: str) -> None:
    body = {"content": b64(labelled_csv(media))}
    sent = api.post(f"/api/collection/{collection_id}/updatecontent", json=body,
                    headers={"API-Key": key})  # fmt: skip
    assert sent.status_code == 200, sent.text
    info = wait_for(api, collection_id, "content_update")
    assert info["number_of_images"] == len(LABELS) * TRAIN_PER_LABEL, info


def finetune(api: TestClient, collection_id: int, key: str, **body: Any) -> dict[str, Any]:
    sent = api.post(f"/api/collection/{collection_id}/finetune", json=body or None,
                    headers={"API-Key": key})  # fmt: skip
    assert sent.status_code == 200, sent.text
    return wait_for(api, collection_id, "finetuning")


def search(api: TestClient, collection_id: int, path: Path) -> list[dict[str, Any]]:
    body = {"image": base64.b64encode(path.read_bytes()).decode(), "limit": 10}
    found = api.post(f"/api/collection/{collection_id}/search", json=body)
    assert found.status_code == 200, found.text
    return list(found.json()["results"])


def precision_at_10(api: TestClient, collection_id: int, media: Path) -> float:
    shares = []
    for path in query_photos(media):
        results = search(api, collection_id, path)
        assert len(results) == 10
        shares.append(np.mean([hit["category"] == path.parent.name for hit in results]))
    return float(np.mean(shares))


def live(os_client: OpenSearch, collection_id: int) -> tuple[str, dict[str, Any]]:
    alias = f"imgsearch-collection-{collection_id}"
    index = next(iter(os_client.indices.get_alias(name=alias)))
    mapping = os_client.indices.get_mapping(index=index)[index]["mappings"]
    return index, mapping


def version_number(index: str) -> int:
    return int(index.rsplit("_v", 1)[1])


def stored_vectors(os_client: OpenSearch, index: str) -> dict[str, list[float]]:
    hits = os_client.search(index=index, body={"size": 1000, "_source": ["color"]})["hits"]
    return {hit["_id"]: hit["_source"]["color"] for hit in hits["hits"]}


def test_finetuning_helps_and_queries_go_through_the_adapter(
    served: tuple[FastAPI, TestClient], admin: str, collection: int, media: Path,
    os_client: OpenSearch,
) -> None:  # fmt: skip
    app, api = served
    fill(api, collection, media, admin)
    before = precision_at_10(api, collection, media)
    old_index, _ = live(os_client, collection)
    old_vectors = stored_vectors(os_client, old_index)
    assert api.get(f"/api/collection/{collection}/info").json()["requires_finetuning"] is True

    info = finetune(api, collection, admin)
    state = info["finetuning"]
    assert state["status"] == "done", state
    assert state["outcome"] == "tuned", state
    assert info["finetuning_progess"] == 1.0
    assert info["requires_finetuning"] is False and info["last_finetuned"] == state["finished_at"]

    # the alias moved to a new version written through the adapter
    new_index, mapping = live(os_client, collection)
    assert version_number(new_index) == version_number(old_index) + 1
    recorded = vector_meta(mapping["_meta"])["color"]
    base_version, adapter_id = split_version(recorded.version)
    assert base_version == ColorEmbedder().info.version
    assert adapter_id == state["adapter"]
    adapter = app.state.service.adapters.load(adapter_id)
    new_vectors = stored_vectors(os_client, new_index)
    assert set(new_vectors) == set(old_vectors)
    ids = sorted(old_vectors)
    mapped = adapter.apply(np.asarray([old_vectors[i] for i in ids], dtype=np.float32))
    for doc_id, want in zip(ids, mapped, strict=True):
        assert_same_vector(new_vectors[doc_id], want)

    # it helps on photos it never saw
    after = precision_at_10(api, collection, media)
    assert after >= before + MARGIN, (before, after)

    # a query is embedded as adapter(base(photo)): scores are cosines to that vector
    query = query_photos(media)[0]
    expected = adapter.apply(ColorEmbedder().embed_images([decode_image(query.read_bytes())]))[0]
    engine = app.state.service.registry.get(f"collection-{collection}")
    assert_same_vector(engine.embedder("color").embed_images(
        [decode_image(query.read_bytes())])[0], expected)  # fmt: skip
    for hit in search(api, collection, query):
        doc = f"{hit['category']}-{Path(hit['image']).stem}"
        want = (1 + cosine(expected, new_vectors[doc])) / 2
        assert abs(hit["score"] - want) <= SCORE_ATOL, (hit, want)


def test_searches_keep_working_while_a_job_swaps_the_alias(
    api: TestClient, admin: str, collection: int, media: Path, os_client: OpenSearch
) -> None:
    fill(api, collection, media, admin)
    old_index, _ = live(os_client, collection)
    statuses: list[int] = []
    stop = threading.Event()
    query = {"image": base64.b64encode(query_photos(media)[0].read_bytes()).decode()}

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(api.post(f"/api/collection/{collection}/search", json=query)
                            .status_code)  # fmt: skip

    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        state = finetune(api, collection, admin)["finetuning"]
        time.sleep(1.5)  # past the gateway's re-check of the live index
    finally:
        stop.set()
        worker.join()
    assert state["outcome"] == "tuned", state
    assert live(os_client, collection)[0] != old_index
    assert len(statuses) > 5 and set(statuses) == {200}, sorted(set(statuses))


def test_the_guard_refuses_an_index_whose_adapter_is_not_the_gateways(
    api: TestClient, admin: str, collection: int, media: Path, os_client: OpenSearch
) -> None:
    fill(api, collection, media, admin)
    assert finetune(api, collection, admin)["finetuning"]["outcome"] == "tuned"
    index, mapping = live(os_client, collection)
    meta = mapping["_meta"]
    base = ColorEmbedder().info.version
    query = {"image": base64.b64encode(query_photos(media)[0].read_bytes()).decode()}
    for version, words in [
        (f"{base}+adapter:{'0' * 64}", "is not in imgsearch-adapters"),
        (f"color-other-v9+adapter:{split_version(meta['vectors']['color']['version'])[1]}",
         "was written by"),
    ]:  # fmt: skip
        meta["vectors"]["color"]["version"] = version
        os_client.indices.put_mapping(index=index, body={"_meta": meta})
        time.sleep(1.2)  # the gateway re-checks the live index every second
        refused = api.post(f"/api/collection/{collection}/search", json=query)
        assert refused.status_code == 409, refused.text
        assert words in refused.json()["error"]


def test_a_collection_without_labels_learns_from_augmented_copies(
    api: TestClient, admin: str, collection: int, media: Path
) -> None:
    """No label column: the job fetches every photo from the media folder, embeds an
    augmented copy and trains on the pairs (the guard decides whether the adapter stays)."""
    text = "id,image\n" + "".join(
        f"{p.parent.name}-{p.stem},{p.relative_to(media)}\n" for p in collection_photos(media)
    )
    sent = api.post(f"/api/collection/{collection}/updatecontent", json={"content": b64(text)},
                    headers={"API-Key": admin})  # fmt: skip
    assert sent.status_code == 200
    assert wait_for(api, collection, "content_update")["number_of_images"] == 120
    state = finetune(api, collection, admin)["finetuning"]
    assert state["status"] == "done", state
    assert state["outcome"] in ("tuned", "unchanged")
    training = state["training"]
    assert training["metric"] == "copy recall@1" and training["items"] == 120, training


def test_finetuning_an_empty_collection_is_a_clear_400(
    api: TestClient, admin: str, collection: int
) -> None:
    sent = api.post(f"/api/collection/{collection}/finetune", headers={"API-Key": admin})
    assert sent.status_code == 400
    assert "empty" in sent.json()["error"]


def test_bad_finetune_requests(
    api: TestClient, keys: Keys, admin: str, collection: int, media: Path
) -> None:
    fill(api, collection, media, admin)
    url = f"/api/collection/{collection}/finetune"
    unknown_collection = api.post("/api/collection/987654/finetune", headers={"API-Key": admin})
    assert unknown_collection.status_code == 400
    assert api.post(url).status_code == 403
    assert api.post(url, headers={"API-Key": "wrong"}).status_code == 403
    reader = keys.make("read")
    assert api.post(url, headers={"API-Key": reader}).status_code == 403
    other = keys.make("write", [collection + 1000])
    assert api.post(url, headers={"API-Key": other}).status_code == 403
    unknown = api.post(url, json={"label_field": "colour"}, headers={"API-Key": admin})
    assert unknown.status_code == 400 and "colour" in unknown.json()["error"]
    extra = api.post(url, json={"steps": 5}, headers={"API-Key": admin})
    assert extra.status_code == 400
    info = api.get(f"/api/collection/{collection}/info").json()
    assert info["finetuning"] is None, "no refused request started a job"


def test_a_cancelled_finetuning_leaves_the_index_alone(
    api: TestClient, admin: str, collection: int, media: Path, os_client: OpenSearch
) -> None:
    fill(api, collection, media, admin)
    old_index, _ = live(os_client, collection)
    url = f"/api/collection/{collection}/finetune"
    assert api.post(url, headers={"API-Key": admin}).status_code == 200
    again = api.post(url, headers={"API-Key": admin})
    assert again.status_code == 409, "one fine-tuning at a time"
    cancelled = api.post(f"/api/collection/{collection}/cancel", headers={"API-Key": admin})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] == ["finetune"]
    state = wait_for(api, collection, "finetuning")["finetuning"]
    assert state["status"] == "cancelled", state
    assert live(os_client, collection)[0] == old_index


def test_a_finetuning_interrupted_by_a_restart_is_run_again(
    settings: GatewaySettings, api: TestClient, admin: str, collection: int, media: Path,
    os_client: OpenSearch,
) -> None:  # fmt: skip
    """A gateway that stopped mid-job leaves a running job with an old heartbeat; the next
    gateway claims it and runs it again from its params."""
    fill(api, collection, media, admin)
    old_index, _ = live(os_client, collection)
    hashid = f"collection-{collection}"
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    os_client.index(index=JOBS_INDEX, id=f"finetune:{hashid}", refresh=True, body={
        "kind": "finetune", "status": "running", "progress": 0.5, "owner": "a-stopped-gateway",
        "heartbeat": long_ago, "queued_at": long_ago, "started_at": long_ago,
        "finished_at": None, "error": None,
        "params": {"label_field": "category", "augment": False, "seed": 0,
                   "from_index": old_index},
    })  # fmt: skip
    with gateway(settings) as (_, restarted):
        state = wait_for(restarted, collection, "finetuning")["finetuning"]
    assert state["status"] == "done" and state["outcome"] == "tuned", state
    assert live(os_client, collection)[0] != old_index


def test_a_restart_after_the_swap_does_not_tune_twice(
    settings: GatewaySettings, api: TestClient, admin: str, collection: int, media: Path,
    os_client: OpenSearch,
) -> None:  # fmt: skip
    fill(api, collection, media, admin)
    old_index, _ = live(os_client, collection)
    assert finetune(api, collection, admin)["finetuning"]["outcome"] == "tuned"
    tuned_index, _ = live(os_client, collection)
    hashid = f"collection-{collection}"
    doc = os_client.get(index=JOBS_INDEX, id=f"finetune:{hashid}")["_source"]
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    doc.update(status="running", heartbeat=long_ago, owner="a-stopped-gateway")
    doc["params"]["from_index"] = old_index
    os_client.index(index=JOBS_INDEX, id=f"finetune:{hashid}", body=doc, refresh=True)
    with gateway(settings) as (_, restarted):
        state = wait_for(restarted, collection, "finetuning")["finetuning"]
    assert state["status"] == "done" and state["outcome"] == "unchanged", state
    assert live(os_client, collection)[0] == tuned_index
