"""The collection API on the real node: keys, every route, bad input, a second gateway,
a restart during a content update, and search against a numpy brute-force ranking."""

from __future__ import annotations

import base64
import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.service.sync_jobs import JOBS_INDEX
from gateway.settings import GatewaySettings
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.images import decode_image
from tests.fixtures_clip import tiny_clip_spec
from tests.integration.collection_fixtures import Keys, b64, gateway
from tests.tolerance import ranking_problems, tie_runs

WAIT_S = 90.0


@pytest.fixture(scope="module")
def media(clothing_dataset: Path) -> Path:
    return clothing_dataset / "validation"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, tiny_clip_checkpoint: Path) -> Path:
    path = tmp_path_factory.mktemp("collections") / "template.json"
    body = {
        "hashid": "template",
        "alias": "template",
        "category_from_folder": None,
        "fields": {"category": {"type": "keyword", "facet": True}, "year": {"type": "number"}},
        "vectors": {"clip": tiny_clip_spec(tiny_clip_checkpoint)},
        "gateway": {"k": 50},
    }
    path.write_text(json.dumps(body))
    return path


@pytest.fixture(scope="module")
def settings(opensearch_url: str, template: Path, media: Path) -> GatewaySettings:
    return GatewaySettings(
        opensearch_url=opensearch_url,
        collection_template=template,
        collection_media_dir=media,
        engine_ttl_s=0.2,
        job_poll_s=0.3,
    )


def photos(media: Path, n: int) -> list[Path]:
    return sorted(media.rglob("*.jpg"))[:n]


def good_csv(media: Path, n: int) -> str:
    rows = ["id,image,category,year,title"]
    for i, path in enumerate(photos(media, n)):
        # a quoted comma, a doubled quote and a line break in cells
        title = f'"Print {i}, ""{path.parent.name}""\nsecond line"'
        rows.append(f"p{i:02d},{path.relative_to(media)},{path.parent.name},{1900 + i},{title}")
    return "\r\n".join(rows) + "\r\n"


def upload(api: TestClient, collection_id: int, text: str, key: str) -> dict[str, Any]:
    sent = api.post(
        f"/api/collection/{collection_id}/updatecontent",
        json={"content": b64(text)},
        headers={"API-Key": key},
    )
    assert sent.status_code == 200, sent.text
    return wait_done(api, collection_id)


def wait_done(api: TestClient, collection_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        info = api.get(f"/api/collection/{collection_id}/info").json()
        update = info.get("content_update") or {}
        if update.get("status") in ("done", "failed", "cancelled"):
            return dict(info)
        time.sleep(0.2)
    raise AssertionError(f"content update of {collection_id} did not finish: {info}")


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


# -- keys -----------------------------------------------------------------------------------


def test_verify_answers_200_for_a_key_and_403_otherwise(api: TestClient, keys: Keys) -> None:
    token = keys.make("read")
    assert api.post("/api/verify", headers={"API-Key": token}).status_code == 200
    for bad in (None, "", "nope", token[:-1] + ("A" if token[-1] != "A" else "B")):
        headers = {} if bad is None else {"API-Key": bad}
        answer = api.post("/api/verify", headers=headers)
        assert answer.status_code == 403, bad
        assert answer.json() == {"error": "Invalid API key", "status": 403}
    keys.store.revoke(token.split("_")[1])
    assert api.post("/api/verify", headers={"API-Key": token}).status_code == 403, "revoked"


def test_writes_need_a_write_key_for_that_collection(
    api: TestClient, keys: Keys, collection: int, admin: str
) -> None:
    rename = f"/api/collection/{collection}/updatename"
    scoped_here = keys.make("write", [collection])
    scoped_elsewhere = keys.make("write", [collection + 100_000])
    reader = keys.make("read")
    revoked = keys.make("write")
    keys.store.revoke(revoked.split("_")[1])
    for token in (None, "isk_wrong", reader, scoped_elsewhere, revoked):
        headers = {} if token is None else {"API-Key": token}
        answer = api.post(rename, json={"name": "x"}, headers=headers)
        assert answer.status_code == 403, token
        assert set(answer.json()) == {"error", "status"}
    for route in ("delete", "updatecontent"):
        body = {"content": b64("id,image\n")} if route == "updatecontent" else None
        answer = api.post(f"/api/collection/{collection}/{route}", json=body,
                          headers={"API-Key": reader})  # fmt: skip
        assert answer.status_code == 403, route
    assert (
        api.post(rename, json={"name": "Renamed"}, headers={"API-Key": scoped_here}).status_code
        == 200
    )
    assert api.get(f"/api/collection/{collection}/info").json()["name"] == "Renamed"
    # creating a collection is an act on no one collection: an all-collections key only
    create = api.post("/api/collection/create", json={"name": "x"},
                      headers={"API-Key": scoped_here})  # fmt: skip
    assert create.status_code == 403
    assert api.post("/api/collection/create", json={"name": "x"},
                    headers={"API-Key": reader}).status_code == 403  # fmt: skip
    assert admin


def test_a_key_only_collection_needs_a_key_to_read(api: TestClient, keys: Keys, admin: str) -> None:
    created = api.post("/api/collection/create", json={"name": "Private", "read_access": "key"},
                       headers={"API-Key": admin})  # fmt: skip
    private = int(created.json()["id"])
    try:
        reader = keys.make("read", [private])
        other = keys.make("read", [private + 100_000])
        assert api.get(f"/api/collection/{private}/info").status_code == 403
        assert api.get(f"/api/collection/{private}/info",
                       headers={"API-Key": other}).status_code == 403  # fmt: skip
        info = api.get(f"/api/collection/{private}/info", headers={"API-Key": reader})
        assert info.status_code == 200 and info.json()["read_access"] == "key"
        assert api.get(f"/api/collection/{private}/csvfile").status_code == 403
        assert private not in api.get("/api/collection/list").json()["ids"]
        listed = api.get("/api/collection/list", headers={"API-Key": reader}).json()
        assert private in listed["ids"]
        assert {"value": private, "id": private, "name": "Private"} in listed["names"]
        assert api.get("/api/collection/list", headers={"API-Key": "bad"}).status_code == 403
    finally:
        api.post(f"/api/collection/{private}/delete", headers={"API-Key": admin})


# -- collections ----------------------------------------------------------------------------


def test_create_list_info_rename_delete_seen_by_a_second_gateway(
    api: TestClient, admin: str, settings: GatewaySettings, os_client: OpenSearch
) -> None:
    created = api.post("/api/collection/create", json={"name": "Maps", "heidicon_tag": "maps-1"},
                       headers={"API-Key": admin})  # fmt: skip
    assert created.status_code == 200
    cid = created.json()["id"]
    assert isinstance(cid, int)
    alias = f"imgsearch-collection-{cid}"
    with gateway(settings) as (_, second):
        listed = second.get("/api/collection/list").json()
        assert cid in listed["ids"]
        assert {"value": cid, "id": cid, "name": "Maps"} in listed["names"]
        info = second.get(f"/api/collection/{cid}/info").json()
        assert info["id"] == cid and info["name"] == "Maps" and info["heidicon_tag"] == "maps-1"
        assert info["number_of_images"] == 0
        assert info["requires_finetuning"] is False, "nothing to fine-tune on yet"
        assert info["last_finetuned"] is None and info["finetuning_progess"] == 0.0
        datetime.fromisoformat(info["last_modified"])
        assert os_client.indices.exists_alias(name=alias), "its own alias"
        assert list(os_client.indices.get_alias(name=alias)) == [f"{alias}_v1"]
        empty = second.post(f"/api/collection/{cid}/search", json={"image": b64("x")})
        assert empty.status_code == 400, "an undecodable image, even on an empty collection"

        renamed = second.post(f"/api/collection/{cid}/updatename", json={"name": "Old maps"},
                              headers={"API-Key": admin})  # fmt: skip
        assert renamed.status_code == 200
        assert api.get(f"/api/collection/{cid}/info").json()["name"] == "Old maps"

        assert (
            api.post(f"/api/collection/{cid}/delete", headers={"API-Key": admin}).status_code == 200
        )
        time.sleep(settings.engine_ttl_s * 2)
        for client in (api, second):
            gone = client.get(f"/api/collection/{cid}/info")
            assert gone.status_code == 400 and gone.json()["status"] == 400
            assert cid not in client.get("/api/collection/list").json()["ids"]
        assert not os_client.indices.exists(index=f"{alias}_v*", allow_no_indices=False)
        assert not os_client.indices.exists_alias(name=alias)
        again = api.post(f"/api/collection/{cid}/delete", headers={"API-Key": admin})
        assert again.status_code == 400


@pytest.mark.parametrize(
    ("method", "route", "body"),
    [
        ("get", "info", None),
        ("get", "csvfile", None),
        ("post", "search", {"image": "aGVsbG8="}),
        ("post", "updatecontent", {"content": "aWQsaW1hZ2UK"}),
        ("post", "updatename", {"name": "x"}),
        ("post", "delete", None),
    ],
)
def test_an_unknown_collection_is_a_400(
    api: TestClient, admin: str, method: str, route: str, body: dict[str, str] | None
) -> None:
    path = f"/api/collection/987654321/{route}"
    kwargs: dict[str, Any] = {"headers": {"API-Key": admin}}
    if body is not None:
        kwargs["json"] = body
    answer = getattr(api, method)(path, **kwargs)
    assert answer.status_code == 400
    assert answer.json() == {"error": "Collection 987654321 not found", "status": 400}


@pytest.mark.parametrize(
    ("route", "body", "words"),
    [
        ("updatecontent", {"content": "%%% not base64"}, "base64"),
        ("updatecontent", {"content": base64.b64encode(b"\xff\xfe\x00bad").decode()}, "UTF-8"),
        ("updatecontent", {"content": b64("")}, "empty"),
        ("updatecontent", {"content": b64("id,title\n1,x\n")}, "'image' column"),
        ("updatecontent", {"content": b64("id,image,image\n")}, "twice"),
        ("updatecontent", {"content": b64("id,image,colors\n")}, "reserved"),
        ("updatecontent", {"content": b64("id,image,bad-name\n")}, "invalid field name"),
        ("updatecontent", {}, "content"),
        ("updatename", {"name": ""}, "name"),
        ("updatename", {"name": "x", "extra": 1}, "extra"),
        ("search", {"image": "not an image"}, "image"),
        ("search", {"image": b64("x"), "limit": 0}, "limit"),
    ],
)
def test_bad_input_is_a_400_in_the_dialects_shape(
    api: TestClient, admin: str, collection: int, route: str, body: dict[str, Any], words: str
) -> None:
    answer = api.post(f"/api/collection/{collection}/{route}", json=body,
                      headers={"API-Key": admin})  # fmt: skip
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == {"error", "status"}
    assert words.lower() in answer.json()["error"].lower()


# -- content --------------------------------------------------------------------------------


def test_bad_rows_are_reported_per_row_and_the_good_ones_indexed(
    api: TestClient, admin: str, collection: int, media: Path
) -> None:
    first = upload(api, collection, good_csv(media, 6), admin)
    assert first["number_of_images"] == 6
    good = good_csv(media, 12).rstrip("\r\n").split("\r\n")
    bad = [
        "p90,,dress,1990,no image",
        "p00,dress/whatever.jpg,dress,1990,a repeated id",
        "p91,dress/missing.jpg,dress,1991,no such file",
        "p92,../../../etc/passwd,dress,1992,outside the media folder",
        "p93,https://127.0.0.1:9/x.jpg,dress,1993,a private host",
        "p94,dress/x.jpg,dress,not a year,wrong type",
        "p95,dress/x.jpg,dress,1995,one cell,too many",
    ]
    text = "\r\n".join([*good[:3], *bad, *good[3:]]) + "\r\n"
    sent = api.post(f"/api/collection/{collection}/updatecontent", json={"content": b64(text)},
                    headers={"API-Key": admin})  # fmt: skip
    assert sent.status_code == 200
    refused_now = {row["id"] for row in sent.json()["job"]["refused"]}
    assert refused_now == {"p90", "p00", "p92", "p94", "p95"}, "checked before the job runs"
    info = wait_done(api, collection)
    update = info["content_update"]
    assert update["status"] == "done"
    assert info["number_of_images"] == 12, "every good row, none lost"
    assert update["indexed"] == 12 and update["failed"] == len(bad)
    by_id = {p["id"]: p for p in update["problems"]}
    assert set(by_id) == {"p90", "p00", "p91", "p92", "p93", "p94", "p95"}
    assert by_id["p90"]["reason"] == "missing image field 'image'"
    assert "duplicate id" in by_id["p00"]["reason"]
    assert by_id["p91"]["stage"] == "fetch" and "not found" in by_id["p91"]["reason"]
    assert "outside the media folder" in by_id["p92"]["reason"]
    assert by_id["p93"]["stage"] == "fetch" and "non-public" in by_id["p93"]["reason"]
    assert "field 'year'" in by_id["p94"]["reason"]
    assert "more than the 5 header columns" in by_id["p95"]["reason"]
    lines = {p["id"]: p["row"] for p in update["problems"]}
    assert lines["p90"] == "line 6", "where the row starts (each title above holds a line break)"
    exported = parse_csv(api.get(f"/api/collection/{collection}/csvfile").text)
    assert [row["id"] for row in exported] == [f"p{i:02d}" for i in range(12)]


def test_csv_round_trips_and_the_old_content_is_replaced(
    api: TestClient, admin: str, collection: int, media: Path
) -> None:
    upload(api, collection, "image,category\r\n" + "\r\n".join(
        f"{p.relative_to(media)},old" for p in photos(media, 3)) + "\r\n", admin)  # fmt: skip
    original = good_csv(media, 8)
    info = upload(api, collection, original, admin)
    assert info["number_of_images"] == 8, "replaced, not added to"
    assert info["requires_finetuning"] is True
    first = api.get(f"/api/collection/{collection}/csvfile")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/csv")
    assert parse_csv(first.text) == parse_csv(original), "the upload, as uploaded"
    upload(api, collection, first.text, admin)
    second = api.get(f"/api/collection/{collection}/csvfile")
    assert second.text == first.text, "upload -> download -> upload changes nothing"
    rows = parse_csv(second.text)
    category = photos(media, 1)[0].parent.name
    assert rows[0]["title"] == f'Print 0, "{category}"\nsecond line', "quotes and line breaks"
    assert {row["year"] for row in rows} == {str(1900 + i) for i in range(8)}


def test_a_collection_without_ids_numbers_its_rows(
    api: TestClient, admin: str, collection: int, media: Path
) -> None:
    text = "image,category\n" + "\n".join(f"{p.relative_to(media)},c" for p in photos(media, 3))
    upload(api, collection, text + "\n", admin)
    rows = parse_csv(api.get(f"/api/collection/{collection}/csvfile").text)
    assert [row["id"] for row in rows] == ["1", "2", "3"]


def test_search_matches_a_numpy_brute_force_ranking(
    api: TestClient, admin: str, collection: int, media: Path, template: Path
) -> None:
    n = 40
    upload(api, collection, good_csv(media, n), admin)
    config = EngineConfig.model_validate(json.loads(template.read_text()))
    embedder = build_embedders(config)["clip"]
    paths = photos(media, n)
    vectors = np.asarray(embedder.embed_images([decode_image(p.read_bytes()) for p in paths]),
                         dtype=np.float64)  # fmt: skip
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"p{i:02d}" for i in range(n)]
    for query in (
        paths[5],
        media / "shirt" / sorted(p.name for p in (media / "shirt").iterdir())[-1],
    ):
        q = np.asarray(
            embedder.embed_images([decode_image(query.read_bytes())])[0], dtype=np.float64
        )
        q /= np.linalg.norm(q)
        scores = (1.0 + vectors @ q) / 2.0
        order = sorted(range(n), key=lambda i: (-scores[i], ids[i]))  # ties by id, explicitly
        ranked = [ids[i] for i in order]
        allowed = tie_runs(ranked, [float(scores[i]) for i in order])[:10]
        got = api.post(f"/api/collection/{collection}/search",
                       json={"image": base64.b64encode(query.read_bytes()).decode()})  # fmt: skip
        assert got.status_code == 200, got.text
        results = got.json()["results"]
        problems = ranking_problems(
            [r["id"] for r in results], [r["score"] for r in results], allowed,
            {ids[i]: float(scores[i]) for i in range(n)},
        )  # fmt: skip
        assert not problems, problems
        top = results[0]
        assert set(top) == {"id", "image", "category", "year", "title", "score", "distance"}
        cos = 2 * top["score"] - 1
        assert abs(top["distance"] - np.sqrt(max(0.0, 2 - 2 * cos))) < 1e-6
        row = int(top["id"][1:])
        assert top["image"] == str(paths[row].relative_to(media)) and top["year"] == 1900 + row


def test_an_update_interrupted_by_a_restart_is_run_again(
    settings: GatewaySettings, api: TestClient, admin: str, collection: int, media: Path,
    os_client: OpenSearch,
) -> None:  # fmt: skip
    """A gateway that stopped mid-update leaves a running job with an old heartbeat; a live
    gateway (the restarted one, or the module's, whichever looks first) claims it and runs
    it from the CSV kept in the job's state."""
    hashid = f"collection-{collection}"
    long_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    os_client.index(index=JOBS_INDEX, id=f"content:{hashid}", refresh=True, body={
        "kind": "content", "status": "running", "progress": 0.4, "owner": "a-stopped-gateway",
        "heartbeat": long_ago, "queued_at": long_ago, "started_at": long_ago,
        "finished_at": None, "error": None,
        "params": {"collection": collection, "csv": good_csv(media, 5),
                   "media_dir": str(media.resolve()), "public_urls_only": True},
    })  # fmt: skip
    with gateway(settings) as (_, restarted):
        info = wait_done(restarted, collection)
    assert info["content_update"]["status"] == "done"
    assert info["number_of_images"] == 5


def test_a_cancelled_update_leaves_the_old_content(
    api: TestClient, admin: str, collection: int, media: Path
) -> None:
    upload(api, collection, good_csv(media, 4), admin)
    everything = good_csv(media, 300)
    sent = api.post(f"/api/collection/{collection}/updatecontent",
                    json={"content": b64(everything)}, headers={"API-Key": admin})  # fmt: skip
    assert sent.status_code == 200
    again = api.post(f"/api/collection/{collection}/updatecontent",
                     json={"content": b64(everything)}, headers={"API-Key": admin})  # fmt: skip
    assert again.status_code == 409, "one content update at a time"
    cancelled = api.post(f"/api/collection/{collection}/cancel", headers={"API-Key": admin})
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] == ["content"]
    info = wait_done(api, collection)
    assert info["content_update"]["status"] == "cancelled"
    assert info["number_of_images"] == 4, "the alias never moved"
    none = api.post(f"/api/collection/{collection}/cancel", headers={"API-Key": admin})
    assert none.status_code == 409 and set(none.json()) == {"error", "status"}
    assert upload(api, collection, good_csv(media, 6), admin)["number_of_images"] == 6
