"""Build the embedders an engine config names, one per vector field.

CLIP (torch or ONNX Runtime) is imported lazily so colour/phash-only processes never load torch.
"""

from __future__ import annotations

from imgsearch.embedders.base import Embedder
from imgsearch.engine_config import ClipSpec, ColorSpec, EngineConfig, PhashSpec
from imgsearch.errors import ConfigError


def build_embedder(
    spec: ClipSpec | ColorSpec | PhashSpec, *, device: str | None = None
) -> Embedder:
    """One embedder from its spec; ``device`` overrides a CLIP spec's ``device``."""
    if isinstance(spec, ClipSpec) and spec.runtime != "torch":
        from imgsearch.embedders.clip_onnx import OnnxClipEmbedder

        return OnnxClipEmbedder(spec, device=device)
    if isinstance(spec, ClipSpec):
        from imgsearch.embedders.clip import ClipEmbedder

        return ClipEmbedder(spec, device=device)
    if isinstance(spec, ColorSpec):
        from imgsearch.embedders.color import ColorEmbedder

        return ColorEmbedder()
    if isinstance(spec, PhashSpec):
        from imgsearch.embedders.phash import PhashEmbedder

        return PhashEmbedder()
    raise ConfigError(f"unknown embedder spec {spec!r}")


def build_embedders(config: EngineConfig, *, device: str | None = None) -> dict[str, Embedder]:
    """Vector field name -> embedder; identical CLIP specs share one loaded model."""
    built: dict[ClipSpec | ColorSpec | PhashSpec, Embedder] = {}
    embedders: dict[str, Embedder] = {}
    for field, spec in config.vectors.items():
        if spec not in built:
            built[spec] = build_embedder(spec, device=device)
        embedders[field] = built[spec]
    return embedders
