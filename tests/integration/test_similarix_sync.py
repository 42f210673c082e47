"""Similarix API and folder/bucket sync on the real node, with a real S3 server on loopback.

The S3 server is moto's (``moto[server]``, installed from PyPI by the project's set-up): it
speaks S3 over HTTP with listings, pagination and ETags, which is all the sync uses.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer
from opensearchpy import OpenSearch
from PIL import Image

import gateway.service.sync_jobs as sync_jobs
from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.images import decode_image
from imgsearch.sources import collection_uuid, file_uuid
from tests.fixtures_clip import tiny_clip_spec
from tests.ports import free_port
from tests.tolerance import assert_same_vector, ranking_problems, tie_runs

pytestmark = pytest.mark.integration

TOKEN = "sx-token"
AUTH = {"Authorization": f"Token {TOKEN}"}
BUCKET = "media"


def _engine(hashid: str, checkpoint: Path, source: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": hashid,
            "alias": f"it-{hashid}",
            "vectors": {
                "clip": tiny_clip_spec(checkpoint),
            },
            "gateway": {"tokens": [TOKEN]},
            "source": source,
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def s3(monkeypatch_module: pytest.MonkeyPatch) -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch_module.setenv(name, value)
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


class World:
    def __init__(self, client: TestClient, s3: Any, photos: list[Path], folder: Path,
                 configs: dict[str, EngineConfig]) -> None:  # fmt: skip
        self.client, self.s3, self.photos, self.folder, self.configs = (
            client,
            s3,
            photos,
            folder,
            configs,
        )

    def sync(self, hashid: str, timeout_s: float = 180) -> dict[str, Any]:
        uuid = collection_uuid(hashid)
        response = self.client.post(f"/api/collections/{uuid}/sync/", headers=AUTH)
        assert response.status_code == 202, response.text
        return self.wait(hashid, timeout_s)

    def wait(self, hashid: str, timeout_s: float = 180) -> dict[str, Any]:
        uuid = collection_uuid(hashid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.client.get(f"/api/collections/{uuid}/sync-status/", headers=AUTH).json()
            if state["result"]["status"] in ("completed", "failed"):
                return dict(state["result"])
            time.sleep(0.2)
        raise AssertionError(f"sync of {hashid} did not finish in {timeout_s} s")


@pytest.fixture(scope="module")
def world(
    s3: str,
    opensearch_url: str,
    os_client: OpenSearch,
    clothing_dataset: Path,
    tiny_clip_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    photos = sorted((clothing_dataset / "validation").rglob("*.jpg"))[::25][:14]
    bucket = boto3.client("s3", endpoint_url=s3)
    bucket.create_bucket(Bucket=BUCKET)
    for path in photos[:10]:
        bucket.put_object(Bucket=BUCKET, Key=f"images/{path.name}", Body=path.read_bytes())
    bucket.put_object(Bucket=BUCKET, Key="images/notes.txt", Body=b"not an image, not listed")
    bucket.put_object(Bucket=BUCKET, Key="images/broken.jpg", Body=b"\xff\xd8 truncated")
    bucket.put_object(Bucket=BUCKET, Key="elsewhere/outside.jpg", Body=photos[11].read_bytes())
    folder = tmp_path_factory.mktemp("library")
    for path in photos[:6]:
        (folder / "sub").mkdir(exist_ok=True)
        shutil.copyfile(path, folder / "sub" / path.name)
    configs = {
        "s3col": _engine("s3col", tiny_clip_checkpoint,
                         {"type": "s3", "bucket": BUCKET, "prefix": "images/", "endpoint_url": s3}),
        "dircol": _engine("dircol", tiny_clip_checkpoint, {"type": "folder", "path": str(folder)}),
        "gone": _engine("gone", tiny_clip_checkpoint,
                        {"type": "s3", "bucket": BUCKET, "endpoint_url": "http://127.0.0.1:9"}),
    }  # fmt: skip
    for config in configs.values():
        os_client.indices.delete(index=f"{config.alias}_v*", ignore_unavailable=True)
        os_client.delete(index=sync_jobs.JOBS_INDEX, id=f"sync:{config.hashid}", ignore=[404])
    settings = GatewaySettings(opensearch_url=opensearch_url)
    with TestClient(create_app(settings, configs), raise_server_exceptions=False) as client:
        yield World(client, bucket, photos, folder, configs)
    for config in configs.values():
        os_client.indices.delete(index=f"{config.alias}_v*", ignore_unavailable=True)


def stored(os_client: OpenSearch, alias: str) -> dict[str, dict[str, Any]]:
    hits = os_client.search(index=alias, body={"size": 100})["hits"]["hits"]
    return {h["_id"]: h["_source"] for h in hits}


def test_bucket_sync_then_search(world: World, os_client: OpenSearch) -> None:
    state = world.sync("s3col")
    assert state["status"] == "completed", state
    assert state["progress"]["indexed"] == 10 and state["progress"]["failed"] == 1, state
    assert "1 file(s)" in state["error"] and state["last_sync"]
    docs = stored(os_client, "it-s3col")
    assert set(docs) == {file_uuid("s3col", f"images/{p.name}") for p in world.photos[:10]}

    listed = world.client.get("/api/collections/", headers=AUTH).json()
    assert listed["success"] is True and listed["version"]
    entry = next(c for c in listed["result"]["collections"] if c["name"] == "s3col")
    assert entry["uuid"] == collection_uuid("s3col") and entry["bucket"] == BUCKET
    assert entry["stats"]["total_files"] == 10
    assert entry["stats"]["total_size"] == sum(p.stat().st_size for p in world.photos[:10])

    # text search: ranked by cosine distance to the text tower's embedding, over this bucket
    embedder = build_embedders(world.configs["s3col"])["clip"]
    query = embedder.embed_texts(["a red dress"])[0].astype(np.float64)
    uuid = collection_uuid("s3col")
    body = world.client.get("/api/search/", params={"query": "a red dress", "collection": uuid,
                                                    "limit": "5"}, headers=AUTH).json()  # fmt: skip
    assert body["info"] == {"files_count": 5, "search_type": "text", "query": "a red dress"}
    files = body["result"]["files"]
    scores = {
        i: (1 + float(np.asarray(d["clip"]) @ query / np.linalg.norm(d["clip"]))) / 2
        for i, d in docs.items()
    }
    ranked = sorted(scores, key=lambda i: (-scores[i], i))
    got = [f["uuid"] for f in files]
    got_scores = [1 - f["distance"] / 2 for f in files]
    assert not ranking_problems(got, got_scores, tie_runs(ranked, [scores[i] for i in ranked])[:5],
                                scores)  # fmt: skip
    top = files[0]
    by_name = {p.name: p for p in world.photos}
    original = by_name[top["file_name"]].read_bytes()
    assert top["md5"] == hashlib.md5(original).hexdigest() and top["file_size"] == len(original)
    assert top["s3_uri"] == f"s3://{BUCKET}/images/{top['file_name']}"
    download = world.client.get(top["download_url"].replace("http://testserver", ""), headers=AUTH)
    assert download.status_code == 200 and download.content == original
    thumb = world.client.get(top["thumbnail"].replace("http://testserver", ""), headers=AUTH)
    with Image.open(io.BytesIO(thumb.content)) as image:
        assert image.format == "JPEG" and max(image.size) <= 256

    # image search: the same picture comes first at distance ~0
    photo = world.photos[3]
    found = world.client.post("/api/search/", files={"file": (photo.name, photo.read_bytes())},
                              data={"collection": uuid}, headers=AUTH).json()  # fmt: skip
    assert found["info"]["search_type"] == "image"
    assert found["result"]["files"][0]["file_name"] == photo.name
    assert found["result"]["files"][0]["distance"] == pytest.approx(0.0, abs=1e-4)


def test_resync_indexes_changes_and_removes_deleted_files(
    world: World, os_client: OpenSearch
) -> None:
    if not stored(os_client, "it-s3col"):
        world.sync("s3col")
    before = stored(os_client, "it-s3col")
    p = world.photos
    world.s3.delete_object(Bucket=BUCKET, Key=f"images/{p[0].name}")
    world.s3.delete_object(Bucket=BUCKET, Key=f"images/{p[1].name}")
    world.s3.put_object(Bucket=BUCKET, Key=f"images/{p[2].name}", Body=p[12].read_bytes())
    world.s3.put_object(Bucket=BUCKET, Key=f"images/{p[13].name}", Body=p[13].read_bytes())
    state = world.sync("s3col")
    assert state["status"] == "completed", state
    assert state["progress"]["deleted"] == 2 and state["progress"]["indexed"] == 2, state
    after = stored(os_client, "it-s3col")
    key = lambda photo: file_uuid("s3col", f"images/{photo.name}")  # noqa: E731
    assert key(p[0]) not in after and key(p[1]) not in after and key(p[13]) in after
    embedder = build_embedders(world.configs["s3col"])["clip"]
    new_picture = embedder.embed_images([decode_image(p[12].read_bytes())])[0].tolist()
    assert_same_vector(after[key(p[2])]["clip"], new_picture, others=[before[key(p[2])]["clip"]])
    untouched = key(p[5])
    assert after[untouched]["indexed_at"] == before[untouched]["indexed_at"], "not rewritten"


def test_folder_sync_and_paths(world: World, os_client: OpenSearch) -> None:
    state = world.sync("dircol")
    assert state["status"] == "completed" and state["progress"]["indexed"] == 6, state
    detail = world.client.get(f"/api/collections/{collection_uuid('dircol')}/", headers=AUTH)
    assert detail.json()["result"]["collection"]["type"] == "folder"
    body = world.client.get("/api/search/", params={"query": "shoes", "collection": "dircol"},
                            headers=AUTH).json()  # fmt: skip
    first = body["result"]["files"][0]
    assert first["path"].startswith(str(world.folder)) and "s3_uri" not in first
    everywhere = world.client.get("/api/search/", params={"query": "shoes", "limit": "100"},
                                  headers=AUTH).json()["result"]["files"]  # fmt: skip
    uris = {f.get("path") or f.get("s3_uri") for f in everywhere}
    assert any(u.startswith("s3://") for u in uris) and any(u.startswith("/") for u in uris)
    distances = [f["distance"] for f in everywhere]
    assert distances == sorted(distances), "merged across collections by distance"


def test_a_running_sync_refuses_a_second_one(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    real = sync_jobs.sync_source

    def slow(*args: Any, **kwargs: Any) -> Any:
        release.wait(timeout=60)
        return real(*args, **kwargs)

    monkeypatch.setattr(sync_jobs, "sync_source", slow)
    uuid = collection_uuid("dircol")
    assert world.client.post(f"/api/collections/{uuid}/sync/", headers=AUTH).status_code == 202
    again = world.client.post(f"/api/collections/{uuid}/sync/", headers=AUTH)
    assert again.status_code == 409 and again.json()["success"] is False
    assert world.client.get(f"/api/collections/{uuid}/sync-status/", headers=AUTH).json()[
        "result"]["status"] == "in_progress"  # fmt: skip
    release.set()
    assert world.wait("dircol")["status"] == "completed"


def test_an_interrupted_sync_resumes_after_a_restart(
    world: World, os_client: OpenSearch, opensearch_url: str
) -> None:
    config = world.configs["dircol"]
    interrupted = {"status": "in_progress", "started": "2026-01-01T00:00:00+00:00"}
    os_client.index(
        index=sync_jobs.JOBS_INDEX, id="sync:dircol", params={"refresh": "true"}, body=interrupted
    )
    app = create_app(GatewaySettings(opensearch_url=opensearch_url), {"dircol": config})
    with TestClient(app) as client:
        restarted = World(client, world.s3, world.photos, world.folder, world.configs)
        assert restarted.wait("dircol")["status"] == "completed"


def test_unreachable_bucket_and_bad_input(world: World) -> None:
    state = world.sync("gone", timeout_s=120)
    assert state["status"] == "failed" and "cannot list" in state["error"], state
    client = world.client
    no_token = client.get("/api/collections/")
    assert no_token.status_code == 403 and no_token.json()["success"] is False
    assert (
        client.get("/api/collections/", headers={"Authorization": "Token nope"}).status_code == 403
    )
    assert client.get("/api/collections/nope/", headers=AUTH).status_code == 404
    for params in ({"query": "  "}, {"query": "x" * 10_000}, {}, {"query": "a", "limit": "0"}):
        bad = client.get("/api/search/", params=params, headers=AUTH)
        assert bad.status_code == 400 and bad.json()["info"]["error"], params
    missing = client.post("/api/search/", data={"collection": "s3col"}, headers=AUTH)
    assert missing.status_code == 400
    not_image = client.post("/api/search/", files={"file": ("x.jpg", b"nope")}, headers=AUTH)
    assert not_image.status_code == 400 and not_image.json()["success"] is False
