"""Pixolution Flow's ``/image`` (and Doofinder's colour extension), black-box over HTTP on the
real node, against a brute-force reference computed here.

The catalog: the clothing validation photos with seeded shop fields, indexed by the indexer
itself (tiny seeded CLIP + the colour embedder), so the colour fields are the ones indexing
stores. The reference reads the vectors the index holds (checked against this process's own
embedders), filters with plain Python predicates written beside each case (not the Solr
parser), and ranks by ``(1 + cos) / 2`` with the near-tie aware comparison of
``tests/tolerance.py``.
"""

from __future__ import annotations

import base64
import json
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opensearchpy import OpenSearch
from PIL import Image

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.embedders.registry import build_embedders
from imgsearch.engine_config import EngineConfig
from imgsearch.images import decode_image
from indexer.runner import IndexOptions, index_feed
from tests.fixtures_clip import tiny_clip_spec
from tests.tolerance import SCORE_ATOL, assert_same_vector, ranking_problems, tie_runs

pytestmark = pytest.mark.integration

ALIAS = "it-flow"
K = 60
COLOR_WEIGHT = 0.4
BRANDS = ["acme", "borealis", "cobalt", "dune"]
TOKEN = "flow-secret"
ORIGINS = "https://*.shop.example"
Doc = dict[str, Any]
Predicate = Callable[[Doc], bool]


def _config(hashid: str, checkpoint: Path, *, colour: bool = True, **gateway: Any) -> EngineConfig:
    vectors: dict[str, Any] = {"clip": tiny_clip_spec(checkpoint)}
    if colour:
        vectors["color"] = {"embedder": "color"}
    return EngineConfig.model_validate(
        {
            "hashid": hashid,
            "alias": ALIAS,
            "fields": {
                "title": {"type": "text"},
                "category": {"type": "keyword", "facet": True},
                "brand": {"type": "keyword", "facet": True},
                "price": {"type": "number"},
                "in_stock": {"type": "boolean"},
            },
            "vectors": vectors,
            "gateway": {"k": K, "color_weight": COLOR_WEIGHT, **gateway},
        }
    )


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class World:
    client: TestClient
    config: EngineConfig
    docs: dict[str, Doc]  # id -> stored _source, vectors included
    photos: dict[str, Path]
    base_url: str  # loopback server of the photos

    def get(self, params: list[tuple[str, Any]], status: int = 200) -> Any:
        response = self.client.get("/api/cores/flowcol/image", params=params)
        assert response.status_code == status, response.text
        return response.json()

    def post(self, form: dict[str, str], query: str = "", status: int = 200) -> Any:
        response = self.client.post(f"/api/cores/flowcol/image{query}", data=form)
        assert response.status_code == status, response.text
        return response.json()


@pytest.fixture(scope="module")
def world(
    os_client: OpenSearch,
    opensearch_url: str,
    clothing_dataset: Path,
    tiny_clip_checkpoint: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    config = _config("flowcol", tiny_clip_checkpoint)
    root = clothing_dataset / "validation"
    rng = random.Random(12)
    feed = tmp_path_factory.mktemp("flow") / "catalog.jsonl"
    photos: dict[str, Path] = {}
    with feed.open("w") as out:
        for path in sorted(root.rglob("*.jpg")):
            item = f"{path.parent.name}-{path.stem[:8]}"
            photos[item] = path
            row = {
                "id": item,
                "image": str(path),
                "title": f"{path.parent.name} {path.stem[:4]}",
                "category": path.parent.name,
                "brand": rng.choice(BRANDS),
                "price": round(rng.uniform(5, 200), 2),
                "in_stock": rng.random() < 0.7,
            }
            out.write(json.dumps(row) + "\n")
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
    summary = index_feed(feed, config, os_client, IndexOptions())
    assert summary.failed == 0 and summary.indexed == len(photos), summary
    hits = os_client.search(index=ALIAS, body={"size": 1000, "query": {"match_all": {}}})
    docs = {h["_id"]: h["_source"] for h in hits["hits"]["hits"]}
    assert len(docs) == len(photos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = GatewaySettings(opensearch_url=opensearch_url, image_url_allow_private=True)
    engines = {
        "flowcol": config,
        "flowplain": _config("flowplain", tiny_clip_checkpoint, colour=False),
        "flowlocked": _config(
            "flowlocked", tiny_clip_checkpoint, tokens=[TOKEN], allowed_origins=[ORIGINS]
        ),
    }
    app = create_app(settings, engines)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield World(client, config, docs, photos, f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)


# ---------------------------------------------------------------- the reference


def similarity(a: Any, b: Any) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return (1.0 + float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))) / 2.0


@dataclass
class Reference:
    pool: list[tuple[float, Doc]]  # best first
    ordered: list[tuple[float, Doc]]  # in the requested order
    ambiguous: bool  # a near-tie at the pool's boundary: membership undecidable
    group: Callable[[Doc], object] | None = None  # the field-sort key, if any

    def check(self, got: Any, start: int = 0, rows: int = 10) -> None:
        response = got["response"]
        assert response["numFound"] == len(self.pool) and response["numFoundExact"] is True
        assert not self.ambiguous, "choose a query without a near-tie at the pool boundary"
        window = self.ordered[start : start + rows]
        ids = [str(doc["id"]) for _, doc in self.ordered]
        scores = [score for score, _ in self.ordered]
        groups = [self.group(doc) if self.group else None for _, doc in self.ordered]
        allowed = tie_runs(ids, scores, groups)
        score_of = {str(doc["id"]): score for score, doc in self.pool}
        docs = response["docs"]
        problems = ranking_problems(
            [d["id"] for d in docs],
            [d["score"] for d in docs],
            allowed[start : start + rows],
            score_of,
        )
        assert not problems, problems
        assert len(docs) == len(window)
        if self.pool:
            assert abs(response["maxScore"] - self.pool[0][0]) <= SCORE_ATOL


def reference(
    docs: dict[str, Doc],
    score: Callable[[Doc], float],
    keep: Predicate = lambda doc: True,
    *,
    exclude: str | None = None,
    rank: Callable[[Doc], float] | None = None,
    sort_key: Callable[[Doc], Any] | None = None,
) -> Reference:
    """Pool = the ``K`` best by ``score`` passing ``keep``; then ranked by ``rank`` (a
    re-rank of that pool) or ordered by ``sort_key`` then score."""
    scored = sorted(
        ((score(doc), doc) for doc in docs.values() if keep(doc) and doc["id"] != exclude),
        key=lambda pair: (-pair[0], pair[1]["id"]),
    )
    ambiguous = len(scored) > K and scored[K - 1][0] - scored[K][0] <= SCORE_ATOL
    pool = scored[:K]
    if rank is not None:
        pool = sorted(((rank(doc), doc) for _, doc in pool), key=lambda p: (-p[0], p[1]["id"]))
    ref = Reference(pool=pool, ordered=pool, ambiguous=ambiguous)
    if sort_key is not None:
        key = sort_key
        ref.ordered = sorted(pool, key=lambda p: (key(p[1]), -p[0], p[1]["id"]))
        ref.group = key
    return ref


def clip_of(world: World, item: str) -> Callable[[Doc], float]:
    query = world.docs[item]["clip"]
    return lambda doc: similarity(doc["clip"], query)


def stripes(parts: list[tuple[tuple[int, int, int], int]]) -> Image.Image:
    """A 64 x 64 image of vertical stripes (colour, columns): the picture a colour query
    stands for, embedded the indexing way as this test's independent reference."""
    image = Image.new("RGB", (64, 64))
    left = 0
    for colour, columns in parts:
        image.paste(colour, (left, 0, left + columns, 64))
        left += columns
    return image


# ---------------------------------------------------------------- the index itself


def test_indexing_stored_the_colour_fields_and_vectors(world: World) -> None:
    embedders = build_embedders(world.config)
    colour = embedders["color"]
    assert isinstance(colour, ColorEmbedder)
    sample = sorted(world.docs)[::37]
    images = [decode_image(world.photos[item].read_bytes()) for item in sample]
    clip_rows = embedders["clip"].embed_images(images)
    colour_rows = colour.embed_images(images)
    for item, image, clip_row, colour_row in zip(
        sample, images, clip_rows, colour_rows, strict=True
    ):
        doc = world.docs[item]
        assert_same_vector(doc["clip"], [float(x) for x in clip_row])
        assert_same_vector(doc["color"], [float(x) for x in colour_row])
        fields = colour.extra_fields(image)
        for name in ("color_palette_hex", "color_names", "color_isolated"):
            assert doc[name] == fields[name], (item, name)
        assert doc["color_palette_freq"] == pytest.approx(fields["color_palette_freq"])
    isolated = sum(bool(doc["color_isolated"]) for doc in world.docs.values())
    assert 0 < isolated < len(world.docs), "both kinds of photo occur"


# ---------------------------------------------------------------- query images


def test_more_like_an_indexed_id_with_filters(world: World) -> None:
    item = sorted(world.docs)[5]
    got = world.get([("id", item), ("fq", "price:[50 TO *]"), ("fq", "-brand:acme")])
    ref = reference(
        world.docs,
        clip_of(world, item),
        lambda d: d["price"] >= 50 and d["brand"] != "acme",
        exclude=item,
    )
    ref.check(got)
    assert got["responseHeader"]["status"] == 0 and isinstance(got["responseHeader"]["QTime"], int)
    assert got["responseHeader"]["params"]["fq"] == ["price:[50 TO *]", "-brand:acme"]
    doc = got["response"]["docs"][0]
    stored = world.docs[doc["id"]]
    for name in ("color_palette_hex", "color_palette_freq", "color_names", "color_isolated"):
        assert doc[name] == stored[name]
    assert {"clip", "color", "palette", "content_hash", "id_md5"}.isdisjoint(doc)
    assert {"title", "category", "brand", "price", "in_stock", "image_url", "score"} <= set(doc)


def test_paging_with_start_and_rows(world: World) -> None:
    item = sorted(world.docs)[40]
    ref = reference(world.docs, clip_of(world, item), lambda d: d["in_stock"], exclude=item)
    for start, rows in ((0, 7), (7, 7), (55, 10), (100, 5)):
        got = world.get(
            [("id", item), ("fq", "in_stock:true"), ("start", str(start)), ("rows", str(rows))]
        )
        ref.check(got, start, rows)
        assert got["response"]["start"] == start


def test_base64_post_form_with_sort_and_category(world: World) -> None:
    item = [i for i in sorted(world.docs) if i.startswith("shirt-")][3]
    photo = world.photos[item]
    form = {
        "base64": base64.b64encode(photo.read_bytes()).decode(),
        "fq": "category:(dress OR shirt OR t-shirt)",
        "sort": "price asc,score desc",
        "rows": "12",
        "start": "3",
    }
    got = world.post(form, "?logParamsList=")
    clip = build_embedders(world.config)["clip"]
    query = [float(x) for x in clip.embed_images([decode_image(photo.read_bytes())])[0]]
    ref = reference(
        world.docs,
        lambda d: similarity(d["clip"], query),
        lambda d: d["category"] in ("dress", "shirt", "t-shirt"),
        sort_key=lambda d: d["price"],
    )
    ref.check(got, 3, 12)
    prices = [d["price"] for d in got["response"]["docs"]]
    assert prices == sorted(prices)
    assert item in {d["id"] for _, d in ref.pool}, "the photo itself is not excluded"
    echoed = got["responseHeader"]["params"]["base64"]
    assert len(echoed) < 100, "the image is not echoed back in full"


def test_url_query_matches_base64(world: World) -> None:
    item = sorted(world.docs)[200]
    photo = world.photos[item]
    url = f"{world.base_url}/{photo.parent.name}/{photo.name}"
    by_url = world.get([("url", url), ("rows", "20"), ("fl", "id,score")])
    by_b64 = world.post({"base64": base64.b64encode(photo.read_bytes()).decode(), "rows": "20"})
    assert [d["id"] for d in by_url["response"]["docs"]] == [
        d["id"] for d in by_b64["response"]["docs"]
    ]
    assert set(by_url["response"]["docs"][0]) == {"id", "score"}


def test_q_filters_like_an_fq_and_fl_globs(world: World) -> None:
    item = sorted(world.docs)[17]
    got = world.get([("id", item), ("q", "category:shoes"), ("fl", "id color_*")])
    ref = reference(world.docs, clip_of(world, item), lambda d: d["category"] == "shoes")
    docs = got["response"]["docs"]
    assert [d["id"] for d in docs] == [str(d["id"]) for _, d in ref.pool[:10]]
    assert "maxScore" not in got["response"], "Solr gives maxScore only with the score"
    assert all(set(d) == {"id", *(n for n in d if n.startswith("color_"))} for d in docs)
    assert all("color_isolated" in d and "score" not in d for d in docs)


# ---------------------------------------------------------------- colours


COLOUR_CASES = [
    ("#141414", [((20, 20, 20), 64)], lambda d: True),
    ("#0a7e8c:0.75,#ffffff:0.25", [((10, 126, 140), 48), ((255, 255, 255), 16)], lambda d: True),
    ("c81e1e:3,f0f0f0:1", [((200, 30, 30), 48), ((240, 240, 240), 16)], lambda d: d["in_stock"]),
]


@pytest.mark.parametrize(("color", "parts", "keep"), COLOUR_CASES)
def test_colour_alone(
    world: World,
    color: str,
    parts: list[tuple[tuple[int, int, int], int]],
    keep: Predicate,
) -> None:
    query = ColorEmbedder().embed_images([stripes(parts)])[0]
    params = [("color", color), ("rows", "15")]
    if color.startswith("c81e1e"):
        params.append(("fq", "in_stock:true"))
    got = world.get(params)
    ref = reference(world.docs, lambda d: similarity(d["color"], query), keep)
    ref.check(got, 0, 15)


def test_image_and_colour_rerank_the_image_pool(world: World) -> None:
    item = sorted(world.docs)[77]
    color_query = ColorEmbedder().embed_images([stripes([((200, 30, 30), 64)])])[0]
    by_image = clip_of(world, item)
    got = world.get(
        [("id", item), ("color", "#c81e1e"), ("fq", "price:[* TO 150]"), ("rows", "20")]
    )

    def fused(doc: Doc) -> float:
        colour = similarity(doc["color"], color_query)
        return (1 - COLOR_WEIGHT) * by_image(doc) + COLOR_WEIGHT * colour

    ref = reference(world.docs, by_image, lambda d: d["price"] <= 150, exclude=item, rank=fused)
    ref.check(got, 0, 20)
    plain = world.get([("id", item), ("fq", "price:[* TO 150]"), ("rows", "20"), ("fl", "id")])
    assert [d["id"] for d in plain["response"]["docs"]] != [
        d["id"] for d in got["response"]["docs"]
    ]


def test_doofinder_colour_extension(world: World) -> None:
    query = ColorEmbedder().embed_images([stripes([((10, 126, 140), 64)])])[0]
    response = world.client.post(
        "/6/flowcol/_image_search",
        params=[("color", "#0a7e8c"), ("rpp", "10"), ("filter[category][]", "dress")],
    )
    assert response.status_code == 200, response.text
    body = response.json()
    ref = reference(
        world.docs, lambda d: similarity(d["color"], query), lambda d: d["category"] == "dress"
    )
    assert body["total"] == len(ref.pool)
    ids = [str(d["id"]) for _, d in ref.pool]
    allowed = tie_runs(ids, [s for s, _ in ref.pool])[:10]
    got_ids = [r["id"] for r in body["results"]]
    problems = ranking_problems(
        got_ids,
        [r["score"] for r in body["results"]],
        allowed,
        {i: s for i, (s, _) in zip(ids, ref.pool, strict=True)},
    )
    assert not problems, problems
    assert "color_palette_hex" in body["results"][0] and "color_isolated" in body["results"][0]
    item = sorted(world.docs)[77]
    similar = world.client.get(
        "/6/flowcol/_visually_similar", params={"dfid": item, "color": "#c81e1e", "rpp": "20"}
    )
    flow = world.get([("id", item), ("color", "#c81e1e"), ("rows", "20"), ("fl", "id")])
    assert [r["id"] for r in similar.json()["results"]] == [
        d["id"] for d in flow["response"]["docs"]
    ]


# ---------------------------------------------------------------- errors


def _solr_error(body: Any, status: int, words: str) -> None:
    assert body["responseHeader"]["status"] == status and body["error"]["code"] == status
    assert words in body["error"]["msg"], body
    assert body["error"]["metadata"][1] == "org.apache.solr.common.SolrException"


@pytest.mark.parametrize(
    ("path", "params", "status", "words"),
    [
        ("/api/cores/nosuch/image", [("id", "x")], 404, "nosuch"),
        ("/api/cores/flowcol/image", [], 400, "Give a query image"),
        ("/api/cores/flowcol/image", [("id", "a"), ("url", "http://x/y.jpg")], 400, "one query"),
        ("/api/cores/flowcol/image", [("id", "no-such-item")], 404, "no-such-item"),
        ("/api/cores/flowcol/image", [("id", "x"), ("fq", "brand:[a TO")], 400, "fq 1"),
        ("/api/cores/flowcol/image", [("id", "x"), ("fq", "nosuch:1")], 400, "nosuch"),
        ("/api/cores/flowcol/image", [("id", "x"), ("wt", "xml")], 400, "json only"),
        ("/api/cores/flowcol/image", [("id", "x"), ("rows", "-1")], 400, "rows"),
        ("/api/cores/flowcol/image", [("id", "x"), ("sort", "price")], 400, "Sort Order"),
        ("/api/cores/flowcol/image", [("color", "teal")], 400, "Invalid color"),
        ("/api/cores/flowcol/image", [("base64", "bm90IGFuIGltYWdl")], 400, "image"),
        ("/api/cores/flowplain/image", [("color", "#ffffff")], 400, "color vector"),
        ("/api/cores/flowcol/nothing", [], 404, "Not Found"),
    ],
)
def test_errors_in_solr_shape(
    world: World, path: str, params: list[tuple[str, Any]], status: int, words: str
) -> None:
    response = world.client.get(path, params=params)
    assert response.status_code == status, response.text
    _solr_error(response.json(), status, words)


def test_post_needs_a_form_body(world: World) -> None:
    response = world.client.post(
        "/api/cores/flowcol/image",
        content=b'{"id": "x"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    _solr_error(response.json(), 400, "x-www-form-urlencoded")


def test_access_follows_the_engine(world: World) -> None:
    url = "/api/cores/flowlocked/image"
    item = sorted(world.docs)[3]
    denied = world.client.get(url, params={"id": item})
    assert denied.status_code == 403
    _solr_error(denied.json(), 403, "")
    allowed = world.client.get(
        url, params={"id": item, "rows": "3"}, headers={"Authorization": f"Token {TOKEN}"}
    )
    assert allowed.status_code == 200 and len(allowed.json()["response"]["docs"]) == 3
    origin = "https://www.shop.example"
    browser = world.client.get(url, params={"id": item}, headers={"Origin": origin})
    assert browser.status_code == 200
    assert browser.headers["access-control-allow-origin"] == origin
    preflight = world.client.options(url, headers={"Origin": origin})
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["access-control-allow-methods"]
    stranger = world.client.options(url, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers


# ---------------------------------------------------------------- no input gives a 5xx

FLOW_KEYS = ["id", "url", "base64", "color", "fq", "q", "rows", "start", "fl", "sort", "wt",
             "echoParams", "facet", "nope"]  # fmt: skip
FLOW_VALUES = st.one_of(
    st.text(max_size=16),
    st.sampled_from([
        "", "*:*", "category:dress", "price:[100 TO *]", "price:[* TO", "brand:(acme OR x)",
        "-brand:acme", "in_stock:true", "color_isolated:true", "#0a7e8c:0.7,#fff:0.3", "#fff",
        "#12", "nan", "-1", "0", "1e9", "999999999999", "price asc", "score asc", "id,score",
        "color_*", "*", "json", "xml", "true", "aGVsbG8=", "http://127.0.0.1:9/x.jpg",
        "dress-00000000", "{!frange}x", "\u0000",
    ]),
)  # fmt: skip
FLOW_PARAMS = st.lists(st.tuples(st.sampled_from(FLOW_KEYS), FLOW_VALUES), max_size=6)


def test_no_input_gives_a_5xx(world: World) -> None:
    item = sorted(world.docs)[9]

    @settings(
        max_examples=80,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(pairs=FLOW_PARAMS, with_item=st.booleans(), post=st.booleans())
    def check(pairs: list[tuple[str, str]], with_item: bool, post: bool) -> None:
        params = [("id", item), *pairs] if with_item else pairs
        url = "/api/cores/flowcol/image"
        response = (
            world.client.post(url, data=dict(params))
            if post
            else world.client.get(url, params=params)
        )
        assert response.status_code < 500, (params, response.text[:300])
        body = response.json()
        if response.status_code >= 400:
            _solr_error(body, response.status_code, "")
        else:
            assert body["responseHeader"]["status"] == 0 and "docs" in body["response"]

    check()
