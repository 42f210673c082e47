"""Lucene scalar quantisation (``knn.encoder: sq``) against float vectors: recall and memory.

Two indexes of the same documents, built with ``build_index_body`` from engine configs that
differ only in ``knn.encoder`` (lucene HNSW, m 16, ef_construction 128, cosine, 1 shard):

* **recall@k**: held-out queries through OpenSearch's ``knn`` query with k = 200 (the
  engines' default pool, which is also lucene's search breadth), its first 10 and all 200
  against the exact top 10 and top 200 by brute force in numpy (float64);
* **memory**: after a force merge to one segment, the index's files by kind
  (``_stats?include_segment_file_sizes``): ``vec`` float vectors, ``veq`` quantised ones,
  ``vex`` the HNSW graph. A search walks the graph and the vectors it scores, so the part
  that must stay in the page cache is ``vex + vec`` (float) against ``vex + veq`` (sq);
  lucene keeps ``vec`` on disk beside ``veq`` for merges (disk grows, hot memory shrinks);
* **p50 latency** of those k = 200 queries, one at a time (indicative: 2 shared cores here).

Vectors are synthetic but shaped like image embeddings: ``--dim`` (512) dimensions with a
decaying spectrum (axis scale 1/sqrt(1+i/16)), ``--clusters`` (2,000) centres and points
scattered around them, unit-normalised; queries are fresh points of the same clusters.

    python bench/knn_quantization.py               # 100k documents (> 1 hour on 2 busy cores)
    python bench/knn_quantization.py --docs 5000   # a quick look

Against ``$OPENSEARCH_URL`` (else the project's local node). The markdown report is printed
and written to ``bench/results/knn_quantization-<date>.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from opensearchpy import OpenSearch, helpers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, machine, node_url
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.engine_config import EngineConfig
from imgsearch.mapping import build_index_body
from imgsearch.search_client import make_client

Matrix = npt.NDArray[np.float32]
KS = (10, 200)


def vectors(count: int, dim: int, clusters: int, seed: int) -> tuple[Matrix, Matrix]:
    """Unit vectors around ``clusters`` centres with a decaying spectrum, and their labels."""
    rng = np.random.default_rng(seed)
    scale = (1.0 / np.sqrt(1.0 + np.arange(dim) / 16.0)).astype(np.float32)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * scale
    labels = rng.integers(0, clusters, size=count)
    points = centres[labels] + 0.6 * rng.standard_normal((count, dim)).astype(np.float32) * scale
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), labels.astype(np.float32)


def build(client: OpenSearch, index: str, encoder: str, docs: Matrix) -> float:
    config = EngineConfig.model_validate(
        {
            "hashid": "bench",
            "alias": "bench-knn-sq",
            "vectors": {"clip": {"embedder": "clip"}},
            "knn": {"encoder": encoder},
        }
    )
    info = EmbedderInfo("clip", "synthetic", docs.shape[1], "knn_cosine")
    body = build_index_body(config, {"clip": info})
    body["settings"]["index"]["refresh_interval"] = "-1"
    client.indices.delete(index=index, ignore_unavailable=True)
    client.indices.create(index=index, body=body)
    began = time.perf_counter()
    actions = (
        {"_index": index, "_id": str(i), "_source": {"id": str(i), "clip": row.tolist()}}
        for i, row in enumerate(docs)
    )
    for ok, item in helpers.streaming_bulk(
        client, actions, chunk_size=500, request_timeout=600, raise_on_error=True
    ):
        assert ok, item
    client.indices.put_settings(index=index, body={"index": {"refresh_interval": "1s"}})
    client.indices.refresh(index=index, request_timeout=600)
    client.indices.forcemerge(index=index, max_num_segments=1, request_timeout=3600)
    client.indices.refresh(index=index, request_timeout=600)
    return time.perf_counter() - began


def file_sizes(client: OpenSearch, index: str) -> dict[str, int]:
    stats = client.indices.stats(
        index=index, metric="segments,store", params={"include_segment_file_sizes": "true"}
    )
    total = stats["indices"][index]["primaries"]
    sizes = {k: int(v["size_in_bytes"]) for k, v in total["segments"]["file_sizes"].items()}
    sizes["store"] = int(total["store"]["size_in_bytes"])
    return sizes


def recall(
    client: OpenSearch, index: str, queries: Matrix, truth: dict[int, list[set[int]]]
) -> tuple[dict[int, float], float]:
    """The gateway's way: one k = 200 pool per query; recall@10 is the pool's first ten."""
    pool = max(KS)
    found: dict[int, list[float]] = {k: [] for k in KS}
    took: list[float] = []
    for qi, query in enumerate(queries):
        body = {
            "size": pool,
            "_source": False,
            "query": {"knn": {"clip": {"vector": query.tolist(), "k": pool}}},
        }
        began = time.perf_counter()
        hits = client.search(index=index, body=body)["hits"]["hits"]
        took.append((time.perf_counter() - began) * 1000)
        ranked = [int(h["_id"]) for h in hits]
        for k in KS:
            found[k].append(len(set(ranked[:k]) & truth[k][qi]) / k)
    return {k: float(np.mean(v)) for k, v in found.items()}, float(np.percentile(took, 50))


def exact_top(docs: Matrix, queries: Matrix) -> dict[int, list[set[int]]]:
    scores = queries.astype(np.float64) @ docs.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")
    return {k: [set(map(int, row[:k])) for row in order] for k in KS}


def mb(value: int) -> str:
    return f"{value / 1e6:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the two indexes")
    args = parser.parse_args()
    url = node_url()
    client = make_client(url, timeout_s=120)
    points, _ = vectors(args.docs + args.queries, args.dim, args.clusters, args.seed)
    docs, queries = points[: args.docs], points[args.docs :]
    print(f"exact top-k of {len(queries)} queries over {len(docs)} vectors", flush=True)
    truth = exact_top(docs, queries)
    rows: list[dict[str, Any]] = []
    for encoder in ("none", "sq"):
        index = f"bench-knn-{encoder}"
        print(f"building {index} ...", flush=True)
        build_s = build(client, index, encoder, docs)
        client.search(index=index, body={"size": 1, "query": {"match_all": {}}})  # warm
        recalls, p50 = recall(client, index, queries, truth)
        sizes = file_sizes(client, index)
        rows.append({"encoder": encoder, "build_s": build_s, "recall": recalls, "p50": p50,
                     "sizes": sizes})  # fmt: skip
        print(f"  {encoder}: build {build_s:.0f} s, recall {recalls}, p50 {p50:.1f} ms, "
              f"files {sizes}", flush=True)  # fmt: skip
        if not args.keep:
            client.indices.delete(index=index)
    report = render(args, rows, url)
    print(report)
    out = ROOT / "bench" / "results" / f"knn_quantization-{datetime.now(UTC):%Y-%m-%d-%H%M}.md"
    out.write_text(report)
    return 0


def render(args: argparse.Namespace, rows: list[dict[str, Any]], url: str) -> str:
    base = rows[0]
    hot_base = base["sizes"].get("vex", 0) + base["sizes"].get("vec", 0)
    lines = [
        f"# k-NN quantisation: lucene sq vs float ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"Machine: {machine()}; OpenSearch at {url}.",
        f"Command: `python bench/knn_quantization.py --docs {args.docs} --queries "
        f"{args.queries} --dim {args.dim} --clusters {args.clusters} --seed {args.seed}`",
        f"Data: {args.docs:,} synthetic unit vectors, {args.dim} dims, {args.clusters:,} "
        "clusters, decaying spectrum (see the script); queries: fresh points of the same "
        "clusters. Lucene HNSW m 16, ef_construction 128, cosine, 1 shard, force-merged to 1 "
        "segment.",
        "",
        "| encoder | recall@10 | recall@200 | p50 ms (k=200) | build+merge s | vec MB | veq MB "
        "| vex MB | hot (vex+vectors) MB | hot vs float | store MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row["sizes"]
        vectors_mb = s.get("veq", 0) if row["encoder"] == "sq" else s.get("vec", 0)
        hot = s.get("vex", 0) + vectors_mb
        lines.append(
            f"| {row['encoder']} | {row['recall'][10]:.4f} | {row['recall'][200]:.4f} | "
            f"{row['p50']:.1f} | {row['build_s']:.0f} | {mb(s.get('vec', 0))} | "
            f"{mb(s.get('veq', 0))} | {mb(s.get('vex', 0))} | {mb(hot)} | "
            f"{hot / hot_base:.2f} | {mb(s['store'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
