"""Fine-tuning quality: category precision@10 before and after learning an adapter.

For each embedder (the colour descriptor; CLIP ViT-B-32 with seeded random weights; CLIP
ViT-B-32 with real weights where they are on this machine), in one run:

1. embed the clothing ``train/`` photos (label = folder) and the ``validation/`` photos;
2. **before**: category precision@10 of every validation photo against the train photos
   (exact cosine top-10 in numpy, the ranking an exact k-NN returns);
3. fine-tune exactly as the collection job does (``train_adapter``: held-out guard, labels,
   default settings, one torch thread) on the train vectors, timed, with the peak memory;
4. **after**: the same precision with the adapter applied to both sides.

Goal (issue 13): after >= 1.5 x before. The guard may keep the identity (after = before)
when the adapter does not beat it on held-out train photos; the table says so::

    python bench/finetune_quality.py                              # everything, all photos
    python bench/finetune_quality.py --clip-train-per-class 50    # a CLIP subset (slow CPUs)
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, photos_key  # noqa: E402
from imgsearch.embedders.base import Embedder  # noqa: E402
from imgsearch.embedders.clip import ClipEmbedder, write_seeded_checkpoint  # noqa: E402
from imgsearch.embedders.color import ColorEmbedder  # noqa: E402
from imgsearch.engine_config import ClipSpec  # noqa: E402
from imgsearch.errors import ConfigError  # noqa: E402
from imgsearch.finetune.adapter import Adapter  # noqa: E402
from imgsearch.finetune.train import TrainData, TrainSettings, train_adapter  # noqa: E402
from imgsearch.finetune.train import precision_at_k as precision  # noqa: E402
from imgsearch.images import decode_image  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing"
K = 10


def photos(split: str, per_class: int | None) -> list[Path]:
    found = []
    for folder in sorted(p for p in (DATASET / split).iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        found += files if per_class is None else files[:per_class]
    return found


def embed(embedder: Embedder, paths: Sequence[Path]) -> npt.NDArray[np.float32]:
    """Vectors of ``paths``, cached in ``.cache/bench`` by embedder version and paths (CLIP
    on a busy 2-core machine takes ~15 min for the split)."""
    key = hashlib.sha256(f"{embedder.info.version}\n{photos_key(paths)}".encode())
    cached = ROOT / ".cache" / "bench" / f"finetune-{key.hexdigest()[:24]}.npy"
    if cached.is_file():
        found: npt.NDArray[np.float32] = np.load(cached)
        return found
    rows = []
    for start in range(0, len(paths), 32):
        batch = [decode_image(p.read_bytes()) for p in paths[start : start + 32]]
        rows.append(embedder.embed_images(batch))
    vectors = np.concatenate(rows).astype(np.float32)
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.save(cached, vectors)
    return vectors


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(
    name: str, embedder: Embedder, per_class: int | None, settings: TrainSettings
) -> dict[str, str]:
    train_paths, val_paths = photos("train", per_class), photos("validation", None)
    started = time.perf_counter()
    train, val = embed(embedder, train_paths), embed(embedder, val_paths)
    embed_s = time.perf_counter() - started
    labels = [p.parent.name for p in train_paths]
    names = sorted(set(labels))
    train_ids = np.array([names.index(label) for label in labels])
    val_ids = np.array([names.index(p.parent.name) for p in val_paths])
    before = precision(val, val_ids, train, train_ids, K)
    rss_before = peak_rss_mib()
    started = time.perf_counter()
    result = train_adapter(TrainData(train, labels), settings)
    train_s = time.perf_counter() - started
    rss_after = peak_rss_mib()
    after = before
    if result.stage is not None:
        adapter = Adapter(embedder.info.version, embedder.info.dim, (result.stage,))
        after = precision(adapter.apply(val), val_ids, adapter.apply(train), train_ids, K)
    chance = float(np.mean([np.mean(train_ids == v) for v in val_ids]))
    print(f"{name}: {before:.3f} -> {after:.3f} ({result.note})", file=sys.stderr)
    return {
        "embedder": name,
        "train / validation photos": f"{len(train_paths)} / {len(val_paths)}",
        "chance": f"{chance:.3f}",
        "P@10 before": f"{before:.3f}",
        "P@10 after": f"{after:.3f}",
        "after / before": f"{after / before:.2f}x" if before else "-",
        "goal 1.5x": "met" if after >= 1.5 * before else "NOT met",
        "held-out (train split) before -> after": f"{result.before:.3f} -> {result.after:.3f}",
        "adapter kept": "yes" if result.stage is not None else "no (guard: identity)",
        "training s": f"{train_s:.1f}",
        "peak RSS MiB (before -> after training)": f"{rss_before:.0f} -> {rss_after:.0f}",
        "embedding s (0: cached)": f"{embed_s:.0f}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--train-per-class",
        type=int,
        default=None,
        help="train photos per category for every embedder (default: all)",
    )
    parser.add_argument(
        "--clip-train-per-class",
        type=int,
        default=None,
        help="train photos per category for the CLIP runs (default: as above)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: 1200)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden units (default: 512)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for embedding")
    parser.add_argument("--skip", nargs="*", default=[], choices=["color", "seeded", "real"])
    args = parser.parse_args()  # fmt: skip
    torch.set_num_threads(args.threads)
    clip_per_class = args.clip_train_per_class or args.train_per_class
    overrides = {"steps": args.steps, "hidden": args.hidden}
    settings = TrainSettings(seed=args.seed, **{k: v for k, v in overrides.items() if v})
    rows = []
    if "color" not in args.skip:
        rows.append(run("colour histogram (116-d)", ColorEmbedder(), args.train_per_class,
                        settings))  # fmt: skip
    if "seeded" not in args.skip:
        checkpoint = write_seeded_checkpoint(
            ROOT / ".cache" / "bench" / "vit-b-32-seed0.pt", model="ViT-B-32"
        )
        spec = ClipSpec(model="ViT-B-32", pretrained=None, checkpoint=checkpoint, device="cpu")
        rows.append(run("CLIP ViT-B-32, seeded random weights (512-d)", ClipEmbedder(spec),
                        clip_per_class, settings))  # fmt: skip
    real = "not run"
    if "real" not in args.skip:
        try:
            embedder = ClipEmbedder(ClipSpec(device="cpu"))
        except ConfigError as exc:
            real = f"not run: {exc.message.split('.')[0]}"
        else:
            rows.append(run("CLIP ViT-B-32 laion2b_s34b_b79k (512-d)", embedder,
                            clip_per_class, settings))  # fmt: skip
            real = "run"
    print(f"## Fine-tuning quality ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- Command: `python bench/finetune_quality.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Machine: {machine()}")
    print(f"- Real CLIP weights: {real}")
    print(f"- precision@{K}: exact cosine top-{K} of each validation photo among the train")
    print(f"  photos; training: {settings!r}\n")
    keys = list(rows[0]) if rows else []
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for row in rows:
        print("| " + " | ".join(row[k] for k in keys) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
