"""Reciprocal-rank fusion, table-style."""

from __future__ import annotations

import pytest

from gateway.search.fusion import RRF_K, reciprocal_rank_fusion
from gateway.search.model import Hit


def hits(*ids: str) -> list[Hit]:
    return [Hit(i, 1.0 - n / 100, {}) for n, i in enumerate(ids)]


CASES: list[tuple[list[list[Hit]], list[str], str]] = [
    ([hits("a", "b")], ["a", "b"], "one ranking comes back as it is"),
    ([[], hits("a")], ["a"], "an empty ranking is ignored"),
    ([hits("a", "b"), hits("b", "a")], ["a", "b"], "a symmetric tie breaks on id"),
    ([hits("a", "b", "c"), hits("b", "c")], ["b", "c", "a"], "agreement beats one first place"),
    ([hits("x"), hits("y", "x")], ["x", "y"], "found by both beats one list's first"),
]


@pytest.mark.parametrize(("rankings", "expected", "why"), CASES)
def test_fusion_order(rankings: list[list[Hit]], expected: list[str], why: str) -> None:
    assert [h.id for h in reciprocal_rank_fusion(rankings)] == expected, why


def test_fused_scores_are_reciprocal_rank_sums() -> None:
    fused = {h.id: h.score for h in reciprocal_rank_fusion([hits("a", "b"), hits("b")])}
    assert fused["b"] == pytest.approx(1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert fused["a"] == pytest.approx(1 / (RRF_K + 1))
