#!/usr/bin/env python3
"""Exit 0 when the engine config's CLIP weights load from local files, 1 otherwise.

The demo uses it to choose between the CLIP engine and the weight-free one.
"""

from __future__ import annotations

import sys
from pathlib import Path

from imgsearch.embedders.registry import build_embedder
from imgsearch.engine_config import ClipSpec, load_engine_config
from imgsearch.errors import ConfigError


def main(config_path: str) -> int:
    config = load_engine_config(Path(config_path))
    for spec in config.vectors.values():
        if isinstance(spec, ClipSpec):
            try:
                build_embedder(spec, device="cpu")
            except ConfigError as exc:
                print(exc, file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
