"""Indexer throughput: end-to-end images/s versus the embedder alone, in the same run.

For each embedder configuration it measures

* **end-to-end**: ``index_feed`` over the feed folder into a fresh index on the node
  (read + hash + decode + preprocess in worker threads, embed, bulk write, refresh);
* **embedder alone**: the same embedders over the same images, already decoded (decoding is
  done beforehand, in chunks, outside the timer), in batches of ``--batch-size``;

and the ratio end-to-end / embedder-alone (1.0 would mean the pipeline hides all I/O behind
the model). It prints a markdown table with the machine and the date.

Run on the local node (the default feed is the 3,068 ``train/`` images)::

    . .venv/bin/activate
    python bench/index_throughput.py                       # color+phash and tiny CLIP, CPU

The tiny CLIP is a seeded random ``imgsearch-tiny`` (same code path as real weights). To
measure the real ViT-B-32 on a GPU, with its weights in the open_clip cache (or a local file
via ``--checkpoint``)::

    python bench/index_throughput.py --configs clip --clip-model ViT-B-32 \\
        --pretrained laion2b_s34b_b79k --device cuda --batch-size 128 --workers 12

(``--checkpoint PATH`` instead of ``--pretrained`` loads a local open_clip state dict;
``--runtime onnx-int8`` embeds through ONNX Runtime, see ``imgsearch/embedders/clip_onnx.py``,
with the exported files cached in ``.cache/bench/onnx``.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, node_url  # noqa: E402
from imgsearch.embedders.base import Embedder  # noqa: E402
from imgsearch.embedders.registry import build_embedders  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.images import ImageLimits, decode_image  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402
from indexer.bulk import BulkSettings  # noqa: E402
from indexer.feeds import IMAGE_SUFFIXES  # noqa: E402
from indexer.pipeline import PipelineSettings  # noqa: E402
from indexer.runner import IndexOptions, index_feed  # noqa: E402

DEFAULT_FEED = ROOT.parent / "shared" / "datasets" / "clothing" / "train"


def clip_spec(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    checkpoint = args.checkpoint
    pretrained = args.pretrained
    if args.clip_model == "imgsearch-tiny" and checkpoint is None:
        from imgsearch.embedders.clip import write_seeded_checkpoint

        checkpoint = write_seeded_checkpoint(workdir / "imgsearch-tiny-seed0.pt")
        pretrained = None
    return {
        "embedder": "clip",
        "model": args.clip_model,
        "pretrained": None if checkpoint else pretrained,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "device": args.device,
        "batch_size": args.batch_size,
        "runtime": args.runtime,
    }


def engine(alias: str, vectors: dict[str, Any]) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": alias,
            "alias": alias,
            "fields": {"category": {"type": "keyword", "facet": True}},
            "vectors": vectors,
        }
    )


def embedder_alone(
    embedders: dict[str, Embedder], files: list[Path], batch_size: int, chunk: int = 256
) -> float:
    """Seconds the embedders need for ``files``, decoded beforehand (not timed)."""
    limits = ImageLimits()
    spent = 0.0
    for start in range(0, len(files), chunk):
        images = [decode_image(p.read_bytes(), limits) for p in files[start : start + chunk]]
        began = time.perf_counter()
        for first in range(0, len(images), batch_size):
            batch = images[first : first + batch_size]
            for embedder in embedders.values():
                embedder.embed_images(batch)
                for image in batch:
                    embedder.extra_fields(image)
        spent += time.perf_counter() - began
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feed", type=Path, default=DEFAULT_FEED)
    parser.add_argument("--configs", default="color+phash,clip", help="comma-separated")
    parser.add_argument("--clip-model", default="imgsearch-tiny")
    parser.add_argument("--pretrained", default="laion2b_s34b_b79k")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    parser.add_argument("--runtime", default="torch", choices=["torch", "onnx", "onnx-int8"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("IMGSEARCH_ONNX_CACHE", str(ROOT / ".cache" / "bench" / "onnx"))

    files = sorted(
        p for p in args.feed.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    client = make_client(node_url(), timeout_s=120)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs.split(","):
            vectors: dict[str, Any] = (
                {"color": {"embedder": "color"}, "phash": {"embedder": "phash"}}
                if name == "color+phash"
                else {"clip": clip_spec(args, Path(tmp))}
            )
            label = (
                name
                if name != "clip"
                else f"CLIP {args.clip_model} ({args.device}, {args.runtime})"
            )
            alias = f"bench-{uuid.uuid4().hex[:8]}"
            config = engine(alias, vectors)
            embedders = build_embedders(config, device=args.device)
            options = IndexOptions(
                pipeline=PipelineSettings(
                    batch_size=args.batch_size,
                    workers=args.workers,
                    bulk=BulkSettings(chunk_size=200),
                ),
                progress_stream=io.StringIO(),  # not a TTY: no progress bar
            )
            try:
                began = time.perf_counter()
                summary = index_feed(args.feed, config, client, options, embedders=embedders)
                end_to_end = time.perf_counter() - began
                assert summary.ok and summary.indexed == len(files), summary
                alone = embedder_alone(embedders, files, args.batch_size)
            finally:
                client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
            e2e_rate = len(files) / end_to_end
            alone_rate = len(files) / alone
            rows.append(
                (label, len(files), end_to_end, e2e_rate, alone_rate, e2e_rate / alone_rate)
            )
    client.close()

    print(f"## Indexer throughput ({dt.date.today().isoformat()})\n")
    print(f"Machine: {machine()}  ")
    print(
        f"Feed: {args.feed} ({len(files)} images); batch {args.batch_size}, "
        f"{args.workers} workers, bulk 200; local OpenSearch node.\n"
    )
    print("| embedders | images | end-to-end s | end-to-end img/s | embedder alone img/s | ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, count, seconds, e2e, alone_rate, ratio in rows:
        print(f"| {label} | {count} | {seconds:.1f} | {e2e:.1f} | {alone_rate:.1f} | {ratio:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
