"""Mongo-style filter objects (Ximilar's ``filter``) → the neutral filter tree. Pure.

Mongo's semantics on multi-valued fields: implicit equality, ``$eq`` and ``$in`` match when
any value matches; ``$ne`` and ``$nin`` when none does, documents without the field
included (``Not(Terms)``). Each operator on a field is a condition of its own, so
``{"price": {"$gte": 10, "$lt": 20}}`` may be met by two different values, as in Mongo
(``$elemMatch``, one value meeting both, is not supported). Decisions where Mongo and the
index differ, or where Mongo is unclear:

- The field's configured type, not the JSON type, says what a value means: ``"10"`` on a
  number field is 10, ``"true"``/``"false"`` on a boolean field are booleans, dates are ISO
  strings or epoch milliseconds; OpenSearch stores such values so, and the filter should
  mean what the index holds. Keyword and text fields need strings (is 5 "5" or "5.0"?).
- ``null`` is "no value", as in the index (it keeps no nulls): ``{"f": null}`` is
  ``Not(Exists)``, ``{"f": {"$ne": null}}`` is ``Exists``, and a ``null`` in ``$in``/``$nin``
  adds or removes the documents without the field. A ``null`` range bound is an error.
- An array as an equality value (``{"tags": ["a", "b"]}``) is an error, not ``$in``: Mongo
  would match the whole array exactly, which the index cannot answer.
- Ranges work on number, date, keyword and text fields (strings by code point, the order
  of Mongo, OpenSearch keyword ranges and Python alike), not on booleans.
- Ximilar's documented operator-first form ``{"$gte": {"price": 200}}`` means
  ``{"price": {"$gte": 200}}``.
- ``{}`` (match all) is accepted only as the whole filter; the tree has no "match all".
- A dotted name is a field name like any other: it must be one the engine config has.
  ``_id`` is the stored item id.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import cast

from gateway.search.model import ID_FIELD, And, Exists, FilterTree, Not, Or, Range, Scalar, Terms
from imgsearch.engine_config import EngineConfig, FieldType
from imgsearch.errors import InvalidRequest, UnknownField

ROOT = "filter"
MAX_DEPTH = 32
MAX_NODES = 1000
LOGICAL_OPS = frozenset({"$and", "$or", "$nor"})
RANGE_OPS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
FIELD_OPS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", *RANGE_OPS})
# Mongo operators a client may well send, answered with "not supported" rather than "unknown".
UNSUPPORTED_OPS = frozenset(
    {"$regex", "$options", "$elemMatch", "$all", "$size", "$type", "$mod", "$where", "$expr"}
)
_NUMBER = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")
_EPOCH_MILLIS = re.compile(r"-?[0-9]{1,15}")
_ISO_DATE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?"
)


def parse_mongo_filter(raw: object, config: EngineConfig) -> FilterTree | None:
    """The neutral tree of a Mongo-style filter; ``None`` when it is empty (no filter).

    Raises ``InvalidRequest`` naming the JSON path of what cannot be used, ``UnknownField``
    for a field the engine does not have.
    """
    if raw is None or raw == {}:
        return None
    return _Parser(config).condition(raw, ROOT, 1)


def _all(clauses: list[FilterTree]) -> FilterTree:
    """All of ``clauses``, nested ``And``s spliced in (one object's operators, ``$and``)."""
    flat: list[FilterTree] = []
    for clause in clauses:
        flat.extend(clause.children if isinstance(clause, And) else (clause,))
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _negate(clause: FilterTree) -> FilterTree:
    """``Not``, without a double negation (``$ne: null`` is ``Exists``, not ``Not(Not(…))``)."""
    return clause.child if isinstance(clause, Not) else Not(clause)


def _is_operators(node: dict[str, object]) -> bool:
    return all(key.startswith("$") for key in node)


class _Parser:
    """One parse: the engine's fields and the count of JSON values seen (the size guard)."""

    def __init__(self, config: EngineConfig) -> None:
        self.types = {name: spec.type for name, spec in config.searchable_fields().items()}
        self.nodes = 0

    def condition(self, node: object, path: str, depth: int) -> FilterTree:
        """A query object: fields and top-level operators, all of which must hold."""
        clauses: list[FilterTree] = []
        for key, value in self._object(node, path, depth).items():
            where = f"{path}.{key}"
            if key in LOGICAL_OPS:
                clauses.append(self._logical(key, value, where, depth + 1))
            elif key in FIELD_OPS:
                clauses.append(self._operator_first(key, value, where, depth + 1))
            elif key == "$not":
                raise InvalidRequest(f"{where}: $not applies to a field's operators; use $nor")
            elif key.startswith("$"):
                raise _bad_operator(key, where)
            else:
                clauses.append(self._field(key, value, where, depth + 1))
        return _all(clauses)

    # ------------------------------------------------------------ JSON shape and guards

    def _visit(self, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise InvalidRequest(f"{ROOT}: too large (more than {MAX_NODES} values)")
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"{path}: nested deeper than {MAX_DEPTH} levels")

    def _object(self, node: object, path: str, depth: int) -> dict[str, object]:
        self._visit(path, depth)
        if not isinstance(node, dict):
            raise InvalidRequest(f"{path}: expected an object")
        if not node:
            raise InvalidRequest(f"{path}: empty object")
        if not all(isinstance(key, str) for key in node):
            raise InvalidRequest(f"{path}: keys must be strings")
        return cast(dict[str, object], node)

    def _list(self, node: object, path: str, depth: int) -> list[object]:
        self._visit(path, depth)
        if not isinstance(node, list):
            raise InvalidRequest(f"{path}: expected an array")
        return cast(list[object], node)

    # ------------------------------------------------------------ conditions

    def _logical(self, op: str, node: object, path: str, depth: int) -> FilterTree:
        items = self._list(node, path, depth)
        if not items:
            raise InvalidRequest(f"{path}: expected a non-empty array of conditions")
        children = [self.condition(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(items)]
        if op == "$and":
            return _all(children)
        either = children[0] if len(children) == 1 else Or(tuple(children))
        return either if op == "$or" else _negate(either)

    def _operator_first(self, op: str, node: object, path: str, depth: int) -> FilterTree:
        """Ximilar's ``{"$gte": {"price": 200}}``: the operator on each field named."""
        clauses: list[FilterTree] = []
        for name, operand in self._object(node, path, depth).items():
            where = f"{path}.{name}"
            field, kind = self._spec(name, where)
            clauses.append(self._operator(field, kind, op, operand, where, depth + 1))
        return _all(clauses)

    def _spec(self, name: str, path: str) -> tuple[str, FieldType]:
        if name == "_id":
            return ID_FIELD, FieldType.KEYWORD
        kind = self.types.get(name)
        if kind is None:
            raise UnknownField(f"{path}: unknown field {name!r}")
        return name, kind

    def _field(self, name: str, node: object, path: str, depth: int) -> FilterTree:
        field, kind = self._spec(name, path)
        if not isinstance(node, dict):
            self._visit(path, depth)
            return _equals(field, kind, node, path)
        ops = self._object(node, path, depth)
        if not _is_operators(ops):
            raise InvalidRequest(
                f'{path}: nested objects are not supported; use {{"$operator": value}}'
            )
        return self._operators(field, kind, ops, path, depth)

    def _operators(
        self, field: str, kind: FieldType, ops: dict[str, object], path: str, depth: int
    ) -> FilterTree:
        return _all(
            [
                self._operator(field, kind, op, operand, f"{path}.{op}", depth + 1)
                for op, operand in ops.items()
            ]
        )

    def _operator(
        self, field: str, kind: FieldType, op: str, node: object, path: str, depth: int
    ) -> FilterTree:
        if op == "$not":
            inner = self._object(node, path, depth)
            if not _is_operators(inner):
                raise InvalidRequest(f'{path}: expected {{"$operator": value}}')
            return _negate(self._operators(field, kind, inner, path, depth))
        if op in ("$in", "$nin"):
            clause = self._one_of(field, kind, self._list(node, path, depth), path, depth)
            return _negate(clause) if op == "$nin" else clause
        self._visit(path, depth)
        if op in ("$eq", "$ne"):
            clause = _equals(field, kind, node, path)
            return _negate(clause) if op == "$ne" else clause
        if op == "$exists":
            if not isinstance(node, bool):
                raise InvalidRequest(f"{path}: expected true or false")
            return Exists(field) if node else Not(Exists(field))
        if op in RANGE_OPS:
            return _range(field, kind, op, node, path)
        raise _bad_operator(op, path)

    def _one_of(
        self, field: str, kind: FieldType, items: list[object], path: str, depth: int
    ) -> FilterTree:
        """Any of ``items``; a ``null`` among them also admits documents without the field."""
        values: list[Scalar] = []
        missing = False
        for i, item in enumerate(items):
            where = f"{path}[{i}]"
            self._visit(where, depth + 1)
            if item is None:
                missing = True
                continue
            if isinstance(item, list | dict):
                raise InvalidRequest(f"{where}: expected a single value")
            value = _typed(item, kind, where)
            if value not in values:
                values.append(value)
        terms = Terms(field, tuple(values))
        if not missing:
            return terms
        absent = Not(Exists(field))
        return Or((absent, terms)) if values else absent


def _bad_operator(op: str, path: str) -> InvalidRequest:
    if op in UNSUPPORTED_OPS:
        return InvalidRequest(f"{path}: operator not supported")
    return InvalidRequest(f"{path}: unknown operator")


def _equals(field: str, kind: FieldType, node: object, path: str) -> FilterTree:
    if node is None:
        return Not(Exists(field))
    if isinstance(node, list):
        raise InvalidRequest(f"{path}: an array cannot be matched whole; use $in for any of")
    if isinstance(node, dict):
        raise InvalidRequest(f"{path}: expected a value, not an object")
    return Terms(field, (_typed(node, kind, path),))


def _range(field: str, kind: FieldType, op: str, node: object, path: str) -> FilterTree:
    if kind is FieldType.BOOLEAN:
        raise InvalidRequest(f"{path}: range operators need a number, date, keyword or text field")
    if node is None or isinstance(node, list | dict):
        raise InvalidRequest(f"{path}: expected a value to compare with")
    return Range(field, **{RANGE_OPS[op]: _typed(node, kind, path)})


# ---------------------------------------------------------------- typed values


def _typed(node: object, kind: FieldType, path: str) -> Scalar:
    """A JSON scalar as the field's type: number → float, boolean → bool, else str."""
    if kind is FieldType.NUMBER:
        return _number(node, path)
    if kind is FieldType.BOOLEAN:
        return _boolean(node, path)
    if kind is FieldType.DATE:
        return _date(node, path)
    if not isinstance(node, str):
        raise InvalidRequest(f"{path}: expected a string")
    return node


def _number(node: object, path: str) -> float:
    if isinstance(node, str) and _NUMBER.fullmatch(node):
        node = float(node)
    if isinstance(node, int | float) and not isinstance(node, bool):
        try:
            number = float(node)
        except OverflowError:  # an integer beyond any double
            number = math.inf
        if math.isfinite(number):
            return number
    raise InvalidRequest(f"{path}: expected a number")


def _boolean(node: object, path: str) -> bool:
    if isinstance(node, bool):
        return node
    if node in ("true", "false"):
        return node == "true"
    raise InvalidRequest(f"{path}: expected true or false")


def _date(node: object, path: str) -> str:
    """An ISO date or date-time, or epoch milliseconds (as OpenSearch's default format)."""
    text = str(node) if isinstance(node, int) and not isinstance(node, bool) else node
    if isinstance(text, str):
        if _EPOCH_MILLIS.fullmatch(text):
            return text
        if _ISO_DATE.fullmatch(text):
            try:
                datetime.fromisoformat(text)
            except ValueError:
                pass
            else:
                return text
    raise InvalidRequest(f"{path}: expected an ISO date or epoch milliseconds")
