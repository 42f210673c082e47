"""Doofinder query parameters (and/or the same parameters as JSON) → neutral request parts.

Both inputs are folded into one tree by ``gateway.dialects.param_tree`` (bracket syntax
rules there), so ``filter[color][]=red`` in the query and ``{"filter": {"color": ["red"]}}``
in the body mean the same and combine. Doofinder's rules on top:

- Repeating a filter leaf collects values (``filter[size]=M&filter[size]=S``); a scalar
  parameter (``rpp``, ``page``…) repeated with *different* values is an error.
- Unknown top-level parameters are ignored (as Doofinder does); unknown *fields* are not.
- Empty filter values (``filter[color]=``) are ignored.

Limits: ``rpp`` 1..100 (default 20), ``page`` ≥ 1, and ``page * rpp`` at most
``min(k, 1000)`` so every page lies inside the candidate pool.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from gateway.dialects.param_tree import (
    Node,
    Tree,
    as_list,
    build_tree,
    is_index,
    leaf_scalar,
    scalar,
)
from gateway.dialects.query_string import query_pairs, remembered
from gateway.search.color_query import parse_colors
from gateway.search.model import (
    ColorQuery,
    FacetRequest,
    FacetType,
    FilterExecution,
    FilterTree,
    Range,
    Scalar,
    SearchRequest,
    SortKey,
    SortOrder,
    Terms,
)
from imgsearch.engine_config import EngineConfig, FieldSpec, FieldType
from imgsearch.errors import InvalidRequest, UnknownField

DEFAULT_RPP = 20
MAX_RPP = 100
MAX_RESULT_WINDOW = 1000
MAX_FACET_SIZE = 50
DEFAULT_FACET_SIZE = 20
MAX_SESSION_ID = 32
MAX_USER_ID = 36
MAX_QUERY = 1_000
RANGE_OPS = ("gte", "gt", "lte", "lt")
RELEVANCE = frozenset({"_score", "score", "relevance"})
_FACET_KEYS = frozenset({"field", "size", "type"})
_FACET_TYPES = {"term": "terms", "terms": "terms", "range": "range"}
_INT = re.compile(r"[+-]?[0-9]{1,9}")
_EPOCH = re.compile(r"-?[0-9]{1,15}")


@dataclass(frozen=True)
class DoofinderParams:
    """Everything the Doofinder image-search parameters say, besides the image itself."""

    filters: Mapping[str, FilterTree] = field(default_factory=dict)
    excludes: tuple[FilterTree, ...] = ()
    filter_execution: FilterExecution = "and"
    facets: tuple[FacetRequest, ...] = ()
    sort: tuple[SortKey, ...] = ()
    page: int = 1
    rpp: int = DEFAULT_RPP
    session_id: str | None = None
    user_id: str | None = None
    stats: bool = True
    excluded_results: bool = True
    exclude_self: bool = True
    dfid: str | None = None
    query: str | None = None  # the words of a ``_search``; None: browse the catalog
    # Extension: ``color=#0a7e8c:0.7,#ffffff:0.3`` searches by colour (see color_query.py).
    color: ColorQuery | None = None

    def search_request(
        self,
        config: EngineConfig,
        vector: Sequence[float] | None = None,
        exclude_ids: Iterable[str] = (),
        vector_field: str | None = None,
    ) -> SearchRequest:
        """The neutral request; the service sets ``vector`` from the query unless given here."""
        return SearchRequest(
            engine=config.hashid,
            vector_field=vector_field or config.query_vector_field,
            k=config.gateway.k,
            vector=[float(x) for x in vector] if vector is not None else None,
            filters=dict(self.filters),
            filter_execution=self.filter_execution,
            excludes=self.excludes,
            exclude_ids=tuple(exclude_ids),
            facets=self.facets,
            sort=self.sort,
            page=self.page,
            rpp=self.rpp,
            collapse=config.gateway.product_field,
            # A shopper's pages read the same shard copies (no item repeated or skipped).
            preference=f"session:{self.session_id}" if self.session_id else None,
        )


# ---------------------------------------------------------------- typed values


def _int(text: str | None, name: str, default: int) -> int:
    if text is None:
        return default
    text = text.strip()
    if not _INT.fullmatch(text):
        raise InvalidRequest(f"Invalid {name}")
    return int(text)


def _bool(text: str | None, name: str, default: bool) -> bool:
    if text is None:
        return default
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidRequest(f"Invalid {name}: expected true or false")


def typed_value(text: str, spec: FieldSpec, where: str) -> Scalar:
    """A filter value as the field's type: number → float, boolean → bool, else str."""
    if spec.type is FieldType.NUMBER:
        try:
            number = float(text.strip())
        except ValueError:
            raise InvalidRequest(f"Invalid number {text!r} in {where}") from None
        if not math.isfinite(number):
            raise InvalidRequest(f"Invalid number {text!r} in {where}")
        return number
    if spec.type is FieldType.BOOLEAN:
        return _bool(text, f"boolean {text!r} in {where}", False)
    if spec.type is FieldType.DATE:
        stripped = text.strip()
        if not _EPOCH.fullmatch(stripped):
            try:
                datetime.fromisoformat(stripped.replace("Z", "+00:00"))
            except ValueError:
                try:
                    date.fromisoformat(stripped)
                except ValueError:
                    raise InvalidRequest(f"Invalid date {text!r} in {where}") from None
        return stripped
    return text


# ---------------------------------------------------------------- filters


# ``fields``: the engine's ``searchable_fields()``, built once per request.
Fields = Mapping[str, FieldSpec]


def _field(name: str, fields: Fields, what: str) -> FieldSpec:
    spec = fields.get(name)
    if spec is None:
        raise UnknownField(f"Unknown field {name!r} in {what}")
    return spec


def _clause(field_name: str, node: Node, fields: Fields, param: str) -> FilterTree | None:
    where = f"{param}[{field_name}]"
    spec = _field(field_name, fields, param)
    if isinstance(node, dict) and not all(is_index(key) for key in node):
        bad = [key for key in node if key not in RANGE_OPS]
        if bad:
            raise InvalidRequest(
                f"Invalid range operator {bad[0]!r} in {where}: use gte, gt, lte or lt"
            )
        if spec.type not in (FieldType.NUMBER, FieldType.DATE):
            raise InvalidRequest(f"Range filters need a number or date field; {where} is not")
        bounds = {
            op: typed_value(leaf_scalar(child, f"{where}[{op}]"), spec, where)
            for op, child in node.items()
        }
        return Range(field_name, **bounds)
    texts: list[str] = []
    for item in [node] if isinstance(node, list) else as_list(node, where):
        if isinstance(item, dict):
            raise InvalidRequest(f"Invalid value in {where}")
        texts.extend(item)
    values: list[Scalar] = []
    for text in texts:
        if text != "":
            value = typed_value(text, spec, where)
            if value not in values:
                values.append(value)
    return Terms(field_name, tuple(values)) if values else None


def _filters(tree: Tree, param: str, fields: Fields) -> dict[str, FilterTree]:
    node = tree.get(param)
    if node is None:
        return {}
    if isinstance(node, list):
        raise InvalidRequest(f"Invalid {param}: expected {param}[field]=value")
    clauses: dict[str, FilterTree] = {}
    for name, child in node.items():
        clause = _clause(name, child, fields, param)
        if clause is not None:
            clauses[name] = clause
    return clauses


# ---------------------------------------------------------------- facets and sort


def _facet_type(spec: FieldSpec) -> FacetType:
    return "range" if spec.type in (FieldType.NUMBER, FieldType.DATE) else "terms"


def _facet(node: Node, index: int, config: EngineConfig, fields: Fields) -> FacetRequest:
    where = f"facets[{index}]"
    if isinstance(node, list):
        name, size_text, type_text = leaf_scalar(node, where), None, None
    else:
        unknown = node.keys() - _FACET_KEYS
        if unknown:
            raise InvalidRequest(f"Invalid key {sorted(unknown)[0]!r} in {where}")
        if "field" not in node:
            raise InvalidRequest(f"Missing field in {where}")
        name = leaf_scalar(node["field"], f"{where}[field]")
        size_text = leaf_scalar(node["size"], f"{where}[size]") if "size" in node else None
        type_text = leaf_scalar(node["type"], f"{where}[type]") if "type" in node else None
    spec = fields.get(name)
    if spec is None:
        raise UnknownField(f"Unknown field {name!r} in facets")
    if not spec.facet:
        raise UnknownField(f"Field {name!r} is not a facet")
    inferred = _facet_type(spec)
    if type_text is not None:
        wanted = _FACET_TYPES.get(type_text.lower())
        if wanted != inferred:
            expected = "term" if inferred == "terms" else "range"
            raise InvalidRequest(f"Invalid facet type {type_text!r} for {name!r}: use {expected}")
    default = next((f.size for f in config.gateway.facets if f.field == name), DEFAULT_FACET_SIZE)
    size = _int(size_text, f"facet size in {where}", default)
    if size_text is not None and not 1 <= size <= MAX_FACET_SIZE:
        raise InvalidRequest(f"Invalid facet size in {where}: 1 to {MAX_FACET_SIZE}")
    return FacetRequest(field=name, size=size, type=inferred)


def _facets(tree: Tree, config: EngineConfig, fields: Fields) -> tuple[FacetRequest, ...]:
    node = tree.get("facets")
    if node is None:
        return tuple(
            FacetRequest(f.field, f.size, f.type or _facet_type(fields[f.field]))
            for f in config.gateway.facets
        )
    facets: list[FacetRequest] = []
    items = [node] if isinstance(node, list) else as_list(node, "facets")
    for i, item in enumerate(items):
        if isinstance(item, list):
            facets.extend(_facet([text], i, config, fields) for text in item if text != "")
        else:
            facets.append(_facet(item, i, config, fields))
    seen: set[str] = set()
    for facet in facets:
        if facet.field in seen:
            raise InvalidRequest(f"Facet {facet.field!r} requested more than once")
        seen.add(facet.field)
    return tuple(facets)


def _order(text: str, where: str) -> SortOrder:
    lowered = text.strip().lower()
    if lowered not in ("asc", "desc"):
        raise InvalidRequest(f"Invalid sort order {text!r} in {where}: use asc or desc")
    return cast(SortOrder, lowered)


def _sort_pairs(node: Node) -> list[tuple[str, str, str]]:
    """(field, order, where) in request order, from any of the accepted sort forms."""
    if isinstance(node, list):
        return [(name, "asc", "sort") for name in node if name != ""]
    if all(is_index(key) for key in node):
        pairs: list[tuple[str, str, str]] = []
        for i, item in enumerate(as_list(node, "sort")):
            if isinstance(item, list):
                pairs.extend((name, "asc", f"sort[{i}]") for name in item if name != "")
            else:
                for name, order in item.items():
                    where = f"sort[{i}][{name}]"
                    pairs.append((name, leaf_scalar(order, where), where))
        return pairs
    return [
        (name, leaf_scalar(order, f"sort[{name}]"), f"sort[{name}]") for name, order in node.items()
    ]


def _sort(tree: Tree, fields: Fields) -> tuple[SortKey, ...]:
    node = tree.get("sort")
    if node is None:
        return ()
    keys: list[SortKey] = []
    for name, order_text, where in _sort_pairs(node):
        order = _order(order_text, where)
        if name in RELEVANCE:
            # Relevance ends the sort: it is the tie-breaker, so later keys never apply.
            if order == "asc" and where != "sort":
                raise InvalidRequest(f"Invalid sort order in {where}: relevance sorts desc")
            break
        _field(name, fields, "sort")
        if any(key.field == name for key in keys):
            raise InvalidRequest(f"Sort field {name!r} given more than once")
        keys.append(SortKey(name, order))
    return tuple(keys)


# ---------------------------------------------------------------- entry point


def _text(tree: Tree, name: str, limit: int) -> str | None:
    value = scalar(tree, name)
    if value is not None and len(value) > limit:
        raise InvalidRequest(f"Invalid {name}: at most {limit} characters")
    return value


def parse_params(
    pairs: Iterable[tuple[str, str]],
    config: EngineConfig,
    body: Mapping[str, Any] | None = None,
) -> DoofinderParams:
    """Parse query ``pairs`` (``query_string.query_pairs``) and/or a JSON ``body``.

    Raises ``InvalidRequest`` (or its ``UnknownField`` subclass) with a client-safe message.
    """
    tree = build_tree(pairs, body)
    rpp = _int(scalar(tree, "rpp"), "rpp", DEFAULT_RPP)
    if not 1 <= rpp <= MAX_RPP:
        raise InvalidRequest("Invalid rpp")
    page = _int(scalar(tree, "page"), "page", 1)
    if page < 1:
        raise InvalidRequest("Invalid page")
    window = min(config.gateway.k, MAX_RESULT_WINDOW)
    if page * rpp > window:
        raise InvalidRequest(
            f"Requested page out of range: page * rpp must be at most {window}"
            f" (page={page}, rpp={rpp})"
        )
    execution = (scalar(tree, "filter_execution") or "and").strip().lower()
    if execution not in ("and", "or"):
        raise InvalidRequest("Invalid filter_execution: use and or or")
    fields = config.searchable_fields()
    return DoofinderParams(
        filters=_filters(tree, "filter", fields),
        excludes=tuple(_filters(tree, "exclude", fields).values()),
        filter_execution=cast(FilterExecution, execution),
        facets=_facets(tree, config, fields),
        sort=_sort(tree, fields),
        page=page,
        rpp=rpp,
        session_id=_text(tree, "session_id", MAX_SESSION_ID),
        user_id=_text(tree, "user_id", MAX_USER_ID),
        stats=_bool(scalar(tree, "stats"), "stats", True),
        excluded_results=_bool(scalar(tree, "excluded_results"), "excluded_results", True),
        exclude_self=_bool(scalar(tree, "exclude_self"), "exclude_self", True),
        dfid=scalar(tree, "dfid") or None,
        query=_query(tree),
        color=_color(tree),
    )


def _parse_query_string(raw: bytes, config: EngineConfig) -> DoofinderParams:
    return parse_params(query_pairs(raw), config)


# The parameters of a raw query string (``scope["query_string"]``) when the body holds none:
# parsed once per distinct string and engine config (``query_string.remembered``).
parse_query_string = remembered(_parse_query_string)


def _color(tree: Tree) -> ColorQuery | None:
    text = scalar(tree, "color")
    return parse_colors(text) if text is not None and text.strip() else None


def _query(tree: Tree) -> str | None:
    text = _text(tree, "query", MAX_QUERY)
    if text is not None and not text.strip():
        raise InvalidRequest("Invalid query: it is empty (leave it out to browse the catalog)")
    return text
