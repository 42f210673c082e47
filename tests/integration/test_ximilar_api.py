"""Ximilar's collection API, black-box over HTTP on the real node, against brute force.

The test writes real clothing photos through the API (batches of 10, base64 and URLs from a
loopback server), edits and deletes some, and checks every read method against a reference
computed here: the Mongo filter by the shared evaluator, similarity by numpy over the
vectors the index stores (themselves checked against this process's own embeddings).
"""

from __future__ import annotations

import base64
import io
import json
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch
from PIL import Image

from gateway.app import create_app
from gateway.search.mongo_filter import parse_mongo_filter
from gateway.settings import GatewaySettings
from imgsearch.dupes.hashes import probes
from imgsearch.dupes.match import Limits, compare
from imgsearch.dupes.match import stored as stored_signature
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig, PhashSpec
from imgsearch.images import decode_image
from imgsearch.mapping import build_index_body
from tests.fixtures_clip import tiny_clip_spec
from tests.reference_search import matches
from tests.tolerance import assert_same_vector, ranking_problems, tie_runs

pytestmark = pytest.mark.integration

TOKEN = "x-secret"
HEADERS = {"collection-id": "xcol", "Authorization": f"Token {TOKEN}"}
API = "/similarity/photos/v2"
BRANDS = ["acme", "borealis", "cobalt"]
TAGS = ["summer", "winter", "casual", "formal", "sport"]
DISTANCE_ATOL = 1e-4  # distances derive from float32 scores (tests/tolerance.py)


def _config(alias: str, checkpoint: Path) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": "xcol",
            "alias": alias,
            "fields": {
                "category": {"type": "keyword", "facet": True},
                "brand": {"type": "keyword", "facet": True},
                "price": {"type": "number"},
                "tags": {"type": "keyword"},
                "in_stock": {"type": "boolean"},
            },
            "vectors": {
                "clip": tiny_clip_spec(checkpoint),
                "phash": {"embedder": "phash"},
            },
            "gateway": {"tokens": [TOKEN]},
        }
    )


class Photos:
    """The photos the test inserts, served over loopback HTTP as well."""

    def __init__(self, folder: Path) -> None:
        self.paths = sorted(folder.rglob("*.jpg"))
        server = _Server(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
        self.server = server
        self.base = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def url(self, path: Path, root: Path) -> str:
        return f"{self.base}/{path.relative_to(root).as_posix()}"


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default backlog (5) stalls bursts of concurrent fetches


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def world(
    os_client: OpenSearch, opensearch_url: str, clothing_dataset: Path, tiny_clip_checkpoint: Path
) -> Iterator[tuple[TestClient, EngineConfig, Photos, Path]]:
    alias = "it-ximilar"
    config = _config(alias, tiny_clip_checkpoint)
    os_client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
    infos = {name: e.info for name, e in build_embedders(config).items()}
    body = build_index_body(config, infos)
    body["aliases"] = {alias: {}}
    os_client.indices.create(index=f"{alias}_v1", body=body)
    settings = GatewaySettings(opensearch_url=opensearch_url, image_url_allow_private=True)
    root = clothing_dataset / "validation"
    photos = Photos(root)
    app = create_app(settings, {"xcol": config})
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, config, photos, root
    photos.server.shutdown()
    photos.server.server_close()
    os_client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)


def call(client: TestClient, method: str, body: dict[str, Any], status: int = 200) -> Any:
    response = client.post(f"{API}/{method}", json=body, headers=HEADERS)
    assert response.status_code == status, (method, response.text)
    data = response.json()
    assert "OperationTime" in data["statistics"] and "code" in data["status"], data
    return data


def _unit(vector: Any) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def stored(os_client: OpenSearch, alias: str) -> dict[str, dict[str, Any]]:
    hits = os_client.search(index=alias, body={"size": 1000, "query": {"match_all": {}}})
    return {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}


def knn_reference(
    docs: dict[str, dict[str, Any]], query: np.ndarray, config: EngineConfig, tree: Any
) -> tuple[list[str], list[float], dict[str, float]]:
    """All candidates best first, their scores ``(1 + cos) / 2``, and a score map."""
    q = query / np.linalg.norm(query)
    scored = []
    for doc_id, doc in docs.items():
        if tree is not None and not matches(doc, tree, config):
            continue
        v = np.asarray(doc["clip"], dtype=np.float64)
        scored.append(((1 + float(v @ q / np.linalg.norm(v))) / 2, doc_id))
    scored.sort(key=lambda pair: (-pair[0], pair[1]))
    return [i for _, i in scored], [s for s, _ in scored], {i: s for s, i in scored}


def check_knn(answer: dict[str, Any], ids: list[str], scores: list[float], start: int) -> None:
    got = [rec["_id"] for rec in answer["answer_records"]]
    got_scores = [1 - d * d / 4 for d in answer["answer_distances"]]  # distance → score
    allowed = tie_runs(ids, scores)[start : start + len(got)]
    score_of = dict(zip(ids, scores, strict=True))
    assert len(got) == min(len(ids) - start, answer["answer_count"])
    problems = ranking_problems(got, got_scores, allowed, score_of)
    # distances carry the score's float32 noise, amplified near 0 by the square root
    assert not [p for p in problems if "scored" not in p], problems
    for doc_id, distance in zip(got, answer["answer_distances"], strict=True):
        want = 2 * np.sqrt(max(0.0, 1 - score_of[doc_id]))
        assert abs(distance - want) <= DISTANCE_ATOL + 1e-2 * (want < 1e-2), (doc_id, distance)


def test_ximilar_collection_end_to_end(
    world: tuple[TestClient, EngineConfig, Photos, Path], os_client: OpenSearch
) -> None:
    client, config, photos, root = world
    rng = random.Random(20261127)
    chosen = [p for p in photos.paths if rng.random() < 0.5][:60]
    expected: dict[str, dict[str, Any]] = {}
    # ---- insert in batches of 10: base64 and URLs
    for start in range(0, 50, 10):
        batch = []
        for path in chosen[start : start + 10]:
            record: dict[str, Any] = {
                "_id": f"{path.parent.name}-{path.stem}",
                "category": path.parent.name,
                "brand": rng.choice(BRANDS),
                "price": round(rng.uniform(5, 300), 2),
                "tags": rng.sample(TAGS, rng.randint(1, 3)),
                "in_stock": rng.random() < 0.7,
            }
            expected[record["_id"]] = {**record, "path": path}
            if rng.random() < 0.5:
                record["_url"] = photos.url(path, root)
            else:
                record["_base64"] = b64(path)
            batch.append(record)
        answer = call(client, "insert", {"records": batch})
        assert answer["status"] == {"code": 210, "text": "records inserted"}, answer
        assert answer["answer_count"] == 10
    assert call(client, "getRecordCount", {})["answer_count"] == 50

    # ---- stored vectors are this process's embeddings of the same photos
    docs = stored(os_client, config.alias)
    assert set(docs) == set(expected)
    embedder = build_embedders(config)["clip"]
    some = sorted(expected)[:6]
    mine = embedder.embed_images([decode_image(expected[i]["path"].read_bytes()) for i in some])
    for k, doc_id in enumerate(some):
        others = [docs[j]["clip"] for j in some if j != doc_id]
        assert_same_vector(docs[doc_id]["clip"], mine[k].tolist(), others=others)

    # ---- bad input: clear per-record reasons, nothing partial stored, the rest written
    new = chosen[50]
    mixed = [
        {"_id": sorted(expected)[0], "_base64": b64(new)},  # exists
        {"_id": "fresh-1", "_base64": b64(new), "category": "x", "price": 1},
        {"_id": "bad-field", "_base64": b64(new), "colour": "red"},
        {"_id": "bad-type", "_base64": b64(new), "price": "cheap"},
        {"_id": "bad-image", "_base64": base64.b64encode(b"not an image").decode()},
        {"_id": "bad-url", "_url": "http://127.0.0.1:9/nothing.jpg"},
        {"_id": "fresh-1", "_base64": b64(new)},  # repeated in the batch
    ]
    answer = call(client, "insert", {"records": mixed})
    assert answer["status"]["code"] == 211 and answer["answer_records"] == [{"_id": "fresh-1"}]
    reasons = {s["_id"]: s["_reason"]["status"] for s in answer["skipped_records"]}
    assert reasons[sorted(expected)[0]]["code"] == 411
    assert "colour" in reasons["bad-field"]["text"] and "price" in reasons["bad-type"]["text"]
    assert reasons["bad-image"]["code"] == 400 and reasons["bad-url"]["code"] == 400
    got = call(client, "get", {"records": [{"_id": i} for i in ("bad-field", "bad-image")]})
    assert got["status"]["code"] == 404 and got["answer_count"] == 0
    expected["fresh-1"] = {"_id": "fresh-1", "category": "x", "price": 1, "path": new}
    assert call(client, "insert", {"records": [mixed[0]]})["status"]["code"] == 411
    too_many = {"records": [{"_id": str(i), "_base64": "x"} for i in range(11)]}
    error = call(client, "insert", too_many, status=400)
    assert error["status"]["code"] == 400 and "at most 10" in error["status"]["text"]

    # ---- get / find against the evaluator
    ids = [sorted(expected)[3], "missing-id", sorted(expected)[7]]
    got = call(client, "get", {"records": [{"_id": i} for i in ids], "fields_to_return": ["*"]})
    assert got["status"]["code"] == 206
    assert [r["_id"] for r in got["answer_records"]] == [ids[0], ids[2]]
    assert got["answer_records"][0]["brand"] == expected[ids[0]]["brand"]
    assert got["answer_records"][0]["tags"] == expected[ids[0]]["tags"]
    assert got["skipped_records"][0]["_id"] == "missing-id"
    docs = stored(os_client, config.alias)
    filters: list[dict[str, Any]] = [
        {"brand": "acme"},
        {"price": {"$gte": 50, "$lt": 200}, "in_stock": True},
        {"$or": [{"tags": {"$in": ["sport", "formal"]}}, {"brand": {"$ne": "cobalt"}}]},
        {"$gte": {"price": 200}},  # Ximilar's operator-first form
        {"tags": {"$exists": False}},
    ]
    for mongo in filters:
        tree = parse_mongo_filter(mongo, config)
        want = sorted(i for i, d in docs.items() if matches(d, tree, config))
        found = call(client, "find", {"filter": mongo, "limit": 1000, "fields_to_return": ["_id"]})
        assert [r["_id"] for r in found["answer_records"]] == want, mongo
        count = call(client, "getRecordCount", {"filter": mongo})["answer_count"]
        assert count == len(want), mongo
    bad = call(client, "find", {"filter": {"price": {"$regex": "x"}}}, status=400)
    assert "$regex" in bad["status"]["text"]
    assert (
        "colour"
        in call(client, "find", {"filter": {"colour": "red"}}, status=400)["status"]["text"]
    )

    # ---- similarity against numpy over the stored vectors
    query_path = chosen[55]
    query = embedder.embed_images([decode_image(query_path.read_bytes())])[0].astype(np.float64)
    for mongo, k, start in [(None, 10, 0), ({"brand": {"$in": ["acme", "cobalt"]}}, 7, 3)]:
        body: dict[str, Any] = {"query_record": {"_base64": b64(query_path)}, "k": k, "from": start}
        if mongo:
            body["filter"] = mongo
        answer = call(client, "visualKNN", body)
        tree = parse_mongo_filter(mongo, config) if mongo else None
        ref_ids, ref_scores, _ = knn_reference(docs, query, config, tree)
        check_knn(answer, ref_ids, ref_scores, start)
        assert "_base64" not in answer["query_records"][0]
    item = sorted(expected)[12]
    answer = call(client, "visualKNN", {"query_record": {"_id": item}, "k": 15})
    ref_ids, ref_scores, _ = knn_reference(
        {i: d for i, d in docs.items() if i != item}, np.asarray(docs[item]["clip"]), config, None
    )
    check_knn(answer, ref_ids, ref_scores, 0)
    assert item not in [r["_id"] for r in answer["answer_records"]], "self excluded"

    # multi-query: mean cosine to both query images
    a, b = sorted(expected)[20], sorted(expected)[30]
    answer = call(client, "visualKNNMulti", {"query_records": [{"_id": a}, {"_id": b}], "k": 10})
    units = [_unit(docs[i]["clip"]) for i in (a, b)]
    mean_scores = {
        i: (1 + float(np.mean([_unit(d["clip"]) @ u for u in units]))) / 2
        for i, d in docs.items()
        if i not in (a, b)
    }
    ref = sorted(mean_scores, key=lambda i: (-mean_scores[i], i))
    check_knn(answer, ref, [mean_scores[i] for i in ref], 0)

    # range: everything within the radius of the 8th neighbour's distance
    ref_ids, ref_scores, score_of = knn_reference(docs, query, config, None)
    radius = 2 * float(np.sqrt(1 - ref_scores[7])) + 1e-6
    answer = call(client, "range", {"query_record": {"_base64": b64(query_path)}, "radius": radius})
    within = {i for i, s in score_of.items() if 2 * np.sqrt(max(0.0, 1 - s)) <= radius - 1e-4}
    maybe = {i for i, s in score_of.items() if 2 * np.sqrt(max(0.0, 1 - s)) <= radius + 1e-4}
    assert within <= {r["_id"] for r in answer["answer_records"]} <= maybe

    # rank given records (one missing) by similarity to the query
    candidates = [{"_id": i} for i in sorted(expected)[:8]] + [{"_id": "nope"}]
    answer = call(client, "visualRankRecords", {
        "query_record": {"_base64": b64(query_path)}, "records": candidates, "k": 5,
    })  # fmt: skip
    ranked = sorted(sorted(expected)[:8], key=lambda i: (-score_of[i], i))
    check_knn(answer, ranked, [score_of[i] for i in ranked], 0)
    assert [s["_id"] for s in answer["skipped_records"]] == ["nope"]

    # tags: visual + tag overlap
    answer = call(client, "visualTagsKNN", {
        "query_record": {"_id": item, "tags": ["sport", "summer"]}, "k": 10,
    })  # fmt: skip

    def jaccard(tags: Any) -> float:
        mine, theirs = {"sport", "summer"}, set(tags or [])
        return len(mine & theirs) / len(mine | theirs)

    base = knn_reference({i: d for i, d in docs.items() if i != item},
                         np.asarray(docs[item]["clip"]), config, None)[2]  # fmt: skip
    blended = {i: 0.7 * s + 0.3 * jaccard(docs[i].get("tags")) for i, s in base.items()}
    got = [r["_id"] for r in answer["answer_records"]]
    want = sorted(blended, key=lambda i: (-blended[i], i))
    allowed = tie_runs(want, [blended[i] for i in want])[: len(got)]
    assert all(g in ok for g, ok in zip(got, allowed, strict=True)), (got, want[:10])

    # ---- update: fields change, vectors stay; null removes
    target = sorted(expected)[5]
    before = docs[target]["clip"]
    answer = call(client, "update", {"records": [
        {"_id": target, "price": 999, "tags": None}, {"_id": "ghost", "price": 1},
    ]})  # fmt: skip
    assert answer["status"]["code"] == 206 and answer["answer_records"][0]["price"] == 999
    assert "tags" not in answer["answer_records"][0]
    after = stored(os_client, config.alias)[target]
    assert after["price"] == 999 and after.get("tags") is None
    assert_same_vector(after["clip"], before)
    bad_update = call(client, "update", {"records": [{"_id": target, "price": "x"}]})
    assert bad_update["status"]["code"] == 404 or bad_update["skipped_records"]
    assert stored(os_client, config.alias)[target]["price"] == 999, "refused update left it"

    # ---- near-duplicates: a resized, recompressed copy of an indexed photo
    original = expected[sorted(expected)[9]]["path"]
    with Image.open(original) as image:
        out = io.BytesIO()
        image.convert("RGB").resize((image.width // 2, image.height // 2)).save(
            out, "JPEG", quality=40
        )
    copy = base64.b64encode(out.getvalue()).decode()
    answer = call(client, "nearDuplicates", {"query_record": {"_base64": copy}, "radius": 8})
    docs = stored(os_client, config.alias)
    query_hash = None
    for rec, distance in zip(answer["answer_records"], answer["answer_distances"], strict=True):
        if rec["_id"] == sorted(expected)[9]:
            query_hash = docs[rec["_id"]]["phash"]
            assert distance <= 8
    assert query_hash is not None, answer
    refused = call(
        client, "nearDupsInsert", {"records": [{"_id": "copy-1", "_base64": copy}], "radius": 8}
    )
    assert (
        refused["status"]["code"] == 411
        and refused["skipped_records"][0]["_reason"]["answer_records"]
    )
    pairs = call(client, "allNearDupPairs", {"radius": 6})
    # Brute force: a pair is one when either photo, as a query, finds the other.
    signatures = {i: stored_signature(d["phash"]) for i, d in docs.items()}
    spec = PhashSpec()
    limits = Limits(6, spec.min_similarity, spec.max_colour_difference)
    want_pairs = set()
    for a, item_a in signatures.items():
        query_probes = probes(item_a.signature)
        for b, item_b in signatures.items():
            match = compare(item_a.signature, query_probes, item_b, limits)
            if a != b and match is not None and match.near(limits):
                want_pairs.add((min(a, b), max(a, b)))
    got_pairs = {tuple(sorted((p["_id_1"], p["_id_2"]))) for p in pairs["answer_pairs"]}
    assert got_pairs == want_pairs

    # ---- random, allRecords pages
    sample = call(client, "random", {"count": 5, "filter": {"brand": "acme"}})["answer_records"]
    assert (
        len({r["_id"] for r in sample})
        == len(sample)
        == min(5, sum(d.get("brand") == "acme" for d in docs.values()))
    )
    assert all(r["brand"] == "acme" for r in sample)
    seen: list[str] = []
    for page in range(1, 5):
        answer = call(client, "allRecords", {"size": 15, "page": page})
        seen += [r["_id"] for r in answer["answer_records"]]
    assert seen == sorted(docs)
    everything = call(client, "allRecords", {})
    assert [r["_id"] for r in everything["answer_records"]] == sorted(docs)

    # ---- deletes
    gone = sorted(docs)[:3]
    answer = call(client, "delete", {"records": [{"_id": i} for i in [*gone, "nope"]]})
    assert answer["status"]["code"] == 206 and answer["answer_count"] == 3
    n_cobalt = sum(d.get("brand") == "cobalt" for i, d in docs.items() if i not in gone)
    answer = call(client, "deleteByFilter", {"filter": {"brand": "cobalt"}})
    assert answer["answer_count"] == n_cobalt
    remaining = len(docs) - 3 - n_cobalt
    assert call(client, "getRecordCount", {})["answer_count"] == remaining
    assert call(client, "deleteByFilter", {}, status=400)["status"]["code"] == 400


def test_ximilar_access_and_errors(world: tuple[TestClient, EngineConfig, Photos, Path]) -> None:
    client = world[0]
    body = {"records": [{"_id": "z", "_base64": "eA=="}]}
    no_token = client.post(f"{API}/insert", json=body, headers={"collection-id": "xcol"})
    assert no_token.status_code == 403 and no_token.json()["status"]["code"] == 403
    bad_token = {"collection-id": "xcol", "Authorization": "Token nope"}
    wrong = client.post(f"{API}/insert", json=body, headers=bad_token)
    assert wrong.status_code == 403
    unknown = client.post(f"{API}/ping", json={}, headers={**HEADERS, "collection-id": "nope"})
    assert unknown.status_code == 404 and unknown.json()["status"]["text"] == "collection not found"
    missing = client.post(f"{API}/ping", json={}, headers={"Authorization": f"Token {TOKEN}"})
    assert missing.status_code == 400 and "collection-id" in missing.json()["status"]["text"]
    not_json = client.post(f"{API}/find", content=b"{", headers=HEADERS)
    assert not_json.status_code == 400 and not_json.json()["status"]["code"] == 400
    ping = client.get(f"{API}/ping", headers=HEADERS)
    assert ping.status_code == 200 and ping.json()["status"]["text"] == "OK"
    no_query = client.post(f"{API}/visualKNN", json={"k": 3}, headers=HEADERS)
    assert no_query.status_code == 400 and "query_record" in no_query.json()["status"]["text"]
    gone = client.post(f"{API}/visualKNN", json={"query_record": {"_id": "never"}}, headers=HEADERS)
    assert gone.status_code == 404
    bad_k = client.post(
        f"{API}/visualKNN", json={"query_record": {"_id": "x"}, "k": 0}, headers=HEADERS
    )
    assert bad_k.status_code == 400
    assert (
        client.post(f"{API}/nosuchmethod", json={}, headers=HEADERS).json()["status"]["code"] == 404
    )


def test_cli_insert_goes_through_the_same_write_path(
    world: tuple[TestClient, EngineConfig, Photos, Path], tmp_path: Path, opensearch_url: str
) -> None:
    client, config, photos, _ = world
    engine_file = tmp_path / "engine.json"
    engine_file.write_text(config.model_dump_json())
    photo = photos.paths[-1]
    command = [sys.executable, "-m", "imgsearch.cli", "insert", str(photo), "--engine",
               str(engine_file), "--opensearch-url", opensearch_url, "--id", "cli-1",
               "--set", "brand=acme", "--set", "tags=sport", "--set", "tags=casual",
               "--set", "price=12.5"]  # fmt: skip
    first = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads(first.stdout) == {"id": "cli-1", "status": "written", "reason": None}
    got = call(client, "get", {"records": [{"_id": "cli-1"}]})["answer_records"][0]
    assert (got["brand"], got["tags"], got["price"]) == ("acme", ["sport", "casual"], 12.5)
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 1 and json.loads(again.stdout)["status"] == "duplicate"
    bad = subprocess.run([*command[:-2], "--set", "colour=red"], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    assert bad.returncode == 1 and "colour" in json.loads(bad.stdout)["reason"]
