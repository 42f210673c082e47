"""Colour search quality: does a colour query return items of that dominant colour first?

Indexes the clothing ``train/`` photos (the indexer: colour descriptor + palette fields, and
the seeded tiny CLIP for the image part), then queries through the gateway's Flow route
(``/api/cores/{collection}/image``, in process) and measures, in the same run:

* **named colours**: one query per shop colour name (a canonical hex, e.g. red ``#c81e1e``);
  precision@10 = share of the 10 hits whose *stored dominant colour* (``color_names[0]``, the
  palette's largest entry) is that name, beside chance (the name's share of the catalog);
* **held-out photos**: every ``validation/`` photo's own dominant palette colour as the query
  (what "items in this colour" looks like in practice); micro-averaged precision@10 and
  chance; and two-colour queries (the photo's top two palette colours with their shares):
  share of hits whose palette has both names, beside the catalog's share;
* **image + colour**: validation photos with a colour other than their own, for several
  ``gateway.color_weight`` values: colour precision@10, overlap@10 with the image-only
  ranking (how much of the image's ranking survives), same-category precision@10;
* recall@10 of the colour-only pages against exact numpy top-10 over the stored vectors.

The tiny CLIP has seeded random weights, so its category precision means little; the
colour figures do not depend on it. ::

    python bench/color_search.py            # ~1-2 min on 2 cores, mostly indexing
    python bench/color_search.py --reuse    # keep the index of an earlier run
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from bench.common import machine, node_url  # noqa: E402
from gateway.app import create_app  # noqa: E402
from gateway.settings import GatewaySettings  # noqa: E402
from imgsearch.embedders.clip import write_seeded_checkpoint  # noqa: E402
from imgsearch.embedders.color import (  # noqa: E402
    ColorEmbedder,
    colour_name,
    colour_query_vector,
    parse_hex,
)
from imgsearch.embedders.registry import build_embedders  # noqa: E402
from imgsearch.engine_config import EngineConfig  # noqa: E402
from imgsearch.images import decode_image  # noqa: E402
from imgsearch.search_client import make_client  # noqa: E402
from indexer.runner import IndexOptions, index_feed  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing"
ALIAS = "bench-color"
TOP = 10
# One hex per shop colour name (colour_name maps each to its own name; checked below).
CANONICAL = {
    "black": "#141414", "white": "#f5f5f5", "grey": "#8c8c8c", "red": "#c81e1e",
    "orange": "#f08c1e", "yellow": "#f0d228", "green": "#2d9646", "blue": "#1e5ad2",
    "navy": "#141e5a", "purple": "#8228aa", "pink": "#f06eb4", "brown": "#6e461e",
    "beige": "#e1cdaa",
}  # fmt: skip
BLEND_TARGETS = ["red", "blue", "green", "yellow", "pink", "orange", "black", "white"]


def engine(checkpoint: Path, hashid: str, weight: float, k: int = 200) -> EngineConfig:
    return EngineConfig.model_validate(
        {
            "hashid": hashid,
            "alias": ALIAS,
            "fields": {"category": {"type": "keyword", "facet": True}},
            "vectors": {
                "clip": {
                    "embedder": "clip",
                    "model": "imgsearch-tiny",
                    "pretrained": None,
                    "checkpoint": str(checkpoint),
                    "device": "cpu",
                },
                "color": {"embedder": "color"},
            },
            "gateway": {"k": k, "color_weight": weight},
        }
    )


def stored(client: Any) -> list[dict[str, Any]]:
    fields = ["id", "category", "color_names", "color", "clip"]
    body = {"size": 10_000, "_source": fields, "query": {"match_all": {}}}
    return [hit["_source"] for hit in client.search(index=ALIAS, body=body)["hits"]["hits"]]


def search(
    http: TestClient, hashid: str, params: dict[str, str], form: dict[str, str] | None = None
) -> Any:
    url = f"/api/cores/{hashid}/image"
    response = http.post(url, params=params, data=form) if form else http.get(url, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reuse", action="store_true", help="keep an existing index")
    parser.add_argument("--weights", default="0,0.05,0.1,0.25,0.5,1")
    parser.add_argument("--blend-queries", type=int, default=60)
    parser.add_argument("--wide-k", type=int, default=1000, help="pool of the wide-pool row")
    parser.add_argument("--wide-weight", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    for name, hex_text in CANONICAL.items():
        assert colour_name(parse_hex(hex_text)) == name, (name, hex_text)

    checkpoint = ROOT / ".cache" / "bench" / "imgsearch-tiny-seed0.pt"
    if not checkpoint.exists():
        write_seeded_checkpoint(checkpoint)
    weights = [float(w) for w in args.weights.split(",")]
    assert weights[0] == 0.0, "the first weight is the image-only baseline: 0"
    # (label, engine): one engine per weight on the same index, and a wider pool
    arms = [(f"{w:g}", engine(checkpoint, f"w{i}", w)) for i, w in enumerate(weights)]
    arms.append((f"{args.wide_weight:g}, k {args.wide_k}",
                 engine(checkpoint, "wide", args.wide_weight, args.wide_k)))  # fmt: skip
    engines = {config.hashid: config for _, config in arms}
    url = node_url()
    client = make_client(url, timeout_s=120)
    began = time.perf_counter()
    if not (args.reuse and client.indices.exists_alias(name=ALIAS)):
        client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
        summary = index_feed(DATASET / "train", engines["w0"], client, IndexOptions())
        assert summary.ok, summary
    index_s = time.perf_counter() - began
    docs = stored(client)
    dominant = [doc["color_names"][0] for doc in docs]
    names_of = {doc["id"]: doc["color_names"] for doc in docs}
    category_of = {doc["id"]: doc["category"] for doc in docs}
    prior = Counter(dominant)
    n = len(docs)
    matrix = np.asarray([doc["color"] for doc in docs], dtype=np.float64)
    ids = [doc["id"] for doc in docs]

    app = create_app(GatewaySettings(opensearch_url=url), engines)
    colour = ColorEmbedder()
    qtimes: list[int] = []
    recalls: list[float] = []

    def colour_page(colors: str, vector: Any) -> list[str]:
        got = search(http, "w0", {"color": colors, "rows": str(TOP), "fl": "id,score"})
        qtimes.append(got["responseHeader"]["QTime"])
        hits = [d["id"] for d in got["response"]["docs"]]
        scores = matrix @ vector
        kth = np.sort(scores)[-TOP]
        row = {item: i for i, item in enumerate(ids)}
        recalls.append(np.mean([scores[row[h]] >= kth - 1e-6 for h in hits]))
        return hits

    with TestClient(app) as http:
        # -- named colours
        named: list[tuple[str, int, float, float]] = []
        for name, hex_text in CANONICAL.items():
            hits = colour_page(hex_text, colour_query_vector([(hex_text, 1.0)]))
            precision = np.mean([names_of[h][0] == name for h in hits])
            named.append((name, prior[name], float(precision), prior[name] / n))
        # -- held-out photos: one and two colours
        photos = sorted((DATASET / "validation").rglob("*.jpg"))
        one_p: list[float] = []
        one_c: list[float] = []
        two_p: list[float] = []
        two_c: list[float] = []
        palettes: dict[Path, dict[str, Any]] = {}
        for path in photos:
            fields: dict[str, Any] = colour.extra_fields(decode_image(path.read_bytes()))
            palettes[path] = fields
            hex_text, name = fields["color_palette_hex"][0], fields["color_names"][0]
            hits = colour_page(hex_text, colour_query_vector([(hex_text, 1.0)]))
            one_p.append(float(np.mean([names_of[h][0] == name for h in hits])))
            one_c.append(prior[name] / n)
            if len(fields["color_palette_hex"]) >= 2 and len(set(fields["color_names"][:2])) == 2:
                pair = list(
                    zip(
                        fields["color_palette_hex"][:2],
                        fields["color_palette_freq"][:2],
                        strict=True,
                    )
                )
                wanted = set(fields["color_names"][:2])
                text = ",".join(f"{h}:{f:.3f}" for h, f in pair)
                hits = colour_page(text, colour_query_vector(pair))
                two_p.append(float(np.mean([wanted <= set(names_of[h]) for h in hits])))
                two_c.append(float(np.mean([wanted <= set(doc["color_names"]) for doc in docs])))
        # -- image + colour: one engine per weight (and a wider pool)
        rng = random.Random(args.seed)
        sample = rng.sample(photos, min(args.blend_queries, len(photos)))
        clip = build_embedders(engines["w0"])["clip"]
        clips = np.asarray([doc["clip"] for doc in docs], dtype=np.float64)
        clips /= np.linalg.norm(clips, axis=1, keepdims=True)
        blend: dict[str, dict[str, list[float]]] = {
            label: {"colour": [], "overlap": [], "category": []} for label, _ in arms
        }
        chance_target: list[float] = []
        spread: dict[str, list[float]] = {"image": [], "colour": []}
        for path in sample:
            own = palettes[path]["color_names"][0]
            target = rng.choice([t for t in BLEND_TARGETS if t != own])
            chance_target.append(prior[target] / n)
            form = {"base64": base64.b64encode(path.read_bytes()).decode(), "rows": str(TOP),
                    "fl": "id", "color": CANONICAL[target]}  # fmt: skip
            # how far apart the two similarities lie within the image's pool of 200
            q = clip.embed_images([decode_image(path.read_bytes())])[0].astype(np.float64)
            s_img = (1 + clips @ (q / np.linalg.norm(q))) / 2
            pool = np.argsort(-s_img)[:200]
            s_col = (1 + matrix[pool] @ colour_query_vector([(CANONICAL[target], 1.0)])) / 2
            spread["image"].append(float(np.ptp(s_img[pool])))
            spread["colour"].append(float(np.ptp(s_col)))
            image_only: list[str] = []
            for label, config in arms:
                got = search(http, config.hashid, {}, form)["response"]["docs"]
                hits = [d["id"] for d in got]
                image_only = image_only or hits  # the first arm has weight 0
                part = blend[label]
                part["colour"].append(float(np.mean([names_of[h][0] == target for h in hits])))
                part["category"].append(
                    float(np.mean([category_of[h] == path.parent.name for h in hits]))
                )
                part["overlap"].append(len(set(hits) & set(image_only)) / TOP)

    print(f"## Colour search ({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)\n")
    print(f"- Command: `python bench/color_search.py {' '.join(sys.argv[1:])}`".rstrip())
    print(f"- Machine: {machine()}")
    print(f"- Index: {n} train photos (indexed in {index_s:.0f} s), colour descriptor 116-d +")
    print("  tiny seeded CLIP; queries through `GET/POST /api/cores/{collection}/image`, k 200")
    p50, p95 = np.percentile(qtimes, 50), np.percentile(qtimes, 95)
    print(f"- Colour-only pages vs exact numpy top-{TOP}: recall {np.mean(recalls):.4f}; QTime "
          f"p50 {p50:.0f} ms, p95 {p95:.0f} ms\n")  # fmt: skip
    print(f"Named colours (one canonical hex each): precision@{TOP} of dominant-colour match\n")
    print("| colour | hex | items with it dominant | precision@10 | chance |")
    print("|---|---|---:|---:|---:|")
    for name, count, precision, chance in named:
        print(f"| {name} | `{CANONICAL[name]}` | {count} | {precision:.2f} | {chance:.3f} |")
    macro_p = np.mean([p for _, c, p, _ in named if c])
    macro_c = np.mean([ch for _, c, _, ch in named if c])
    print(f"| **mean over colours present** | | | **{macro_p:.3f}** | **{macro_c:.3f}** |\n")
    print(f"Held-out photos ({len(one_p)} validation photos as colour queries)\n")
    print(f"| query | measure | precision@{TOP} | chance |")
    print("|---|---|---:|---:|")
    print(f"| the photo's dominant colour | hit's dominant colour = the query's name | "
          f"{np.mean(one_p):.3f} | {np.mean(one_c):.3f} |")  # fmt: skip
    print(f"| its top two colours with their shares ({len(two_p)} photos) | hit's palette has "
          f"both names | {np.mean(two_p):.3f} | {np.mean(two_c):.3f} |\n")  # fmt: skip
    print(f"Image + colour ({len(sample)} validation photos, each with a colour not its own)\n")
    print(f"| color_weight | colour precision@{TOP} | overlap@{TOP} with image-only | "
          f"category precision@{TOP} |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for label, _ in arms:
        part = blend[label]
        print(f"| {label} | {np.mean(part['colour']):.3f} | {np.mean(part['overlap']):.3f} | "
              f"{np.mean(part['category']):.3f} |")  # fmt: skip
    print(f"| chance | {np.mean(chance_target):.3f} | | |\n")
    print(f"Spread (max - min) within the image's pool of 200, median over the queries: image "
          f"similarity {np.median(spread['image']):.4f}, colour similarity "
          f"{np.median(spread['colour']):.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
