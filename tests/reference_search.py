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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from gateway.search.model import And, FilterTree, Not, Or, Range, SearchRequest, Terms
from imgsearch.engine_config import EngineConfig, FieldType

Scored = list[tuple[float, dict[str, Any]]]


@dataclass
class Expected:
    ids: list[str]
    scores: list[float]
    total: int
    # field → {value: count} for terms facets, (min, max) for range facets
    facets: dict[str, Any] = field(default_factory=dict)


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
        kind = fields[tree.field].type
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


def pool(
    docs: Sequence[dict[str, Any]],
    req: SearchRequest,
    config: EngineConfig,
    omit: str | None = None,
) -> Scored:
    assert req.vector is not None
    scored = [
        (similarity(doc[req.vector_field], req.vector), doc)
        for doc in docs
        if req.vector_field in doc and _passes(doc, req, config, omit)
    ]
    scored.sort(key=lambda pair: (-pair[0], str(pair[1]["id"])))
    return scored[: req.k]


class _Desc:
    """Inverts the order of a comparable value (desc on strings as well as numbers)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.value == other.value)

    __hash__ = None  # type: ignore[assignment]


def ordered(scored: Scored, req: SearchRequest, config: EngineConfig) -> Scored:
    fields = config.searchable_fields()

    def key(pair: tuple[float, dict[str, Any]]) -> tuple[Any, ...]:
        score, doc = pair
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
        return (*parts, -score, str(doc["id"]))

    return sorted(scored, key=key)


def evaluate(docs: Sequence[dict[str, Any]], req: SearchRequest, config: EngineConfig) -> Expected:
    """Ids and scores of the requested page, total, and facet counts."""
    scored = pool(docs, req, config)
    page = ordered(scored, req, config)[(req.page - 1) * req.rpp : req.page * req.rpp]
    fields = config.searchable_fields()
    facets: dict[str, Any] = {}
    for facet in req.facets:
        base = pool(docs, req, config, omit=facet.field) if facet.field in req.filters else scored
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
    )
