"""CLIP embedding on the CPU: torch fp32 beside the ONNX Runtime paths, in one run.

What a query costs is one photo embedded alone; what indexing costs is photos embedded in
batches. For each runtime (``torch``, ``onnx``, ``onnx-int8``; see
``imgsearch/embedders/clip_onnx.py``) this measures, on the clothing validation photos
(decoded beforehand, preprocessing included as in the gateway's embed step):

* **single photo**: p50/p95/p99 of ``embed_images([photo])``, the runtimes taking turns in
  blocks of ``--block`` photos (a pause between blocks lets the last one's threads go idle),
  so a busy shared machine slows them alike;
* **batch**: images/s of ``embed_images`` over all the photos in batches of ``--batch-size``;
* **parity** with torch: cosine of each photo's vector to torch's (min, mean), the same for a
  few texts, and the top-10 overlap of brute-force searches over the torch-embedded photos
  (each photo as a query against the others, queries embedded by the runtime).

By default the model is ViT-B-32 with seeded random weights (``.cache/bench/``; nothing can be
downloaded here): the real compute, not the real meaning; ``--pretrained`` or
``--checkpoint`` use real weights. The ONNX files are exported on first use into
``.cache/bench/onnx`` (``--onnx-cache``); the export time is reported once.

    . .venv/bin/activate
    python bench/embed_latency.py                        # ~3-4 min on 2 cores
    python bench/embed_latency.py --requests 60 --runtimes torch,onnx-int8

The markdown report is printed and written to ``bench/results/embed_latency-<date>.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from bench.common import machine  # noqa: E402
from imgsearch.embedders.clip import ClipEmbedder, write_seeded_checkpoint  # noqa: E402
from imgsearch.embedders.clip_onnx import OnnxClipEmbedder  # noqa: E402
from imgsearch.engine_config import ClipSpec  # noqa: E402
from imgsearch.images import ImageLimits, decode_image  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared" / "datasets" / "clothing" / "validation"
CACHE = ROOT / ".cache" / "bench"
RESULTS = ROOT / "bench" / "results"
TEXTS = ["a red dress", "blue denim jeans", "a black leather jacket", "white sneakers",
         "a striped shirt", "a straw summer hat", "grey shorts", "a pleated skirt"]  # fmt: skip

Vectors = npt.NDArray[np.float32]
Embedder = ClipEmbedder | OnnxClipEmbedder


def clip_spec(args: argparse.Namespace, runtime: str) -> ClipSpec:
    common = {"model": args.model, "device": "cpu", "batch_size": args.batch_size}
    if args.pretrained:
        return ClipSpec.model_validate(common | {"pretrained": args.pretrained, "runtime": runtime})
    checkpoint = args.checkpoint or CACHE / f"{args.model}-seed{args.seed}.pt"
    if not checkpoint.is_file():
        print(f"writing seeded random {args.model} weights to {checkpoint}", flush=True)
        write_seeded_checkpoint(checkpoint, model=args.model, seed=args.seed)
    fields = {"pretrained": None, "checkpoint": checkpoint, "runtime": runtime}
    return ClipSpec.model_validate(common | fields)


def build(args: argparse.Namespace, runtime: str) -> tuple[Embedder, float]:
    """The runtime's embedder and the seconds its construction took (export included)."""
    started = time.perf_counter()
    spec = clip_spec(args, runtime)
    embedder: Embedder = (
        ClipEmbedder(spec, device="cpu")
        if runtime == "torch"
        else OnnxClipEmbedder(spec, cache_dir=args.onnx_cache)
    )
    return embedder, time.perf_counter() - started


def singles(
    embedders: dict[str, Embedder], photos: Sequence[Image.Image], args: argparse.Namespace
) -> dict[str, npt.NDArray[np.float64]]:
    """Milliseconds per ``embed_images([photo])``, the runtimes taking turns in blocks."""
    for i in range(args.warmup):
        for embedder in embedders.values():
            embedder.embed_images([photos[i % len(photos)]])
    ms: dict[str, list[float]] = {runtime: [] for runtime in embedders}
    for first in range(0, args.requests, args.block):
        for runtime, embedder in embedders.items():
            time.sleep(0.1)
            for i in range(first, min(first + args.block, args.requests)):
                started = time.perf_counter()
                embedder.embed_images([photos[i % len(photos)]])
                ms[runtime].append((time.perf_counter() - started) * 1000)
    return {runtime: np.array(values) for runtime, values in ms.items()}


def batched(embedder: Embedder, photos: Sequence[Image.Image]) -> tuple[Vectors, float]:
    """All photos' vectors (``embed_images`` batches by the spec) and images/s."""
    started = time.perf_counter()
    vectors = embedder.embed_images(photos)
    return vectors, len(photos) / (time.perf_counter() - started)


def top10(queries: Vectors, catalog: Vectors) -> npt.NDArray[np.int64]:
    scores = queries.astype(np.float64) @ catalog.astype(np.float64).T
    np.fill_diagonal(scores, -np.inf)  # a photo is not its own neighbour
    return np.argsort(-scores, axis=1, kind="stable")[:, :10]


def overlap(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> float:
    return float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)]))


def cosines(a: Vectors, b: Vectors) -> npt.NDArray[np.float64]:
    x, y = a.astype(np.float64), b.astype(np.float64)
    return np.sum(x * y, axis=1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))


def report(
    args: argparse.Namespace,
    count: int,
    built: dict[str, float],
    latency: dict[str, npt.NDArray[np.float64]],
    rates: dict[str, float],
    parity: dict[str, tuple[float, float, float, float]],
) -> str:
    base = float(np.percentile(latency["torch"], 50)) if "torch" in latency else float("nan")
    weights = args.pretrained or (args.checkpoint or f"seeded random weights (seed {args.seed})")
    lines = [
        f"# CLIP embedding latency — {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        "",
        f"- Command: `{shlex.join([Path(sys.executable).name, *sys.argv])}`",
        f"- Machine: {machine()}",
        f"- Model: CLIP {args.model}, {weights}; photos: {count} from {args.photos} "
        f"(decoded beforehand; preprocessing included)",
        f"- Single photo: {args.requests} per runtime after {args.warmup} warm-up rounds, "
        f"runtimes taking turns in blocks of {args.block}; batch: all photos, batch size "
        f"{args.batch_size}",
        "",
        "| runtime | p50 ms | p95 ms | p99 ms | p50 / torch p50 | batch img/s | "
        "cosine to torch min / mean | text cosine min | top-10 overlap | load s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for runtime, ms in latency.items():
        p50, p95, p99 = (float(np.percentile(ms, q)) for q in (50, 95, 99))
        low, mean, text, top = parity.get(runtime, (1.0, 1.0, 1.0, 1.0))
        agreement = "(reference)" if runtime == "torch" else f"{low:.5f} / {mean:.5f}"
        lines.append(
            f"| {runtime} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {p50 / base:.2f} | "
            f"{rates[runtime]:.1f} | {agreement} | {text:.5f} | {top:.3f} | "
            f"{built[runtime]:.1f} |"
        )
    lines += [
        "",
        "`load s`: constructing the embedder (an ONNX export, if the cache lacked it, "
        "included). Goal (issue 15): single-photo p50 ≤ ⅓ of torch's (ratio ≤ 0.33).",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtimes", default="torch,onnx,onnx-int8", help="comma-separated")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture")
    parser.add_argument("--pretrained", default=None, help="open_clip tag, from the local cache")
    parser.add_argument("--checkpoint", type=Path, default=None, help="local open_clip weights")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of photos")
    parser.add_argument("--requests", type=int, default=100, help="single photos per runtime")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured rounds")
    parser.add_argument("--block", type=int, default=10, help="photos per turn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads, and so ONNX Runtime's (default: torch's)")  # fmt: skip
    parser.add_argument("--onnx-cache", type=Path, default=CACHE / "onnx")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the report")
    args = parser.parse_args(argv)
    args.runtimes = args.runtimes.split(",")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = sorted(args.photos.rglob("*.jpg"))
    photos = [decode_image(p.read_bytes(), ImageLimits()) for p in paths]
    embedders: dict[str, Embedder] = {}
    built: dict[str, float] = {}
    for runtime in args.runtimes:
        embedders[runtime], built[runtime] = build(args, runtime)
        print(f"{runtime}: {embedders[runtime].info.version} ({built[runtime]:.1f} s)", flush=True)
    latency = singles(embedders, photos, args)
    for runtime, ms in latency.items():
        print(f"{runtime}: single photo p50 {np.percentile(ms, 50):.1f} ms", flush=True)
    vectors: dict[str, Vectors] = {}
    rates: dict[str, float] = {}
    for runtime, embedder in embedders.items():
        vectors[runtime], rates[runtime] = batched(embedder, photos)
        print(f"{runtime}: batch {rates[runtime]:.1f} img/s", flush=True)
    parity: dict[str, tuple[float, float, float, float]] = {}
    if "torch" in embedders:
        reference = vectors["torch"]
        expected = top10(reference, reference)
        texts = embedders["torch"].embed_texts(TEXTS)
        for runtime in args.runtimes:
            agree = cosines(vectors[runtime], reference)
            text = float(cosines(embedders[runtime].embed_texts(TEXTS), texts).min())
            found = overlap(expected, top10(vectors[runtime], reference))
            parity[runtime] = (float(agree.min()), float(agree.mean()), text, found)
    text_report = report(args, len(photos), built, latency, rates, parity)
    print("\n" + text_report)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"embed_latency-{dt.datetime.now():%Y-%m-%d-%H%M}.md"
    out.write_text(text_report)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
