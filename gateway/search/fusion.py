"""Reciprocal-rank fusion of several rankings of the same catalog into one. Pure.

Why RRF and not normalised scores: BM25 scores are unbounded and their scale changes with
the query and the index, while cosine scores sit in a narrow band; ranks compare across
both without calibration. A document's fused score is ``sum(1 / (RRF_K + rank))`` over the
rankings that contain it (rank from 1); ``RRF_K = 60`` as in the original paper (Cormack et
al., 2009) and OpenSearch's own hybrid search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gateway.search.model import Hit

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[Hit]], k: int = RRF_K) -> list[Hit]:
    """One ranking, best first (ties: id); a single ranking comes back unchanged."""
    present = [ranking for ranking in rankings if ranking]
    if len(present) <= 1:
        return list(present[0]) if present else []
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in present:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (k + rank)
            first.setdefault(hit.id, hit)
    fused = [replace(first[i], score=score) for i, score in scores.items()]
    return sorted(fused, key=lambda hit: (-hit.score, hit.id))
