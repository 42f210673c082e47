"""How tests compare floats that come from a model, from numpy or from OpenSearch scores.

Such floats differ in the last digits between CPU models, thread counts and batch shapes
(matrix kernels are not bit-reproducible), so no test compares them exactly:

- vectors: the same image embedded twice (other batch, other CPU) differs in the 8th digit
  (cosine > 1 - 1e-9); the closest two different photos of the clothing validation split
  have cosine 0.99913 under the seeded test model, which packs photos close together.
  ``VECTOR_MIN_COSINE`` = 0.9999 sits between the two.
- scores: OpenSearch computes ``(1 + cos) / 2`` in float32; the references compute it in
  float64. For the 32-d test model the float32 bound is about 32 * 2**-24 / 2 = 1e-6, and
  the largest difference measured over 60 gateway searches was 1.8e-7 (2026-11-27, AMD EPYC).
  ``SCORE_ATOL`` = 2e-6 sits above both. It must stay small: the seeded test model packs
  all scores into [0.75, 1], so neighbours in a ranking are often only ~4e-5 apart.
- order: two hits whose scores lie within ``SCORE_ATOL`` of each other may come back in
  either order (a near-tie); everywhere else the order must be the reference's exactly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

VECTOR_MIN_COSINE = 0.9999
SCORE_ATOL = 2e-6


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))


def assert_same_vector(
    got: Sequence[float], expected: Sequence[float], others: Sequence[Sequence[float]] = ()
) -> None:
    """``got`` is ``expected`` up to float noise, and clearly none of ``others``."""
    same = cosine(got, expected)
    assert same >= VECTOR_MIN_COSINE, f"cosine to the expected vector is only {same:.6f}"
    for i, other in enumerate(others):
        assert cosine(expected, other) < VECTOR_MIN_COSINE, f"candidate {i} equals the expected"
        assert cosine(got, other) < same, f"the vector is closer to wrong candidate {i}"


def tie_runs(
    ids: Sequence[str], scores: Sequence[float], groups: Sequence[object] | None = None
) -> list[frozenset[str]]:
    """For each position of a reference ordering, the ids that may stand there.

    Neighbours form one run when their ``groups`` (the sort keys before the score, e.g. a
    price when sorting by price) are equal and their scores are within ``SCORE_ATOL``.
    """
    runs: list[list[int]] = []
    for i in range(len(ids)):
        same_group = groups is None or (i > 0 and groups[i] == groups[i - 1])
        if i > 0 and same_group and abs(scores[i] - scores[i - 1]) <= SCORE_ATOL:
            runs[-1].append(i)
        else:
            runs.append([i])
    allowed: list[frozenset[str]] = []
    for run in runs:
        members = frozenset(ids[i] for i in run)
        allowed.extend(members for _ in run)
    return allowed


def ranking_problems(
    got_ids: Sequence[str],
    got_scores: Sequence[float],
    allowed: Sequence[frozenset[str]],
    score_of: Mapping[str, float],
) -> list[str]:
    """Why ``got`` is not the reference ordering up to near-ties (empty when it is)."""
    problems: list[str] = []
    if len(got_ids) != len(allowed):
        problems.append(f"{len(got_ids)} hits, expected {len(allowed)}")
    if len(set(got_ids)) != len(got_ids):
        problems.append(f"repeated ids in {list(got_ids)}")
    for position, (item, ok) in enumerate(zip(got_ids, allowed, strict=False)):
        if item not in ok:
            problems.append(f"position {position}: {item!r}, expected one of {sorted(ok)}")
    for item, score in zip(got_ids, got_scores, strict=True):
        want = score_of.get(item)
        if want is None or abs(score - want) > SCORE_ATOL:
            problems.append(f"{item!r} scored {score}, reference {want}")
    return problems
