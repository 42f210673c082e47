"""What the benchmarks share: the cluster they run against, the machine they report, and the
keys of their embedding caches."""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Sequence
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


def machine() -> str:
    """CPU model, cores, RAM, GPU, Python and torch, for the report header."""
    cpu = platform.machine()
    mem = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem} RAM, GPU: {gpu}; Python "
        f"{platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)"
    )


def photos_key(paths: Sequence[Path]) -> str:
    """The photo list as a cache key: paths relative to their common folder, so a clone or
    worktree elsewhere (CI, an A/B baseline) finds the vectors another one embedded."""
    if not paths:
        return ""
    root = os.path.commonpath([str(p.parent) for p in paths])
    return "|".join(str(p.relative_to(root)) for p in paths)
