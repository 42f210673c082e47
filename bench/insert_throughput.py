"""Live inserts through the Ximilar API versus the feed indexer, on the same photos.

* **feed indexer**: ``index_feed`` over a JSONL feed whose images are URLs on a loopback
  HTTP server, into a fresh index (the pipeline overlaps fetching, decoding, embedding and
  bulk writes across the whole feed);
* **API inserts**: ``POST /similarity/photos/v2/insert`` to the real gateway (uvicorn, one
  worker) in batches of 10 records with the same URLs, from ``--clients`` concurrent
  clients, into another fresh index; each call returns once its records are searchable.

It prints records/s for both and the ratio (goal: API at least 0.8 of the indexer), as markdown with
the machine and date. Run on the local node::

    . .venv/bin/activate
    python bench/insert_throughput.py                                   # color + phash
    python bench/insert_throughput.py --clip-model ViT-B-32             # seeded ViT-B-32
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.common import machine, node_url  # noqa: E402
from bench.search_latency import start_gateway  # noqa: E402
from imgsearch.embedders.registry import build_embedders  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.mapping import build_index_body  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402
from indexer.runner import IndexOptions, index_feed  # noqa: E402

DEFAULT_FEED = ROOT.parent / "shared" / "datasets" / "clothing" / "validation"
TOKEN = "bench-token"
BATCH = 10


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(ThreadingHTTPServer):
    # The default listen backlog (5) drops bursts of concurrent fetches for a second.
    request_queue_size = 128


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    server = _Server(("127.0.0.1", 0), partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def vectors(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    if args.clip_model is None:
        return {"color": {"embedder": "color"}, "phash": {"embedder": "phash"}}
    from imgsearch.embedders.clip import write_seeded_checkpoint

    cached = ROOT / ".cache" / "bench" / f"{args.clip_model}-seed0.pt"
    checkpoint = args.checkpoint or (
        cached if cached.exists() else write_seeded_checkpoint(cached, model=args.clip_model)
    )
    clip = {"embedder": "clip", "model": args.clip_model, "pretrained": None,
            "checkpoint": str(checkpoint), "device": "cpu"}  # fmt: skip
    return {"clip": clip, "phash": {"embedder": "phash"}}


def engine(alias: str, vector_specs: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": alias,
            "alias": alias,
            "fields": {"category": {"type": "keyword", "facet": True}},
            "vectors": vector_specs,
            "gateway": {"tokens": [TOKEN], "image_search": "clip" in vector_specs
                        or "color" in vector_specs},
        }
    )  # fmt: skip


def records(feed: Path, base: str) -> list[dict[str, Any]]:
    paths = sorted(p for p in feed.rglob("*.jpg"))
    return [
        {"_id": f"{p.parent.name}-{p.stem}", "_url": f"{base}/{p.relative_to(feed).as_posix()}",
         "category": p.parent.name}
        for p in paths
    ]  # fmt: skip


def run_indexer(url: str, config: EngineConfig, rows: list[dict[str, Any]], workdir: Path) -> float:
    feed = workdir / "feed.jsonl"
    feed.write_text("".join(
        json.dumps({"id": r["_id"], "image": r["_url"], "category": r["category"]}) + "\n"
        for r in rows
    ))  # fmt: skip
    client = make_client(url, timeout_s=120)
    embedders = build_embedders(config)
    started = time.perf_counter()
    summary = index_feed(feed, config, client, IndexOptions(), embedders=embedders)
    elapsed = time.perf_counter() - started
    assert summary.ok and summary.indexed == len(rows), summary.as_dict()
    client.close()
    return elapsed


def create_index(url: str, config: EngineConfig) -> None:
    client = make_client(url, timeout_s=120)
    body = build_index_body(config, {n: e.info for n, e in build_embedders(config).items()})
    body["aliases"] = {config.alias: {}}
    client.indices.create(index=f"{config.alias}_v1", body=body)
    client.close()


def run_api(base: str, config: EngineConfig, rows: list[dict[str, Any]], clients: int) -> float:
    batches = [rows[i : i + BATCH] for i in range(0, len(rows), BATCH)]
    headers = {"collection-id": config.hashid, "Authorization": f"Token {TOKEN}"}

    def send(batch: list[dict[str, Any]], http: httpx.Client) -> None:
        response = http.post("/similarity/photos/v2/insert", json={"records": batch},
                             headers=headers)  # fmt: skip
        body = response.json()
        assert response.status_code == 200 and body["status"]["code"] == 210, body

    local = threading.local()

    def worker(batch: list[dict[str, Any]]) -> None:
        if not hasattr(local, "http"):
            local.http = httpx.Client(base_url=base, timeout=300)
        send(batch, local.http)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, batches))
    return time.perf_counter() - started


def cleanup(url: str, aliases: Sequence[str]) -> None:
    client = make_client(url, timeout_s=60)
    for alias in aliases:
        client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
    client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feed", type=Path, default=DEFAULT_FEED)
    parser.add_argument("--clip-model", default=None, help="e.g. ViT-B-32 (seeded weights)")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    url = node_url()
    os.environ["IMGSEARCH_IMAGE_URL_ALLOW_PRIVATE"] = "true"  # the photos are on loopback
    run = uuid.uuid4().hex[:6]
    server, base_images = serve(args.feed)
    rows = records(args.feed, base_images)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        specs = vectors(args, workdir)
        label = args.clip_model or "color + phash"
        feed_config = engine(f"bench-feed-{run}", specs)
        aliases = [feed_config.alias]
        try:
            feed_s = run_indexer(url, feed_config, rows, workdir)
            feed_rate = len(rows) / feed_s
            lines.append(f"| {label} | feed indexer | - | {len(rows)} | {feed_s:.1f} | "
                         f"{feed_rate:.1f} | 1.00 |")  # fmt: skip
            for clients in args.clients:
                config = engine(f"bench-api-{run}-{clients}", specs)
                aliases.append(config.alias)
                create_index(url, config)
                gateway_dir = workdir / f"gw{clients}"
                gateway_dir.mkdir()
                process, base = start_gateway(url, config, gateway_dir)
                try:
                    api_s = run_api(base, config, rows, clients)
                finally:
                    process.terminate()
                    process.wait(timeout=30)
                rate = len(rows) / api_s
                lines.append(f"| {label} | API insert, batches of {BATCH} | {clients} | "
                             f"{len(rows)} | {api_s:.1f} | {rate:.1f} | "
                             f"**{rate / feed_rate:.2f}** |")  # fmt: skip
        finally:
            cleanup(url, aliases)
            server.shutdown()
            server.server_close()
    print(f"\nMachine: {machine()}\nDate: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| embedders | path | clients | records | seconds | records/s | vs indexer |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
