"""Search latency: the gateway's ``_image_search`` beside raw ``_msearch`` and the embedder.

One run measures, per client concurrency level and with the same queries:

* **embed**: decode + CLIP embedding of the query photos, in-process (one embedding at a
  time, like the gateway's ``embed_concurrency=1``);
* **raw _msearch**: the exact ``_msearch`` the gateway builds for those queries
  (``parse_params`` → ``search_request`` → ``build_msearch``, with each photo's precomputed
  vector), sent with opensearch-py straight to the node;
* **gateway e2e**: ``POST /6/{hashid}/_image_search`` (base64 JSON) to the real app served by
  uvicorn (``--workers 1``) in a subprocess on 127.0.0.1, from client threads (one
  keep-alive ``http.client`` connection each; ``--client httpx`` for httpx);

each query having 2 filters (``category`` terms + ``price`` range) and 3 facets (``brand`` and
``size`` terms, ``price`` range). The gateway's own overhead is reported two ways:
``e2e p50 - embed p50 - msearch p50``, and per request from the ``Server-Timing`` header
(client-measured e2e minus the server's decode, embed and opensearch parts), split by its
``app`` part into the app's own work and the HTTP transport around it.
Goal (issue 15): per-request overhead p50 at 1 client <= 1.5 ms or <= 4x the HTTP floor
row's p50 of the same run, whichever is larger. The client is part of what is measured: httpx
spends ~0.8-1 ms of its own per request with this 16.7 KB body (run both ``--client`` values
to see it), which would count as the gateway's; the default is the thinner ``http.client``,
for the floor row too. The gateway parses a query string once per engine (it remembers the
parsed parameters, as a storefront sends the same few strings with every photo); with
``--fresh-query-strings`` every request adds its own ``session_id``, so every parse is new.

The catalog is >= 100,000 documents: the 3,409 clothing photos embedded once (vectors cached
in ``.cache/bench/``) plus copies of their vectors with small gaussian noise (renormalised),
with synthetic shop fields (category from the folder, ~30 brands, multi-valued sizes,
colour, lognormal price, in_stock, title). The index uses ``build_index_body`` (lucene HNSW,
cosine, 1 shard, 0 replicas).

By default the CLIP model is ViT-B-32 with *seeded random weights* (no weights can be
downloaded here): its embedding cost is the real one, its vectors are not semantically
meaningful. With real weights::

    python bench/search_latency.py --pretrained laion2b_s34b_b79k   # from the open_clip cache
    python bench/search_latency.py --checkpoint /path/ViT-B-32.pt   # a local state dict
    python bench/search_latency.py --device cuda ...                # on a GPU

Typical use on the local node (``scripts/opensearch.py start``; ``OPENSEARCH_URL`` overrides)::

    . .venv/bin/activate
    python bench/search_latency.py                  # builds the 100k index (~10 min, 2 cores)
    python bench/search_latency.py --reuse          # reuses it (~2-3 min)

With ``--runtimes torch,onnx-int8`` (see ``imgsearch/embedders/clip_onnx.py``) the embed and
gateway rows are measured for each CLIP runtime in the same run, each runtime against its own
index whose mapping records that runtime (the gateway refuses any other); the documents'
vectors are the torch ones in every index (search cost does not depend on which runtime
wrote them). ``_msearch`` and the HTTP floor do not depend on the runtime: measured once.

The markdown report is printed and written to ``bench/results/search_latency-<date>.md``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import itertools
import json
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from opensearchpy import OpenSearch, helpers  # noqa: E402

from bench.common import machine, node_url, photos_key  # noqa: E402
from gateway.dialects.doofinder.params import parse_params  # noqa: E402
from gateway.search.dsl import build_msearch  # noqa: E402
from imgsearch.embedders.base import Embedder  # noqa: E402
from imgsearch.embedders.clip import ClipEmbedder, write_seeded_checkpoint  # noqa: E402
from imgsearch.embedders.clip_onnx import OnnxClipEmbedder  # noqa: E402
from imgsearch.engine_config import ClipSpec, EngineConfig  # noqa: E402
from imgsearch.images import ImageLimits, decode_image  # noqa: E402
from imgsearch.mapping import build_index_body  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402

DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "clothing"
CACHE = ROOT / ".cache" / "bench"
RESULTS = ROOT / "bench" / "results"
HASHID = "benchshop"
POOL_K = 200
GOAL_MS = 1.5
GOAL_FLOOR_RATIO = 4.0

BRANDS = [
    "Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Indigo",
    "Juniper", "Kestrel", "Lumen", "Meridian", "Nimbus", "Onyx", "Pinecone", "Quarry",
    "Russet", "Saffron", "Tundra", "Umber", "Vesper", "Willow", "Xenon", "Yarrow", "Zephyr",
    "Atlas", "Breeze", "Cedar", "Drift",
]  # fmt: skip
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
COLOURS = ["black", "white", "grey", "navy", "blue", "red", "green", "beige", "brown",
           "pink", "yellow", "purple"]  # fmt: skip
PRICE_CAPS = ["40", "80", "150"]
FACETS = [("brand", "terms", 10), ("size", "terms", 10), ("price", "range", None)]


# --------------------------------------------------------------------------- setup


def clip_spec(args: argparse.Namespace) -> tuple[ClipSpec, bool]:
    """The CLIP spec to use, and whether its weights are seeded random ones."""
    if args.checkpoint is not None:
        return ClipSpec(model=args.model, pretrained=None, checkpoint=args.checkpoint,
                        device=args.device), False  # fmt: skip
    if args.pretrained:
        return ClipSpec(model=args.model, pretrained=args.pretrained, device=args.device), False
    path = CACHE / f"{args.model}-seed{args.seed}.pt"
    if not path.is_file():
        print(f"writing seeded random {args.model} weights to {path}", flush=True)
        write_seeded_checkpoint(path, model=args.model, seed=args.seed)
    return ClipSpec(model=args.model, pretrained=None, checkpoint=path, device=args.device), True


def engine_config(index: str, spec: ClipSpec) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": HASHID,
            "alias": index,
            "fields": {
                "title": {"type": "text"},
                "url": {"type": "keyword"},
                "category": {"type": "keyword", "facet": True},
                "brand": {"type": "keyword", "facet": True},
                "size": {"type": "keyword", "facet": True},
                "colour": {"type": "keyword", "facet": True},
                "price": {"type": "number", "facet": True},
                "in_stock": {"type": "boolean", "facet": True},
            },
            "vectors": {"clip": spec.model_dump(mode="json")},
            "result_fields": {"title": "title", "url": "url", "image_url": "image_url"},
            "gateway": {"k": POOL_K},
        }
    )


def photos(dataset: Path) -> list[Path]:
    found: list[Path] = []
    for split in ("train", "validation"):
        found.extend(sorted((dataset / split).rglob("*.jpg")))
    if not found:
        raise SystemExit(f"no photos under {dataset}/{{train,validation}}")
    return found


def original_vectors(embedder: ClipEmbedder, paths: Sequence[Path]) -> npt.NDArray[np.float32]:
    """The photos' vectors, embedded once and cached by model version and photo list."""
    key = f"{embedder.info.version}|{photos_key(paths)}"
    tag = embedder.info.version.replace("/", "_").replace(":", "_")
    cache = CACHE / f"vectors-{tag}-{len(paths)}.npz"
    if cache.is_file():
        stored = np.load(cache)
        if str(stored["key"]) == key:
            print(f"vectors: cached {cache}", flush=True)
            vectors: npt.NDArray[np.float32] = stored["vectors"]
            return vectors
    print(f"embedding {len(paths)} photos with {embedder.info.version} ...", flush=True)
    started = time.perf_counter()
    chunks = []
    batch = 32
    for start in range(0, len(paths), batch):
        images = [decode_image(p.read_bytes()) for p in paths[start : start + batch]]
        chunks.append(embedder.embed_images(images))
        if (start // batch) % 20 == 0:
            rate = (start + len(images)) / (time.perf_counter() - started)
            print(f"  {start + len(images)}/{len(paths)} ({rate:.1f} images/s)", flush=True)
    vectors = np.concatenate(chunks).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, vectors=vectors, key=np.array(key))
    print(f"  done in {time.perf_counter() - started:.0f} s -> {cache}", flush=True)
    return vectors


def documents(
    paths: Sequence[Path], vectors: npt.NDArray[np.float32], count: int, noise: float, seed: int
) -> Iterator[dict[str, Any]]:
    """``count`` bulk actions: the originals, then perturbed copies cycling over them."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    n = len(paths)
    sigma = noise / np.sqrt(vectors.shape[1])  # noise vector norm ~ ``noise``
    for i in range(count):
        base = i % n
        vector = vectors[base]
        if i >= n:
            vector = vector + rng.normal(0.0, sigma, vector.shape).astype(np.float32)
            vector = vector / np.linalg.norm(vector)
        path = paths[base]
        category = path.parent.name
        brand = pick.choice(BRANDS)
        colour = pick.choice(COLOURS)
        item_id = f"{category}-{path.stem}-{i // n}"
        yield {
            "_id": item_id,
            "_source": {
                "id": item_id,
                "id_md5": f"{i:032x}",
                "title": f"{brand} {colour} {category} #{i}",
                "url": f"https://shop.example/p/{item_id}",
                "image_url": f"https://cdn.shop.example/{path.name}",
                "category": category,
                "brand": brand,
                "size": sorted(pick.sample(SIZES, pick.randint(1, 4))),
                "colour": colour,
                "price": round(float(rng.lognormal(np.log(45.0), 0.6)), 2),
                "in_stock": pick.random() < 0.8,
                "clip": np.round(vector, 5).tolist(),
            },
        }


@dataclass
class IndexInfo:
    name: str
    docs: int
    segments: int
    built_s: float | None  # None: reused
    force_merged: bool


def segment_count(client: OpenSearch, index: str) -> int:
    rows = client.cat.segments(index=index, format="json")
    return len(rows) if isinstance(rows, list) else -1


def ensure_index(
    client: OpenSearch,
    config: EngineConfig,
    embedder: Embedder,
    paths: Sequence[Path],
    vectors: npt.NDArray[np.float32],
    args: argparse.Namespace,
) -> IndexInfo:
    alias = config.alias
    index = f"{alias}_v1"  # served through the alias, as the indexer does
    if (
        args.reuse
        and client.indices.exists(index=index)
        and client.indices.exists_alias(name=alias, index=index)
    ):
        count = int(client.count(index=index)["count"])
        mapping = client.indices.get_mapping(index=index)
        meta = next(iter(mapping.values()))["mappings"].get("_meta", {})
        version = meta.get("vectors", {}).get("clip", {}).get("version")
        if count == args.docs and version == embedder.info.version:
            segments = segment_count(client, index)
            print(f"index: reusing {index} ({count} docs, {segments} segments)", flush=True)
            return IndexInfo(index, count, segments, None, segments == 1)
        print(f"index: {index} has {count} docs / {version}; rebuilding", flush=True)
    client.indices.delete(index=index, ignore_unavailable=True)
    body = build_index_body(config, {"clip": embedder.info})
    body["settings"]["index"]["refresh_interval"] = "-1"
    body["aliases"] = {alias: {}}
    client.indices.create(index=index, body=body)
    print(f"index: loading {args.docs} docs into {index} ...", flush=True)
    started = time.perf_counter()
    actions = documents(paths, vectors, args.docs, args.noise, args.seed)
    bulk_client = OpenSearch(hosts=[client.transport.hosts[0]], timeout=300, pool_maxsize=4)
    results = helpers.parallel_bulk(
        bulk_client, actions, index=index, thread_count=2, chunk_size=500, queue_size=2,
        request_timeout=300,
    )  # fmt: skip
    for done, (ok, item) in enumerate(results, start=1):
        if not ok:
            raise SystemExit(f"bulk failure: {item}")
        if done % 20_000 == 0:
            rate = done / (time.perf_counter() - started)
            print(f"  {done}/{args.docs} ({rate:.0f} docs/s)", flush=True)
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=index, request_timeout=600)
    loaded = time.perf_counter() - started
    print(f"  loaded + refreshed in {loaded:.0f} s", flush=True)
    if args.force_merge:
        merge_started = time.perf_counter()
        client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=1800)
        client.indices.refresh(index=index, request_timeout=600)
        print(f"  force-merged to 1 segment in {time.perf_counter() - merge_started:.0f} s")
    count = int(client.count(index=index)["count"])
    if count != args.docs:
        raise SystemExit(f"index has {count} docs, expected {args.docs}")
    return IndexInfo(
        index, count, segment_count(client, index), time.perf_counter() - started, args.force_merge
    )


# --------------------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    path: Path
    params: tuple[tuple[str, str], ...]
    body: bytes  # the JSON request body with the base64 photo
    msearch: list[dict[str, Any]]  # what the gateway sends for it


def query_params(category: str, price_cap: str) -> list[tuple[str, str]]:
    pairs = [("filter[category][]", category), ("filter[price][lte]", price_cap)]
    for i, (name, kind, size) in enumerate(FACETS):
        pairs += [(f"facets[{i}][field]", name), (f"facets[{i}][type]", kind)]
        if size is not None:
            pairs.append((f"facets[{i}][size]", str(size)))
    return pairs


def make_queries(
    config: EngineConfig,
    paths: Sequence[Path],
    vectors: npt.NDArray[np.float32],
    count: int,
    seed: int,
) -> list[Query]:
    """``count`` query photos from the validation split, spread over the categories."""
    rng = random.Random(seed + 1)
    candidates = [i for i, p in enumerate(paths) if p.parent.parent.name == "validation"]
    chosen = sorted(rng.sample(candidates or list(range(len(paths))), count))
    queries = []
    for n, i in enumerate(chosen):
        path = paths[i]
        params = query_params(path.parent.name, PRICE_CAPS[n % len(PRICE_CAPS)])
        parsed = parse_params(params, config)
        request = parsed.search_request(config, [float(x) for x in vectors[i]])
        body = json.dumps({"image": base64.b64encode(path.read_bytes()).decode()}).encode()
        queries.append(
            Query(path, tuple(params), body, build_msearch(request, config, config.alias))
        )
    return queries


# --------------------------------------------------------------------------- load


@dataclass
class Sample:
    ms: float
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class Phase:
    name: str
    concurrency: int
    samples: list[Sample]
    wall_s: float
    errors: list[str]

    def ms(self) -> npt.NDArray[np.float64]:
        return np.array([s.ms for s in self.samples], dtype=np.float64)

    def rps(self) -> float:
        return len(self.samples) / self.wall_s if self.wall_s > 0 else 0.0


def run_phase(
    name: str,
    concurrency: int,
    requests: int,
    time_cap_s: float,
    warmup: int,
    worker: Callable[[], Callable[[int], Sample]],
) -> Phase:
    """``requests`` calls of ``worker()(i)`` from ``concurrency`` threads (after a warm-up)."""
    call = worker()
    for i in range(warmup):
        call(i)
    lock = threading.Lock()
    counter = iter(range(requests))
    samples: list[Sample] = []
    errors: list[str] = []
    deadline = time.perf_counter() + time_cap_s

    def loop() -> None:
        mine = worker()
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            try:
                sample = mine(i)
            except Exception as exc:  # recorded and reported, never hidden
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                continue
            with lock:
                samples.append(sample)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase = Phase(name, concurrency, samples, time.perf_counter() - started, errors)
    capped = " (time cap hit)" if len(samples) + len(errors) < requests else ""
    p50 = float(np.percentile(phase.ms(), 50)) if samples else float("nan")
    print(f"  {name:<16} c={concurrency}: {len(samples)} ok, {len(errors)} errors, "
          f"p50 {p50:.1f} ms, {phase.rps():.1f} req/s{capped}", flush=True)  # fmt: skip
    if errors:
        print(f"    first error: {errors[0]}", flush=True)
    return phase


def embed_worker(
    embedder: Embedder, images: Sequence[bytes], slot: threading.Semaphore
) -> Callable[[], Callable[[int], Sample]]:
    """Decode (in parallel) + embed (one at a time, as the gateway's embed semaphore)."""
    limits = ImageLimits()

    def make() -> Callable[[int], Sample]:
        def call(i: int) -> Sample:
            started = time.perf_counter()
            image = decode_image(images[i % len(images)], limits)
            decoded = time.perf_counter()
            with slot:
                embed_started = time.perf_counter()
                embedder.embed_images([image])
            done = time.perf_counter()
            return Sample((done - started) * 1000, {
                "decode": (decoded - started) * 1000, "embed": (done - embed_started) * 1000,
            })  # fmt: skip

        return call

    return make


def msearch_worker(url: str, queries: Sequence[Query]) -> Callable[[], Callable[[int], Sample]]:
    def make() -> Callable[[int], Sample]:
        client = make_client(url, timeout_s=30.0)

        def call(i: int) -> Sample:
            lines = queries[i % len(queries)].msearch
            started = time.perf_counter()
            answer = client.msearch(body=lines)
            ms = (time.perf_counter() - started) * 1000
            responses = answer.get("responses", [])
            bad = [r for r in responses if "error" in r]
            if bad:
                raise RuntimeError(json.dumps(bad[0])[:300])
            took = max((float(r.get("took", 0)) for r in responses), default=0.0)
            return Sample(ms, {"took": took})

        return call

    return make


def parse_server_timing(header: str) -> dict[str, float]:
    parts: dict[str, float] = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";dur=")
        if name and rest:
            parts[name] = float(rest)
    return parts


Response = tuple[int, dict[str, str], bytes]  # status, headers (lower-case names), body
Client = Callable[[str, str, bytes | None, dict[str, str]], Response]


def keep_alive_client(base: str) -> Client:
    """One keep-alive HTTP/1.1 connection (``http.client``), reopened when the server closed it
    while idle (uvicorn's keep-alive timeout, between rows)."""
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)

    def send(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def call(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        try:
            return send(method, path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionError):
            connection.close()  # the next request opens a new connection
            return send(method, path, body, headers)

    return call


def httpx_client(base: str) -> Client:
    client = httpx.Client(base_url=base, timeout=60.0)

    def call(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Response:
        response = client.request(method, path, content=body, headers=headers)
        return response.status_code, dict(response.headers), response.read()

    return call


CLIENTS: dict[str, Callable[[str], Client]] = {
    "http.client": keep_alive_client,
    "httpx": httpx_client,
}


def gateway_worker(
    base: str, queries: Sequence[Query], client: Callable[[str], Client], fresh: bool = False
) -> Callable[[], Callable[[int], Sample]]:
    # The query string is encoded once, as a storefront builds its URL once; ``fresh`` makes
    # each request's string new (its own ``session_id``): the gateway parses every one.
    paths = [f"/6/{HASHID}/_image_search?{urlencode(q.params)}" for q in queries]
    calls = itertools.count()
    headers = {"content-type": "application/json"}

    def make() -> Callable[[int], Sample]:
        send = client(base)

        def call(i: int) -> Sample:
            path = paths[i % len(paths)]
            if fresh:
                path += f"&session_id={next(calls)}"
            body = queries[i % len(queries)].body
            started = time.perf_counter()
            status, answer_headers, answer = send("POST", path, body, headers)
            ms = (time.perf_counter() - started) * 1000
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {answer[:200]!r}")
            return Sample(ms, parse_server_timing(answer_headers.get("server-timing", "")))

        return call

    return make


def floor_worker(
    base: str, client: Callable[[str], Client]
) -> Callable[[], Callable[[int], Sample]]:
    """A trivial gateway route (``GET /docs``, a small static HTML page): the HTTP floor."""

    def make() -> Callable[[int], Sample]:
        send = client(base)

        def call(i: int) -> Sample:
            started = time.perf_counter()
            status, _, _ = send("GET", "/docs", None, {})
            if status != 200:
                raise RuntimeError(f"HTTP {status}")
            return Sample((time.perf_counter() - started) * 1000)

        return call

    return make


# --------------------------------------------------------------------------- gateway


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_gateway(
    url: str, config: EngineConfig, workdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    engines = workdir / "engines"
    engines.mkdir()
    (engines / f"{HASHID}.json").write_text(json.dumps(config.model_dump(mode="json")))
    port = free_port()
    env = {**os.environ, "IMGSEARCH_OPENSEARCH_URL": url, "IMGSEARCH_ENGINES_DIR": str(engines),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    log = (workdir / "gateway.log").open("wb")
    command = [sys.executable, "-m", "uvicorn", "gateway.app:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--log-level", "warning", "--no-access-log"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gateway exited: {(workdir / 'gateway.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.terminate()
    raise SystemExit("gateway did not become healthy in 120 s")


# --------------------------------------------------------------------------- report


def pct(values: npt.NDArray[np.float64], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def row(label: str, phase: Phase) -> str:
    ms = phase.ms()
    return (f"| {phase.concurrency} | {label} | {len(ms)} | {pct(ms, 50):.1f} | "
            f"{pct(ms, 95):.1f} | {pct(ms, 99):.1f} | {phase.rps():.1f} |")  # fmt: skip


def part(phase: Phase, name: str) -> npt.NDArray[np.float64]:
    return np.array([s.parts.get(name, 0.0) for s in phase.samples], dtype=np.float64)


def index_line(info: IndexInfo) -> str:
    if info.built_s is None:
        return f"`{info.name}` reused ({info.segments} segment(s))"
    merged = "force-merged to 1 segment" if info.force_merged else "not force-merged"
    return f"`{info.name}` built in {info.built_s:.0f} s, {merged}, {info.segments} segment(s)"


def report(
    args: argparse.Namespace,
    infos: dict[str, IndexInfo],
    os_version: str,
    dim: int,
    spec: ClipSpec,
    seeded: bool,
    phases: dict[tuple[str, int], Phase],
    example: Query,
) -> str:
    weights = (f"**seeded random weights** (seed {args.seed}; realistic embedding cost, "
               "vectors not semantically meaningful)" if seeded
               else str(spec.checkpoint or spec.pretrained))  # fmt: skip
    info = next(iter(infos.values()))
    indexes = "; ".join(f"{r}: {index_line(i)}" for r, i in infos.items())
    query = "&".join(f"{k}={v}" for k, v in example.params)
    lines = [
        f"# Search latency — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Machine: {machine()}",
        f"- OpenSearch {os_version}, one index per runtime, {info.docs:,} docs, dim {dim}, "
        f"lucene HNSW cosine (m 16, ef_construction 128), 1 shard, 0 replicas; {indexes}",
        f"- Catalog: {len(photos(args.dataset)):,} clothing photos + perturbed copies "
        f"(gaussian noise, norm ~{args.noise}, renormalised); fields category, brand (30), "
        "size (multi), colour, price (lognormal), in_stock, title",
        f"- Embedder: CLIP {spec.model}, {weights}, device {spec.device}, runtimes "
        f"{', '.join(args.runtimes)} (`ClipSpec.runtime`)",
        f"- Query: k (pool) {POOL_K}, rpp 20, 2 filters + 3 facets "
        f"(2 `_msearch` bodies): `{query}`"
        + (
            " plus `&session_id=<n>`, new for every request (no remembered parse)"
            if args.fresh_query_strings
            else ""
        ),
        f"- Gateway: uvicorn, 1 worker, 127.0.0.1; clients: {args.client} threads in the bench "
        f"process, one keep-alive connection each (same machine); {args.requests} requests "
        "per row after a warm-up, "
        f"time cap {args.time_cap:.0f} s per row",
        "",
        "| clients | measurement | n | p50 ms | p95 ms | p99 ms | req/s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in args.concurrency:
        for r in args.runtimes:
            lines.append(row(f"embed alone, {r} (decode + embed, in-process)",
                             phases[(f"embed:{r}", c)]))  # fmt: skip
        lines.append(row("raw OpenSearch `_msearch` (opensearch-py)", phases[("msearch", c)]))
        for r in args.runtimes:
            lines.append(row(f"gateway `_image_search` end-to-end, {r}",
                             phases[(f"gateway:{r}", c)]))  # fmt: skip
        lines.append(
            row(f"HTTP floor: gateway `GET /docs` ({args.client} + uvicorn)", phases[("floor", c)])
        )
    lines += [
        "",
        "Gateway overhead (ms). *By subtraction*: e2e p50 - embed p50 - `_msearch` p50. "
        "*Per request*: client-measured e2e - the server's `decode` + `embed` + `opensearch` "
        "(from `Server-Timing`); it includes the HTTP client, uvicorn, FastAPI, base64/JSON "
        "and parameter parsing, the thread hops and response formatting; with more clients "
        "than embedding slots it also includes the wait for the slot (the `embed` timer "
        "starts once the slot is held), so the goal is judged at 1 client. *In app*: the "
        "server's `app` part (the whole app, from the metrics middleware) minus its three "
        "parts; *transport*: e2e - `app` (HTTP client, uvicorn's parsing and writing).",
        "",
        "| clients | runtime | by subtraction p50 | per request p50 | per request p95 | "
        "in app p50 | transport p50 | server decode p50 | server embed p50 | "
        "server opensearch p50 | OpenSearch took p50 | "
        f"goal ≤ max({GOAL_MS:g} ms, {GOAL_FLOOR_RATIO:g} x floor p50) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c, r in ((c, r) for c in args.concurrency for r in args.runtimes):
        e2e, embed = phases[(f"gateway:{r}", c)], phases[(f"embed:{r}", c)]
        msearch = phases[("msearch", c)]
        subtraction = pct(e2e.ms(), 50) - pct(embed.ms(), 50) - pct(msearch.ms(), 50)
        server = part(e2e, "decode") + part(e2e, "embed") + part(e2e, "opensearch")
        per_request = e2e.ms() - server
        in_app = part(e2e, "app") - server
        transport = e2e.ms() - part(e2e, "app")
        goal = max(GOAL_MS, GOAL_FLOOR_RATIO * pct(phases[("floor", c)].ms(), 50))
        ok = "met" if pct(per_request, 50) <= goal else "NOT met"
        ok = f"{ok} (≤ {goal:.2f})" if c == 1 else "n/a (includes embed-slot wait)"
        lines.append(
            f"| {c} | {r} | {subtraction:.1f} | {pct(per_request, 50):.2f} | "
            f"{pct(per_request, 95):.2f} | {pct(in_app, 50):.2f} | {pct(transport, 50):.2f} | "
            f"{pct(part(e2e, 'decode'), 50):.1f} | "
            f"{pct(part(e2e, 'embed'), 50):.1f} | {pct(part(e2e, 'opensearch'), 50):.1f} | "
            f"{pct(part(e2e, 'opensearch_took'), 50):.0f} | {ok} |"
        )
    errors = sum(len(p.errors) for p in phases.values())
    lines += [
        "",
        f"Errors: {errors}. With more clients than embedding slots (the gateway embeds one "
        "image at a time, `IMGSEARCH_EMBED_CONCURRENCY`), e2e includes queueing for the slot; "
        "so does the in-process embed row, which uses the same one-at-a-time rule. All three "
        "share the machine's cores with OpenSearch and the client threads.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Latency (p50/p95/p99) and throughput of the gateway's /6/{hashid}/_image_search "
            "with 2 filters and 3 facets over a >= 100k-document index, beside the raw "
            "OpenSearch _msearch it sends and the embedding alone, in the same run."
        ),
        epilog="Defaults take < 15 min on 2 CPU cores (index build included), < 3 min with "
        "--reuse. OPENSEARCH_URL selects a cluster; otherwise the local node is started.",
    )
    parser.add_argument("--docs", type=int, default=100_000,
                        help="documents in the index (default 100000)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=300,
                        help="measured requests per row (default 300)")  # fmt: skip
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4],
        help="comma-separated client counts (default 1,4)",
    )  # fmt: skip
    parser.add_argument("--time-cap", type=float, default=90.0,
                        help="seconds per row before stopping early (default 90)")  # fmt: skip
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls per row")
    parser.add_argument("--queries", type=int, default=60,
                        help="distinct query photos, cycled (default 60)")  # fmt: skip
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the index if it has --docs docs of this model")  # fmt: skip
    parser.add_argument("--force-merge", action=argparse.BooleanOptionalAction, default=True,
                        help="force-merge a new index to 1 segment (default on)")  # fmt: skip
    parser.add_argument("--index", default=None,
                        help="index name (default bench-image-search-<docs>)")  # fmt: skip
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--pretrained", default=None,
                        help="open_clip pretrained tag, from the local cache")  # fmt: skip
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="local open_clip state dict")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of random weights and data (default 0)")  # fmt: skip
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--runtimes", type=lambda s: s.split(","), default=["torch"],
                        help="CLIP runtimes, e.g. torch,onnx-int8 (default torch)")  # fmt: skip
    parser.add_argument("--noise", type=float, default=0.3,
                        help="noise norm of perturbed copies (default 0.3)")  # fmt: skip
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="folder with train/ and validation/ category folders")  # fmt: skip
    parser.add_argument("--client", choices=sorted(CLIENTS), default="http.client",
                        help="client of the gateway and floor rows")  # fmt: skip
    parser.add_argument("--fresh-query-strings", action="store_true",
                        help="a new query string per request (no remembered parse)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the report")
    args = parser.parse_args(argv)
    if args.docs < 1 or args.requests < 1 or min(args.concurrency) < 1:
        parser.error("--docs, --requests and --concurrency must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    url = node_url()
    client = make_client(url, timeout_s=120.0)
    os_version = str(client.info()["version"]["number"])
    # The ONNX runtimes' exported files, shared with the gateway subprocess and embed_latency.py.
    os.environ.setdefault("IMGSEARCH_ONNX_CACHE", str(CACHE / "onnx"))
    spec, seeded = clip_spec(args)
    reference = ClipEmbedder(spec)
    dim = reference.info.dim
    print(f"OpenSearch {os_version} at {url}; CLIP {spec.model} dim {dim}"
          + (" (seeded RANDOM weights)" if seeded else ""), flush=True)  # fmt: skip
    paths = photos(args.dataset)
    vectors = original_vectors(reference, paths)
    name = args.index or f"bench-image-search-{args.docs}"
    configs: dict[str, EngineConfig] = {}
    embedders: dict[str, Embedder] = {}
    infos: dict[str, IndexInfo] = {}
    for runtime in args.runtimes:
        runtime_spec = spec.model_copy(update={"runtime": runtime})
        embedders[runtime] = reference if runtime == "torch" else OnnxClipEmbedder(runtime_spec)
        configs[runtime] = engine_config(
            name if runtime == "torch" else f"{name}-{runtime}", runtime_spec
        )
        infos[runtime] = ensure_index(
            client, configs[runtime], embedders[runtime], paths, vectors, args
        )
    first = args.runtimes[0]
    queries = make_queries(configs[first], paths, vectors, min(args.queries, len(paths)), args.seed)
    images = [q.path.read_bytes() for q in queries]

    phases: dict[tuple[str, int], Phase] = {}
    client = CLIENTS[args.client]
    for runtime in args.runtimes:
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            process, base = start_gateway(url, configs[runtime], Path(tmp))
            try:
                print(f"gateway ({runtime}) at {base}; measuring", flush=True)
                slot = threading.Semaphore(1)
                for c in args.concurrency:
                    measure: list[tuple[str, Callable[[], Callable[[int], Sample]]]] = [
                        (f"embed:{runtime}", embed_worker(embedders[runtime], images, slot)),
                        (
                            f"gateway:{runtime}",
                            gateway_worker(base, queries, client, fresh=args.fresh_query_strings),
                        ),
                    ]
                    if runtime == first:  # neither depends on the runtime
                        measure += [
                            ("msearch", msearch_worker(url, queries)),
                            ("floor", floor_worker(base, client)),
                        ]
                    for phase, worker in measure:
                        phases[(phase, c)] = run_phase(
                            phase, c, args.requests, args.time_cap, args.warmup, worker
                        )
            finally:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()

    text = report(args, infos, os_version, dim, spec, seeded, phases, queries[0])
    text += f"Total run time: {time.perf_counter() - started:.0f} s.\n"
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"search_latency-{dt.datetime.now():%Y-%m-%d-%H%M}.md"
    out.write_text(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
