"""Where a request's time went, per stage (exposed as ``Server-Timing`` and in metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Milliseconds per stage; ``observe`` also feeds the stage histograms."""

    observe: Callable[[str, float], None] | None = None
    parts: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, started: float, until: float | None = None) -> None:
        seconds = (time.perf_counter() if until is None else until) - started
        self.parts[name] = self.parts.get(name, 0.0) + seconds * 1000
        if self.observe is not None:
            self.observe(name, seconds)

    def header(self) -> str:
        return ", ".join(f"{name};dur={ms:.2f}" for name, ms in self.parts.items())
