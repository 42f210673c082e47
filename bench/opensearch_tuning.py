"""The OpenSearch part of an image search: what the gateway sends, and what is ours to tune.

Over an index built by ``search_latency.py`` (same fields, same 2 filters + 3 facets), with
query vectors that are stored vectors plus noise (no model needed), in one run:

- **Plans**: the raw single-body k-NN query (page + plain facets, as the gateway's first
  body) beside the gateway's 2-body ``_msearch`` (the second body counts the selected
  ``category`` facet disjunctively) — the price of disjunctive faceting.
- **Breadth**: pool size ``k`` and the lucene query's ``method_parameters.ef_search`` against
  latency and recall@pool, where recall is measured against the exact filtered top-k from
  numpy over every stored vector (ties at the k-th score count as found).
- **Payload**: ``_source`` as the gateway asks for it (every stored field but the vectors)
  against only the result fields, and against no ``_source`` at all.
- **Request cache**: ``request_cache=true`` on the ``_msearch``, for repeated queries (the
  cached case: "more like this item" and popular queries) and for unique ones.

Rows alternate in blocks, so load on a shared machine falls on all of them alike.

    python bench/opensearch_tuning.py --index bench-image-search-20000 --requests 200
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from opensearchpy import OpenSearch, helpers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, machine, node_url
from bench.search_latency import PRICE_CAPS, engine_config, query_params
from gateway.dialects.doofinder.params import parse_params
from gateway.search.dsl import build_msearch
from gateway.search.model import SearchRequest
from imgsearch.engine_config import ClipSpec, EngineConfig
from imgsearch.search_client import make_client

VECTOR = "clip"
RECALL_GOAL = 0.999
SCORE_TIE = 1e-6  # OpenSearch scores in float32: a hit this close to the k-th counts as found


@dataclass
class Catalog:
    ids: list[str]
    vectors: npt.NDArray[np.float32]  # unit rows
    category: npt.NDArray[np.str_]
    price: npt.NDArray[np.float64]


@dataclass
class Case:
    request: SearchRequest
    exact: dict[int, set[str]]  # k -> ids whose score reaches the exact k-th score
    allowed: dict[int, int]  # k -> how many documents pass the filter (pool size cap)


@dataclass
class Row:
    name: str
    make_lines: Callable[[Case], list[dict[str, Any]]]
    params: dict[str, Any] = field(default_factory=dict)
    recall_k: int | None = None  # measure recall@pool with this k
    ms: list[float] = field(default_factory=list)
    took: list[float] = field(default_factory=list)
    recalls: list[float] = field(default_factory=list)
    short: int = 0  # pools with fewer hits than documents passing the filter (up to k)


def load_catalog(client: OpenSearch, index: str) -> Catalog:
    ids, vectors, category, price = [], [], [], []
    for hit in helpers.scan(
        client,
        index=index,
        query={"query": {"match_all": {}}},
        size=2000,
        _source=["id", VECTOR, "category", "price"],
    ):
        source = hit["_source"]
        ids.append(str(source.get("id", hit["_id"])))
        vectors.append(source[VECTOR])
        category.append(source["category"])
        price.append(float(source["price"]))
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return Catalog(ids, matrix, np.asarray(category), np.asarray(price))


def make_cases(
    catalog: Catalog, config: EngineConfig, count: int, pools: Sequence[int], seed: int
) -> list[Case]:
    """Stored vectors + noise of norm ~0.3 as queries, with the latency bench's filters."""
    rng = np.random.default_rng(seed)
    cases = []
    for n, i in enumerate(rng.choice(len(catalog.ids), size=count, replace=False)):
        noise = np.asarray(rng.normal(size=catalog.vectors.shape[1]), dtype=np.float32)
        query = catalog.vectors[i] + 0.3 * noise / np.linalg.norm(noise)
        query /= np.linalg.norm(query)
        cap = PRICE_CAPS[n % len(PRICE_CAPS)]
        params = parse_params(query_params(str(catalog.category[i]), cap), config)
        request = params.search_request(config, [float(x) for x in query])
        passing = (catalog.category == catalog.category[i]) & (catalog.price <= float(cap))
        scores = (1.0 + catalog.vectors[passing] @ query) / 2.0  # OpenSearch's cosine score
        ids = np.asarray(catalog.ids)[passing]
        order = np.argsort(-scores, kind="stable")
        exact: dict[int, set[str]] = {}
        allowed: dict[int, int] = {}
        for k in pools:
            top = order[:k]
            if len(top) == 0:
                exact[k], allowed[k] = set(), 0
                continue
            kth = scores[top[-1]]
            exact[k] = set(ids[scores >= kth - SCORE_TIE].tolist())
            allowed[k] = len(top)
        cases.append(Case(request, exact, allowed))
    return cases


def gateway_lines(
    k: int, ef: int | None = None, source: Any = None, cache: bool = False
) -> Callable[[Case], list[dict[str, Any]]]:
    def make(case: Case) -> list[dict[str, Any]]:
        lines = build_msearch(replace(case.request, k=k), CONFIG, CONFIG.alias)
        if cache:  # the per-search header of _msearch takes request_cache
            lines = [line if "query" in line else {**line, "request_cache": True} for line in lines]
        return [_tuned(line, ef, source) for line in lines]

    return make


def single_body(case: Case) -> list[dict[str, Any]]:
    """Only the gateway's first body: the page and the facets without a selected value."""
    return build_msearch(case.request, CONFIG, CONFIG.alias)[:2]


def _tuned(line: dict[str, Any], ef: int | None, source: Any) -> dict[str, Any]:
    if "query" not in line:
        return line
    line = copy.deepcopy(line)
    if ef is not None:
        line["query"]["knn"][VECTOR]["method_parameters"] = {"ef_search": ef}
    if source is not None and "_source" in line:
        line["_source"] = source
    return line


def pool_ids(client: OpenSearch, case: Case, k: int, ef: int | None) -> list[str]:
    """The pool itself (size k, ids only) for recall against the exact top-k."""
    body = _tuned(build_msearch(replace(case.request, k=k), CONFIG, CONFIG.alias)[1], ef, None)
    body = {"query": body["query"], "size": k, "_source": ["id"], "track_total_hits": False}
    hits = client.search(index=CONFIG.alias, body=body)["hits"]["hits"]
    return [str(h["_source"].get("id", h["_id"])) for h in hits]


def run_rows(
    client: OpenSearch, rows: Sequence[Row], cases: Sequence[Case], requests: int, block: int
) -> None:
    for row in rows:  # recall, once per case
        if row.recall_k is None:
            continue
        ef = row.params.get("ef")
        for case in cases:
            k = row.recall_k
            if case.allowed[k] == 0:
                continue
            found = pool_ids(client, case, k, ef)
            row.short += len(found) < case.allowed[k]
            row.recalls.append(len(set(found) & case.exact[k]) / case.allowed[k])
    for row in rows:  # warm-up
        for case in cases[:10]:
            client.msearch(body=row.make_lines(case))
    done = 0
    while done < requests:
        for row in rows:
            for j in range(done, min(done + block, requests)):
                case = cases[j % len(cases)] if not row.params.get("repeat") else cases[0]
                if row.params.get("fresh"):  # a vector never sent before: no cache can hit
                    case = _jittered(case, j)
                lines = row.make_lines(case)
                started = time.perf_counter()
                answer = client.msearch(body=lines)
                row.ms.append((time.perf_counter() - started) * 1000)
                row.took.append(max(r.get("took", 0) for r in answer["responses"]))
        done += block


def _jittered(case: Case, seed: int) -> Case:
    vector = np.asarray(case.request.vector, dtype=np.float64)
    vector += np.random.default_rng(seed).normal(scale=1e-4, size=len(vector))
    vector /= np.linalg.norm(vector)
    return replace(case, request=replace(case.request, vector=[float(x) for x in vector]))


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def report(args: argparse.Namespace, rows: Sequence[Row], docs: int, started: str) -> str:
    base = pct(next(r for r in rows if r.name.startswith("gateway plan")).ms, 50)
    lines = [
        f"# OpenSearch part — {started}",
        "",
        f"- Command: `python bench/opensearch_tuning.py {' '.join(sys.argv[1:])}`",
        f"- Machine: {machine()}",
        f"- Index `{args.index}`: {docs:,} documents (built by `search_latency.py`), "
        f"lucene HNSW cosine; {len(CASES)} query vectors (stored vectors + noise 0.3), "
        "filters `category` + `price <=`, facets brand/size terms + price range",
        f"- {args.requests} requests per row, rows alternating in blocks of {args.block}; "
        "latency = opensearch-py `_msearch` round trip; recall@pool = share of the exact "
        f"filtered top-k (numpy, ties within {SCORE_TIE:g} count) in the pool, mean / min",
        "",
        "| row | p50 ms | p95 ms | `took` p50 | ratio to gateway plan p50 | "
        "recall@pool mean | min | short pools |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        recall = (
            f"{statistics.fmean(row.recalls):.4f} | {min(row.recalls):.4f} | {row.short}"
            if row.recalls
            else "— | — | —"
        )
        lines.append(
            f"| {row.name} | {pct(row.ms, 50):.1f} | {pct(row.ms, 95):.1f} | "
            f"{pct(row.took, 50):.0f} | {pct(row.ms, 50) / base:.2f} | {recall} |"
        )
    lines.append("")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--index",
        default="bench-image-search-20000",
        help="alias of an index built by search_latency.py",
    )
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200, help="measured per row")
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


CONFIG: EngineConfig
CASES: list[Case]


def main(argv: Sequence[str] | None = None) -> int:
    global CONFIG, CASES
    args = parse_args(argv)
    started = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    client = make_client(node_url(), timeout_s=60)
    if not client.indices.exists_alias(name=args.index) and not client.indices.exists(
        index=args.index
    ):
        raise SystemExit(f"no index {args.index}: build one with bench/search_latency.py")
    CONFIG = engine_config(args.index, ClipSpec(model="imgsearch-tiny", pretrained=None))
    catalog = load_catalog(client, args.index)
    pools = (100, 200, 400)
    CASES = make_cases(catalog, CONFIG, args.queries, pools, args.seed)
    results = {"id", "title", "url", "image_url"}
    rows = [
        Row("gateway plan: 2-body `_msearch`, k 200", gateway_lines(200), recall_k=200),
        Row("raw single body (page + plain facets), k 200", single_body),
        Row("k 100", gateway_lines(100), recall_k=100),
        Row("k 400", gateway_lines(400), recall_k=400),
        *(
            Row(f"k 200, ef_search {ef}", gateway_lines(200, ef=ef), {"ef": ef}, recall_k=200)
            for ef in (400, 800, 1600, 3200)
        ),
        Row("k 100, ef_search 1600", gateway_lines(100, ef=1600), {"ef": 1600}, recall_k=100),
        Row("k 200, `_source`: result fields only", gateway_lines(200, source=sorted(results))),
        Row("k 200, no `_source`", gateway_lines(200, source=False)),
        Row(
            "k 200, request_cache, never-repeated queries",
            gateway_lines(200, cache=True),
            {"fresh": True},
        ),
        Row("k 200, no request_cache, never-repeated queries", gateway_lines(200), {"fresh": True}),
        Row(
            "k 200, request_cache, one repeated query",
            gateway_lines(200, cache=True),
            {"repeat": True},
        ),
        Row("k 200, no request_cache, one repeated query", gateway_lines(200), {"repeat": True}),
    ]
    run_rows(client, rows, CASES, args.requests, args.block)
    text = report(args, rows, len(catalog.ids), started)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"opensearch_tuning-{dt.datetime.now(dt.UTC):%Y-%m-%d-%H%M}.md"
    path.write_text(text)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    random.seed(0)
    raise SystemExit(main())
