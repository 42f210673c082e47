"""``imgsearch finetune``: fine-tune a file-defined engine in the foreground.

The same job as ``POST /api/collection/{id}/finetune`` (``indexer.finetune``), without the
job runner: progress goes to stderr and the outcome, as JSON, to stdout. Ctrl-C cancels it
(the alias has not moved until the end; a new run resumes an unfinished version). Gateways
pick the adapter up from the new index version by themselves; the engine file is unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from imgsearch.cli_options import add_engine_options, opensearch_url
from imgsearch.engine_config import load_engine_config
from imgsearch.errors import ImgSearchError
from imgsearch.finetune.store import AdapterStore
from imgsearch.finetune.train import TrainSettings
from imgsearch.search_client import make_client
from indexer.finetune import FinetuneRequest, finetune_collection


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="learn an adapter for an engine's embedder from its labels or augmented copies, "
        "write a new index version through it and swap the alias",
    )
    add_engine_options(parser)
    parser.add_argument("--label-field", metavar="FIELD",
                        help="field whose values are the labels (e.g. category)")  # fmt: skip
    parser.add_argument("--augment", action="store_true",
                        help="also learn from augmented copies of the images")  # fmt: skip
    parser.add_argument("--field", metavar="VECTOR",
                        help="vector field to tune (default: the one queries use)")  # fmt: skip
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="folder relative image paths are in (--augment; default: .)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="CLIP device for augmented copies")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from imgsearch.embedders.registry import build_embedder

    def progress(fraction: float) -> None:
        print(f"\rfine-tuning: {fraction:6.1%}", end="", file=sys.stderr, flush=True)

    try:
        config = load_engine_config(args.engine)
        client = make_client(opensearch_url(args), timeout_s=120)
        field = args.field or config.query_vector_field
        if field not in config.vectors:
            print(f"error: {field!r} is not a vector field of {config.hashid}")
            return 2
        base = build_embedder(config.vectors[field], device=args.device)
        request = FinetuneRequest(
            vector_field=field, label_field=args.label_field, augment=args.augment,
            settings=TrainSettings(seed=args.seed),
        )  # fmt: skip
        outcome = finetune_collection(client, config, base, AdapterStore(client), request,
                                      progress=progress, image_root=args.images)  # fmt: skip
    except ImgSearchError as exc:
        print(f"\nerror: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ncancelled: the alias was not moved", file=sys.stderr)
        return 130
    print(file=sys.stderr)
    print(json.dumps(outcome.as_state(), indent=2))
    return 0
