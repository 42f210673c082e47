"""Search quality: k-NN recall against exact brute force, and same-category precision.

Indexes the clothing ``train/`` photos (folder = category) with the chosen embedder, then
queries with every ``validation/`` photo and measures, in the same run:

* **recall@k** of OpenSearch's lucene HNSW against exact top-k by numpy over the very vectors
  stored in the index — without a filter, and with a restrictive filter (two random
  categories, ~20 % of the catalog) inside the ``knn`` clause, as the gateway sends it;
* **category precision@k** of the returned items (share of hits in the query's category)
  beside the same for the exact top-k and the chance level (the category prior);
* the OpenSearch ``took`` per query.

Recall is meaningful for any model (it measures the index, not the embedder). Precision
measures the embedder: run it with real weights for a number that means something::

    python bench/search_quality.py                               # colour histogram (no weights)
    python bench/search_quality.py --embedder clip --pretrained laion2b_s34b_b79k
    python bench/search_quality.py --embedder clip --checkpoint PATH --model ViT-B-32
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, node_url  # noqa: E402
from imgsearch.embedders.registry import build_embedders  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.images import decode_image  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402
from indexer.runner import IndexOptions, index_feed  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing"
FIELD = "vec"


def engine(args: argparse.Namespace) -> EngineConfig:
    if args.embedder == "color":
        spec: dict[str, Any] = {"embedder": "color"}
    else:
        spec = {"embedder": "clip", "model": args.model, "pretrained": args.pretrained,
                "checkpoint": args.checkpoint, "device": args.device}  # fmt: skip
    return EngineConfig.model_validate(
        {
            "hashid": "bench-quality",
            "alias": f"bench-quality-{args.embedder}",
            "fields": {"category": {"type": "keyword", "facet": True}},
            "vectors": {FIELD: spec},
            "gateway": {"vector_field": FIELD},
        }
    )


def stored_vectors(client: Any, alias: str) -> tuple[list[str], list[str], npt.NDArray[np.float32]]:
    ids, categories, rows = [], [], []
    response = client.search(
        index=alias, body={"size": 10_000, "_source": ["id", "category", FIELD]}
    )
    for hit in response["hits"]["hits"]:
        ids.append(hit["_source"]["id"])
        categories.append(hit["_source"]["category"])
        rows.append(hit["_source"][FIELD])
    matrix = np.asarray(rows, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return ids, categories, matrix


def knn_ids(
    client: Any, alias: str, vector: list[float], k: int, allowed: list[str] | None
) -> tuple[list[str], float]:
    clause: dict[str, Any] = {"vector": vector, "k": k}
    if allowed is not None:
        clause["filter"] = {"terms": {"category": allowed}}
    body = {"size": k, "_source": ["id"], "query": {"knn": {FIELD: clause}}}
    response = client.search(index=alias, body=body)
    return [h["_source"]["id"] for h in response["hits"]["hits"]], float(response["took"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", choices=["color", "clip"], default="color")
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--k", type=int, default=10, help="results for precision and recall")
    parser.add_argument("--pool", type=int, default=200, help="the gateway's pool size k")
    parser.add_argument("--reuse", action="store_true", help="keep an existing index")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    config = engine(args)
    client = make_client(node_url(), timeout_s=120)
    embedder = build_embedders(config)[FIELD]
    began = time.perf_counter()
    if not (args.reuse and client.indices.exists_alias(name=config.alias)):
        client.indices.delete(index=f"{config.alias}_v*", ignore_unavailable=True)
        summary = index_feed(DATASET / "train", config, client, IndexOptions(),
                             embedders={FIELD: embedder})  # fmt: skip
        assert summary.ok, summary
    print(f"index ready in {time.perf_counter() - began:.0f} s", file=sys.stderr)
    ids, categories, matrix = stored_vectors(client, config.alias)
    row_of = {item_id: i for i, item_id in enumerate(ids)}
    prior = Counter(categories)

    rng = random.Random(args.seed)
    all_categories = sorted(prior)
    queries = sorted((DATASET / "validation").rglob("*.jpg"))
    sizes = sorted({args.k, args.pool})
    recall: dict[tuple[str, int], list[float]] = {}
    precision: dict[str, list[float]] = {"ann": [], "exact": [], "chance": []}
    took: list[float] = []
    for path in queries:
        query_category = path.parent.name
        vector = embedder.embed_images([decode_image(path.read_bytes())])[0].astype(np.float32)
        scores = matrix @ (vector / np.linalg.norm(vector))
        for mode in ("none", "filter"):
            allowed = None if mode == "none" else rng.sample(all_categories, 2)
            mask = np.ones(len(ids), bool) if allowed is None else np.isin(categories, allowed)
            eligible = np.flatnonzero(mask)
            ranked = eligible[np.argsort(-scores[eligible], kind="stable")]
            for k in sizes:
                exact = ranked[:k]
                got, ms = knn_ids(client, config.alias, [float(x) for x in vector], k, allowed)
                took.append(ms)
                # ties at the k-th score make several exact answers right: compare by score
                kth = scores[exact[-1]] if len(exact) else 1.0
                hits = sum(1 for item in got if scores[row_of[item]] >= kth - 1e-6)
                recall.setdefault((mode, k), []).append(hits / max(1, len(exact)))
                if mode == "none" and k == args.k:
                    hit_categories = [categories[row_of[i]] for i in got]
                    precision["ann"].append(np.mean([c == query_category for c in hit_categories]))
                    precision["exact"].append(
                        np.mean([categories[i] == query_category for i in exact])
                    )
                    precision["chance"].append(prior[query_category] / len(ids))

    label = (
        "colour histogram (HSV, 116-d)"
        if args.embedder == "color"
        else f"CLIP {args.model} ({args.pretrained or args.checkpoint or 'no weights'})"
    )
    rows = [
        *(
            (f"recall@{k} vs exact numpy, {'no filter' if mode == 'none' else 'category filter'}",
             f"{np.mean(recall[(mode, k)]):.4f}")
            for mode in ("none", "filter")
            for k in sizes
        ),
        (f"category precision@{args.k}, OpenSearch", f"{np.mean(precision['ann']):.3f}"),
        (f"category precision@{args.k}, exact numpy", f"{np.mean(precision['exact']):.3f}"),
        ("category precision, chance (prior)", f"{np.mean(precision['chance']):.3f}"),
        ("OpenSearch took p50 / p95 ms",
         f"{np.percentile(took, 50):.0f} / {np.percentile(took, 95):.0f}"),
    ]  # fmt: skip
    print(f"## Search quality ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- Command: `python bench/search_quality.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Machine: {machine()}")
    print(f"- Index: {len(ids)} train photos, {label}, lucene HNSW cosine (m 16, ef_c 128)")
    print(f"- Queries: {len(queries)} validation photos; filter = 2 random categories (~20 %)")
    print("  inside the knn clause; k = ef_search (lucene)\n")
    print("| measure | value |")
    print("|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
