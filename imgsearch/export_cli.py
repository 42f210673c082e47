"""``imgsearch export-onnx``: export an engine's CLIP towers to ONNX ahead of serving.

The embedder exports lazily when its cached files are missing; running this beforehand (at
deploy time, or on a build machine whose cache folder is then shipped) keeps the first search
or index run from paying for the export.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from imgsearch.engine_config import ClipSpec, load_engine_config
from imgsearch.errors import ImgSearchError


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export-onnx",
        help="export an engine's CLIP image and text towers to ONNX (fp32 and int8), cached",
        description="Exports from the configured open_clip weights (nothing is downloaded) "
        "into a cache folder named after them; what is already there is kept. Set `runtime: "
        "onnx` or `onnx-int8` on the engine's clip vector to use the files.",
    )
    parser.add_argument(
        "--engine", type=Path, required=True, metavar="CONFIG", help="engine config (YAML/JSON)"
    )
    parser.add_argument(
        "--field", default=None, help="the clip vector field (default: every clip field)"
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="cache folder (default: $IMGSEARCH_ONNX_CACHE, else ~/.cache/imgsearch/onnx)",
    )
    parser.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    try:
        for field, spec in _clip_specs(args.engine, args.field).items():
            _export(field, spec, args.cache_dir)
    except ImgSearchError as exc:
        print(f"error: {exc.message}")
        return 2
    return 0


def _clip_specs(engine: Path, field: str | None) -> dict[str, ClipSpec]:
    config = load_engine_config(engine)
    specs = {n: s for n, s in config.vectors.items() if isinstance(s, ClipSpec)}
    if field is not None:
        if field not in specs:
            raise ImgSearchError(
                f"{engine}: {field!r} is not a clip vector field ({sorted(specs)})"
            )
        return {field: specs[field]}
    if not specs:
        raise ImgSearchError(f"{engine}: no clip vector field to export")
    return specs


def _export(field: str, spec: ClipSpec, cache_dir: Path | None) -> None:
    """Both runtimes' files (int8 is made from fp32), so either can be switched on later."""
    from imgsearch.embedders.clip_onnx_export import cache_root, ensure_exported, weights_version

    weights = weights_version(spec)
    towers = ensure_exported(spec, "onnx-int8", weights, cache_root(cache_dir))
    folder = towers.image.parent
    print(f"{field}: CLIP {spec.model} ({weights}), dim {towers.dim} -> {folder}")
    for name, cosine in towers.meta["min_cosine_to_source"].items():
        size = (folder / name).stat().st_size / 1e6
        print(f"  {name:<16} {size:8.1f} MB  min cosine to its source {cosine:.6f}")
