"""Session fixture: a tiny open_clip checkpoint with seeded random weights (no downloads)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.embedders.clip import write_seeded_checkpoint


@pytest.fixture(scope="session")
def tiny_clip_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ClipSpec(model="imgsearch-tiny", pretrained=None, checkpoint=<this>)`` loads it."""
    return write_seeded_checkpoint(tmp_path_factory.mktemp("clip") / "imgsearch-tiny-seed0.pt")


def tiny_clip_spec(checkpoint: Path) -> dict[str, object]:
    """The engine-config ``vectors`` entry for the tiny seeded CLIP (CPU, no downloads)."""
    return {
        "embedder": "clip",
        "model": "imgsearch-tiny",
        "pretrained": None,
        "checkpoint": str(checkpoint),
        "device": "cpu",
    }
