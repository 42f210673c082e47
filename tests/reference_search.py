"""Brute-force reference for the gateway's search semantics, in plain Python and numpy.

Independent of ``gateway.search.dsl``/``results``: it reads only the neutral request and
evaluates it over a list of documents, so integration tests can compare the real node to it.

Semantics (from DESIGN.md):
- pool = the ``k`` documents passing the complete filter with the highest similarity
  ``(1 + cos) / 2`` (ties: smaller id first); ``total`` = pool size;
- default order: score desc, id asc; field sort: sort keys in turn (multi-valued fields use
  min for asc, max for desc; documents missing the field last), then score desc, id asc;
- page = ``order[(page-1)*rpp : page*rpp]``;
- a facet is counted over the pool of the request *without its own field's filter* when
  that field is filtered (disjunctive), else over the pool itself. Range facets give
  (min, max); dates as epoch milliseconds, as OpenSearch's stats aggregation does.

Scores from OpenSearch differ from these in the last digits (``tests/tolerance.py``), so
``Expected`` also says which ids may stand at each page position (near-ties) and which
pools have a near-tie at their boundary (their membership is then not decidable).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway.search.model import (
    And,
    Exists,
    FilterTree,
    Not,
    Or,
    Range,
    SearchRequest,
    Terms,
)
from imgsearch.engine_config import EngineConfig, FieldType
from tests.tolerance import SCORE_ATOL, ranking_problems, tie_runs

Scored = list[tuple[float, dict[str, Any]]]


@dataclass
class Expected:
    ids: list[str]
    scores: list[float]
    total: int
    # field → {value: count} for terms facets, (min, max) for range facets
    facets: dict[str, Any] = field(default_factory=dict)
    # per page position, the ids that may stand there (near-ties in score)
    allowed: list[frozenset[str]] = field(default_factory=list)
    # reference score of every document that passes the filter
    score_of: dict[str, float] = field(default_factory=dict)
    # the k-th and (k+1)-th candidates are near-tied: which one is in the pool is undecidable
    pool_ambiguous: bool = False
    # facets counted over such an ambiguous pool
    ambiguous_facets: frozenset[str] = frozenset()

    def page_problems(self, got_ids: Sequence[str], got_scores: Sequence[float]) -> list[str]:
        """Why a returned page is not this one up to near-ties (empty when it is)."""
        return ranking_problems(got_ids, got_scores, self.allowed, self.score_of)


def _values(doc: dict[str, Any], name: str) -> list[Any]:
    raw = doc.get(name)
    if raw is None:
        return []
    return list(raw) if isinstance(raw, list) else [raw]


def _norm(value: Any, kind: FieldType | None) -> Any:
    if kind is FieldType.NUMBER:
        return float(value)
    if kind is FieldType.BOOLEAN:
        return value if isinstance(value, bool) else str(value).lower() in ("true", "1")
    if kind is FieldType.DATE:
        text = str(value)
        if text.lstrip("-").isdigit():
            return float(text)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp() * 1000.0
    return str(value)


def matches(doc: dict[str, Any], tree: FilterTree, config: EngineConfig) -> bool:
    fields = config.searchable_fields()
    if isinstance(tree, Terms):
        kind = fields[tree.field].type if tree.field in fields else None
        have = {_norm(v, kind) for v in _values(doc, tree.field)}
        return any(_norm(v, kind) in have for v in tree.values)
    if isinstance(tree, Range):
        kind = fields[tree.field].type if tree.field in fields else None
        for raw in _values(doc, tree.field):
            v = _norm(raw, kind)
            if tree.gte is not None and not v >= _norm(tree.gte, kind):
                continue
            if tree.gt is not None and not v > _norm(tree.gt, kind):
                continue
            if tree.lte is not None and not v <= _norm(tree.lte, kind):
                continue
            if tree.lt is not None and not v < _norm(tree.lt, kind):
                continue
            return True
        return False
    if isinstance(tree, Exists):
        return bool(_values(doc, tree.field))
    if isinstance(tree, And):
        return all(matches(doc, child, config) for child in tree.children)
    if isinstance(tree, Or):
        return any(matches(doc, child, config) for child in tree.children)
    assert isinstance(tree, Not)
    return not matches(doc, tree.child, config)


def _passes(
    doc: dict[str, Any], req: SearchRequest, config: EngineConfig, omit: str | None
) -> bool:
    """The complete filter, written out from the request's parts (not ``filter_tree``)."""
    positive = [c for name, c in req.filters.items() if name != omit]
    if positive:
        hits = [matches(doc, c, config) for c in positive]
        if not (all(hits) if req.filter_execution == "and" else any(hits)):
            return False
    if any(matches(doc, c, config) for c in req.excludes):
        return False
    return str(doc["id"]) not in set(req.exclude_ids)


def similarity(doc_vector: Sequence[float], query: Sequence[float]) -> float:
    a = np.asarray(doc_vector, dtype=np.float64)
    b = np.asarray(query, dtype=np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return (1.0 + cos) / 2.0


def candidates(
    docs: Sequence[dict[str, Any]],
    req: SearchRequest,
    config: EngineConfig,
    omit: str | None = None,
) -> Scored:
    """Every document passing the filter (less ``omit``'s clause), best first."""
    assert req.vector is not None
    scored = [
        (similarity(doc[req.vector_field], req.vector), doc)
        for doc in docs
        if req.vector_field in doc and _passes(doc, req, config, omit)
    ]
    scored.sort(key=lambda pair: (-pair[0], str(pair[1]["id"])))
    return scored


def _boundary_tied(ranked: Scored, k: int) -> bool:
    return len(ranked) > k and ranked[k - 1][0] - ranked[k][0] <= SCORE_ATOL


class _Desc:
    """Inverts the order of a comparable value (desc on strings as well as numbers)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def _sort_parts(doc: dict[str, Any], req: SearchRequest, config: EngineConfig) -> tuple[Any, ...]:
    """The field-sort part of a document's order key (empty in relevance order)."""
    fields = config.searchable_fields()
    parts: list[Any] = []
    for sort_key in req.sort:
        kind = fields[sort_key.field].type
        vals = [_norm(v, kind) for v in _values(doc, sort_key.field)]
        if kind is FieldType.BOOLEAN:
            vals = [float(v) for v in vals]
        if kind is FieldType.DATE:
            vals = [str(v) for v in _values(doc, sort_key.field)]
        if not vals:
            parts.append((1, None))
            continue
        if sort_key.order == "asc":
            parts.append((0, min(vals)))
        else:
            parts.append((0, _Desc(max(vals))))
    return tuple(parts)


def ordered(scored: Scored, req: SearchRequest, config: EngineConfig) -> Scored:
    return sorted(
        scored, key=lambda pair: (*_sort_parts(pair[1], req, config), -pair[0], str(pair[1]["id"]))
    )


def collapse(scored: Scored, field: str | None) -> tuple[Scored, bool]:
    """The best hit per value of ``field`` (no value: its own product); and whether some
    product's best two hits are near-tied (then which one represents it is undecidable)."""
    if field is None:
        return scored, False
    best: dict[tuple[str, str], float] = {}
    kept: Scored = []
    tied = False
    for score, doc in scored:
        values = _values(doc, field)
        key = ("v", str(values[0])) if values else ("id", str(doc["id"]))
        if key in best:
            tied = tied or best[key] - score <= SCORE_ATOL
            continue
        best[key] = score
        kept.append((score, doc))
    return kept, tied


def evaluate(docs: Sequence[dict[str, Any]], req: SearchRequest, config: EngineConfig) -> Expected:
    """Ids and scores of the requested page, total, facet counts, and the near-ties."""
    ranked = candidates(docs, req, config)
    scored, tied = collapse(ranked[: req.k], req.collapse)
    ambiguous = _boundary_tied(ranked, req.k) or tied
    window = slice(req.offset, req.offset + req.rpp)
    page = ordered(scored, req, config)[window]
    fields = config.searchable_fields()
    facets: dict[str, Any] = {}
    ambiguous_facets: set[str] = set()
    for facet in req.facets:
        base = scored
        if facet.field in req.filters:
            own = candidates(docs, req, config, omit=facet.field)
            base, own_tied = collapse(own[: req.k], req.collapse)
            if _boundary_tied(own, req.k) or own_tied:
                ambiguous_facets.add(facet.field)
        elif ambiguous:
            ambiguous_facets.add(facet.field)
        kind = fields[facet.field].type
        if facet.type == "range":
            nums = [float(_norm(v, kind)) for _, d in base for v in _values(d, facet.field)]
            facets[facet.field] = (min(nums), max(nums)) if nums else (None, None)
        else:
            counts: Counter[Any] = Counter()
            for _, doc in base:
                counts.update({_norm(v, kind) for v in _values(doc, facet.field)})
            facets[facet.field] = dict(counts)
    return Expected(
        ids=[str(doc["id"]) for _, doc in page],
        scores=[score for score, _ in page],
        total=len(scored),
        facets=facets,
        allowed=_allowed(ranked, len(scored), req, config, ambiguous)[window],
        score_of={str(doc["id"]): score for score, doc in ranked},
        pool_ambiguous=ambiguous,
        ambiguous_facets=frozenset(ambiguous_facets),
    )


def _allowed(
    ranked: Scored, size: int, req: SearchRequest, config: EngineConfig, ambiguous: bool
) -> list[frozenset[str]]:
    """Per position of the ordered pool (``size`` long), the ids that may stand there."""
    if not req.sort and not (ambiguous and req.collapse):
        # Relevance order is a prefix of all candidates (one per product when collapsing): a
        # near-tie at the pool's boundary is one more run, reaching past its end.
        prefix, _ = collapse(ranked, req.collapse)
        ids = [str(doc["id"]) for _, doc in prefix]
        return tie_runs(ids, [score for score, _ in prefix])[:size]
    if ambiguous:
        # Which near-tied document made the pool moves positions all over a field order:
        # only "some candidate at least as good as the boundary" is decidable.
        floor = ranked[min(req.k, len(ranked)) - 1][0] - SCORE_ATOL
        fit = frozenset(str(doc["id"]) for score, doc in ranked if score >= floor)
        return [fit] * size
    order = ordered(collapse(ranked[: req.k], req.collapse)[0], req, config)
    return tie_runs(
        [str(doc["id"]) for _, doc in order],
        [score for score, _ in order],
        [_sort_parts(doc, req, config) for _, doc in order],
    )
