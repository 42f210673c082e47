"""Text-to-image quality: category words as queries, vector vs BM25 vs hybrid, in one run.

Indexes the clothing ``train/`` photos (folder = category) with a ``title`` that names the
category for only a share of the items (``--titled``, default 0.5; the others are titled by a
brand alone), as shop titles are often incomplete. Each category word is then a query
("dress", "hat", …) through the gateway's own neutral service in three modes of
``gateway.text_search`` — ``vector`` (CLIP text tower), ``lexical`` (BM25) and ``hybrid``
(both, reciprocal-rank fusion) — and the script prints category precision@10 and @50 for
each, beside chance (the category's share of the catalog)::

    python bench/text_quality.py                                   # tiny seeded CLIP
    python bench/text_quality.py --model ViT-B-32 --pretrained laion2b_s34b_b79k   # real

With seeded random weights the text tower knows no words, so ``vector`` sits at chance and
the hybrid measures what fusion costs when one ranking is noise; with real weights it
measures what the text tower adds to incomplete titles.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import machine, node_url  # noqa: E402
from gateway.search.model import SearchRequest  # noqa: E402
from gateway.service import CatalogService  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from imgsearch.embedders.registry import build_embedders  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402
from indexer.runner import IndexOptions, index_feed  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing" / "train"
BRANDS = ["Acme", "Borealis", "Cobalt", "Dune", "Ember", "Fjord"]
MODES = ("vector", "lexical", "hybrid")


def clip_spec(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    checkpoint = args.checkpoint
    if args.pretrained is None and checkpoint is None:
        from imgsearch.embedders.clip import write_seeded_checkpoint

        checkpoint = write_seeded_checkpoint(workdir / "seed0.pt", model=args.model)
    return {
        "embedder": "clip",
        "model": args.model,
        "pretrained": args.pretrained,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "device": args.device,
    }


def config(alias: str, spec: dict[str, Any], mode: str) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": f"{alias}-{mode}",
            "alias": alias,
            "fields": {"title": {"type": "text"}, "category": {"type": "keyword"}},
            "vectors": {"clip": spec},
            "gateway": {"text_search": mode, "k": 50},
        }
    )


def feed(workdir: Path, titled: float, seed: int) -> tuple[Path, Counter[str]]:
    rng = random.Random(seed)
    rows, counts = [], Counter[str]()
    for path in sorted(DATASET.rglob("*.jpg")):
        category = path.parent.name
        counts[category] += 1
        brand = rng.choice(BRANDS)
        title = f"{brand} {category}" if rng.random() < titled else f"{brand} item"
        rows.append({"id": f"{category}/{path.stem}", "image": str(path), "title": title,
                     "category": category})  # fmt: skip
    out = workdir / "feed.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out, counts


async def precision(service: CatalogService, hashid: str, word: str) -> tuple[float, float]:
    engine = service.engine(hashid)
    request = SearchRequest(engine=hashid, vector_field="clip", k=50, rpp=50)
    result, _ = await service.search_text(engine, word, request, service.timings())
    cats = [str(h.source.get("category")) for h in result.hits]
    p10 = sum(c == word for c in cats[:10]) / 10
    p50 = sum(c == word for c in cats) / max(len(cats), 1)
    return p10, p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="imgsearch-tiny")
    parser.add_argument("--pretrained", default=None)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--titled", type=float, default=0.5)
    args = parser.parse_args()
    url = node_url()
    alias = "bench-text-quality"
    client = make_client(url, timeout_s=120)
    client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        spec = clip_spec(args, workdir)
        configs = {mode: config(alias, spec, mode) for mode in MODES}
        path, counts = feed(workdir, args.titled, seed=7)
        embedders = build_embedders(configs["hybrid"])
        summary = index_feed(path, configs["hybrid"], client, IndexOptions(), embedders=embedders)
        assert summary.ok, summary.as_dict()
        service = CatalogService.create(
            GatewaySettings(opensearch_url=url), {c.hashid: c for c in configs.values()}
        )
        total = sum(counts.values())
        rows: dict[str, list[tuple[float, float]]] = {mode: [] for mode in MODES}
        for word in sorted(counts):
            for mode in MODES:
                rows[mode].append(asyncio.run(precision(service, configs[mode].hashid, word)))
        service.close()
    client.indices.delete(index=f"{alias}_v*", ignore_unavailable=True)
    chance = sum(counts[w] / total for w in counts) / len(counts)
    print(f"\nMachine: {machine()}\nDate: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    weights = args.pretrained or "seeded random weights"
    print(f"Model: {args.model} ({weights}); {total} photos, {len(counts)} categories, "
          f"{args.titled:.0%} titled with the category\n")  # fmt: skip
    print("| mode | category precision@10 | precision@50 |")
    print("|---|---:|---:|")
    for mode in MODES:
        p10 = sum(p for p, _ in rows[mode]) / len(rows[mode])
        p50 = sum(p for _, p in rows[mode]) / len(rows[mode])
        print(f"| {mode} | {p10:.3f} | {p50:.3f} |")
    print(f"| chance (mean category share) | {chance:.3f} | {chance:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
