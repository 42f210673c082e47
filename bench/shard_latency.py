"""Latency of one faceted k-NN search on 1, 3 and 6 primary shards, old plan vs exact plan.

The same 100k documents (random unit vectors, synthetic shop fields) are indexed once per
shard count (lucene HNSW, cosine, 0 replicas, force-merged to one segment per shard). Each
query has 2 filters (``category`` terms, ``price`` range) and 3 facets (``brand`` selected,
so counted disjunctively, ``size`` terms, ``price`` range), ``k`` = 200, a 20-hit page, and
is sent as the gateway sends it (``gateway.search.dsl`` bodies, opensearch-py ``_msearch``):

* **one pass**: ``build_msearch`` for one shard (what the gateway did on any index before
  issue 14): exact on one shard only; on several its facets count up to ``k x shards``
  documents (the ``facets differ`` column counts the queries where they did);
* **two passes**: the exact plan on several shards (``pool_bodies`` then ``facet_msearch``:
  each pool's ids, then the page and the facets over exactly those ids);
* **no facets**: the same query without facets: one pass, exact on any shard count.

Rows report client-side p50/p95 over sequential requests (one client), and the ratio of
each p50 to the 1-shard one-pass p50 of the same run. Typical use (~15 min on 2 cores, most
of it indexing; ``--reuse`` keeps the indexes)::

    . .venv/bin/activate
    python bench/shard_latency.py            # OPENSEARCH_URL or the local node
    python bench/shard_latency.py --reuse

The markdown report is printed and written to ``bench/results/shard_latency-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opensearchpy import OpenSearch, helpers  # noqa: E402

from bench.common import machine, node_url  # noqa: E402
from gateway.search.dsl import build_msearch, facet_msearch  # noqa: E402
from gateway.search.model import FacetRequest, Range, SearchRequest, Terms  # noqa: E402
from gateway.search.results import read_facet_pass, read_msearch, read_pools  # noqa: E402
from imgsearch.embedders.base import EmbedderInfo  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.mapping import build_index_body  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CATEGORIES = [f"cat{i:02d}" for i in range(20)]
BRANDS = [f"brand{i:02d}" for i in range(30)]
SIZES = ["XS", "S", "M", "L", "XL", "XXL"]
K = 200


def config(shards: int, dim: int) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": f"bench-shards{shards}",
            "alias": f"bench-shards{shards}-d{dim}",
            "shards": shards,
            "fields": {
                "category": {"type": "keyword", "facet": True},
                "brand": {"type": "keyword", "facet": True},
                "size": {"type": "keyword", "facet": True},
                "price": {"type": "number", "facet": True},
                "in_stock": {"type": "boolean", "facet": True},
            },
            "vectors": {"clip": {"embedder": "clip"}},
            "gateway": {"k": K},
        }
    )


def documents(n: int, dim: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    for start in range(0, n, 5000):
        count = min(5000, n - start)
        vectors = rng.standard_normal((count, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for i in range(count):
            yield {
                "id": f"d{start + i:07d}",
                "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                "brand": BRANDS[int(rng.integers(len(BRANDS)))],
                "size": sorted(set(rng.choice(SIZES, size=int(rng.integers(1, 4))).tolist())),
                "price": round(float(rng.lognormal(3.5, 0.8)), 2),
                "in_stock": bool(rng.random() < 0.7),
                "clip": vectors[i].tolist(),
            }


def build(client: OpenSearch, cfg: EngineConfig, n: int, dim: int, reuse: bool) -> None:
    index = f"{cfg.alias}_v1"
    if reuse and client.indices.exists(index=index) and client.count(index=index)["count"] == n:
        print(f"reusing {index}", flush=True)
        return
    client.indices.delete(index=f"{cfg.alias}_v*", ignore_unavailable=True)
    info = EmbedderInfo(embedder="clip", version="bench-random", dim=dim, storage="knn_cosine")
    body = build_index_body(cfg, {"clip": info})
    body["settings"]["index"]["refresh_interval"] = "-1"
    body["aliases"] = {cfg.alias: {}}
    client.indices.create(index=index, body=body)
    began = time.perf_counter()
    actions = ({"_index": index, "_id": d["id"], "_source": d} for d in documents(n, dim, 7))
    helpers.bulk(client, actions, chunk_size=1000, request_timeout=600)
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=index)
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    print(f"indexed {index} in {time.perf_counter() - began:.0f}s", flush=True)


def requests(n: int, dim: int, facets: bool) -> list[SearchRequest]:
    rng = np.random.default_rng(11)
    out = []
    for _ in range(n):
        vector = rng.standard_normal(dim)
        vector /= np.linalg.norm(vector)
        low = float(rng.uniform(10, 40))
        chosen = rng.choice(CATEGORIES, size=8, replace=False).tolist()
        out.append(
            SearchRequest(
                engine="bench",
                vector_field="clip",
                k=K,
                vector=[float(x) for x in vector],
                filters={
                    "category": Terms("category", tuple(chosen)),
                    "price": Range("price", gte=low),
                    "brand": Terms("brand", tuple(rng.choice(BRANDS, 3, replace=False))),
                },
                facets=(
                    FacetRequest("brand", 10, "terms"),
                    FacetRequest("size", 10, "terms"),
                    FacetRequest("price", 10, "range"),
                )
                if facets
                else (),
                rpp=20,
            )
        )
    return out


def one_pass(client: OpenSearch, req: SearchRequest, cfg: EngineConfig) -> Any:
    lines = build_msearch(req, cfg, cfg.alias)
    return read_msearch(client.msearch(body=lines)["responses"], req, cfg)


def two_passes(client: OpenSearch, req: SearchRequest, cfg: EngineConfig) -> Any:
    lines = build_msearch(req, cfg, cfg.alias, shards=max(cfg.shards, 2))
    first = read_pools(client.msearch(body=lines)["responses"], req)
    second = facet_msearch(req, cfg, cfg.alias, first.ids, first.page_ids(req))
    return read_facet_pass(client.msearch(body=second)["responses"], req, cfg, first)


def timed(
    run: Callable[[OpenSearch, SearchRequest, EngineConfig], Any],
    client: OpenSearch,
    reqs: Sequence[SearchRequest],
    cfg: EngineConfig,
    warmup: int,
) -> tuple[list[float], list[Any]]:
    for req in reqs[:warmup]:
        run(client, req, cfg)
    ms, results = [], []
    for req in reqs:
        began = time.perf_counter()
        results.append(run(client, req, cfg))
        ms.append((time.perf_counter() - began) * 1000)
    return ms, results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=128, help="vector dimension")
    parser.add_argument(
        "--shards", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3, 6]
    )
    parser.add_argument("--queries", type=int, default=200, help="measured requests per row")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="keep indexes of the right size")
    args = parser.parse_args(argv)
    url = node_url()
    client = make_client(url, timeout_s=120)
    faceted = requests(args.queries, args.dim, facets=True)
    plain = requests(args.queries, args.dim, facets=False)
    rows: list[tuple[int, str, list[float], str]] = []
    for shards in args.shards:
        cfg = config(shards, args.dim)
        build(client, cfg, args.docs, args.dim, args.reuse)
        old_ms, old = timed(one_pass, client, faceted, cfg, args.warmup)
        new_ms, new = timed(two_passes, client, faceted, cfg, args.warmup)
        plain_ms, _ = timed(one_pass, client, plain, cfg, args.warmup)
        differ = sum(
            a.facets != b.facets or a.total != b.total for a, b in zip(old, new, strict=False)
        )
        rows.append((shards, "one pass (old plan)", old_ms, f"{differ}/{len(faceted)}"))
        rows.append((shards, "two passes (exact plan)", new_ms, ""))
        rows.append((shards, "no facets (one pass)", plain_ms, ""))
        print(f"{shards} shards: one pass p50 {np.median(old_ms):.1f} ms, two passes "
              f"{np.median(new_ms):.1f} ms, facets differ in {differ}", flush=True)  # fmt: skip
    base = float(np.median(rows[0][2]))
    lines = [
        f"# Shard latency ({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}. OpenSearch at {url} (one node). {args.docs:,} documents, "
        f"{args.dim}-d random unit vectors, k = {K}, {args.queries} sequential requests per row "
        f"after {args.warmup} warm-up. Command: `python bench/shard_latency.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`.",
        "",
        "| shards | plan | p50 ms | p95 ms | p50 / 1-shard one pass | facets differ |",
        "|---|---|---|---|---|---|",
    ]
    for shards, plan, ms, differ in rows:
        p50, p95 = float(np.percentile(ms, 50)), float(np.percentile(ms, 95))
        lines.append(f"| {shards} | {plan} | {p50:.1f} | {p95:.1f} | {p50 / base:.2f} | {differ} |")
    report = "\n".join(lines) + "\n"
    print(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"shard_latency-{dt.date.today().isoformat()}.md").write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
