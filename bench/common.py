"""What the benchmarks share: the cluster they run against."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def node_url() -> str:
    """``$OPENSEARCH_URL``, else the project's local node (started if needed)."""
    if os.environ.get("OPENSEARCH_URL"):
        return os.environ["OPENSEARCH_URL"]
    spec = importlib.util.spec_from_file_location("node", ROOT / "scripts" / "opensearch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    url: str = module.start()
    return url
