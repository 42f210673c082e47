"""Mongo-style filters → neutral tree: tables, and a property test against Mongo itself.

The property test evaluates each random filter on each random record twice: with
``mongo_matches`` below, a brute-force Mongo evaluator that reads the raw JSON filter and
knows nothing of the parser or the tree, and with the shared tree evaluator
(``tests/reference_search.matches``) on the parsed tree. The generators and
``mongo_matches`` also drive the integration test on the real node.
"""

from __future__ import annotations

import json
import operator
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.search.model import And, Exists, FilterTree, Not, Or, Range, Terms
from gateway.search.mongo_filter import MAX_DEPTH, MAX_NODES, parse_mongo_filter
from imgsearch.engine_config import EngineConfig, FieldSpec, FieldType
from imgsearch.errors import InvalidRequest, UnknownField
from tests.reference_search import matches

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "mongo-test",
        "alias": "mongo-test",
        "fields": {
            "color": {"type": "keyword", "facet": True},
            "tags": {"type": "keyword", "facet": True},
            "price": {"type": "number", "facet": True},
            "active": {"type": "boolean", "facet": True},
            "day": {"type": "date", "facet": True},
            "title": {"type": "text"},
        },
        "vectors": {"clip": {"embedder": "clip"}},
    }
)
# Config field names cannot hold dots today; the parser still takes one a config has.
DOTTED = CONFIG.model_copy(
    update={"fields": {**CONFIG.fields, "dims.width": FieldSpec(type=FieldType.NUMBER)}}
)

RED = Terms("color", ("red",))
TAG_A = Terms("tags", ("a",))
NO_COLOR = Not(Exists("color"))

CASES: list[tuple[object, FilterTree | None, str]] = [
    (None, None, "no filter"),
    ({}, None, "the empty filter matches everything: no tree"),
    ({"color": "red"}, RED, "implicit equality"),
    ({"color": {"$eq": "red"}}, RED, "$eq"),
    ({"tags": {"$in": ["a", "b", "a"]}}, Terms("tags", ("a", "b")), "$in, duplicates dropped"),
    ({"tags": {"$in": []}}, Terms("tags", ()), "$in [] matches nothing, as in Mongo"),
    ({"tags": {"$ne": "a"}}, Not(TAG_A), "$ne: no value is a, missing field included"),
    ({"tags": {"$nin": ["a", "b"]}}, Not(Terms("tags", ("a", "b"))), "$nin"),
    ({"price": {"$gt": 1}}, Range("price", gt=1.0), "one range operator"),
    (
        {"price": {"$gte": 10, "$lt": 20}},
        And((Range("price", gte=10.0), Range("price", lt=20.0))),
        "each operator alone: in Mongo two values of an array may meet them",
    ),
    (
        {"color": "red", "price": {"$lte": 5}},
        And((RED, Range("price", lte=5.0))),
        "several fields: all hold, one flat And",
    ),
    ({"$and": [{"color": "red"}, {"tags": "a"}]}, And((RED, TAG_A)), "$and"),
    ({"$or": [{"color": "red"}, {"tags": "a"}]}, Or((RED, TAG_A)), "$or"),
    ({"$or": [{"color": "red"}]}, RED, "a one-child $or is its child"),
    ({"$nor": [{"color": "red"}, {"tags": "a"}]}, Not(Or((RED, TAG_A))), "$nor"),
    ({"$nor": [{"color": "red"}]}, Not(RED), "a one-child $nor"),
    (
        {"$and": [{"$and": [{"color": "red"}]}, {"tags": "a"}], "price": 1},
        And((RED, TAG_A, Terms("price", (1.0,)))),
        "nested $and spliced into one And",
    ),
    ({"price": {"$not": {"$gt": 5}}}, Not(Range("price", gt=5.0)), "$not"),
    (
        {"price": {"$not": {"$gte": 1, "$lte": 2}}},
        Not(And((Range("price", gte=1.0), Range("price", lte=2.0)))),
        "$not of several operators negates them together",
    ),
    ({"tags": {"$not": {"$ne": "a"}}}, TAG_A, "no double negation"),
    ({"price": {"$exists": True}}, Exists("price"), "$exists"),
    ({"price": {"$exists": False}}, Not(Exists("price")), "$exists false"),
    ({"color": None}, NO_COLOR, "null: no value"),
    ({"color": {"$eq": None}}, NO_COLOR, "$eq null"),
    ({"color": {"$ne": None}}, Exists("color"), "$ne null: has a value"),
    ({"color": {"$in": [None, "red"]}}, Or((NO_COLOR, RED)), "null in $in admits missing"),
    ({"color": {"$in": [None]}}, NO_COLOR, "only null in $in"),
    ({"color": {"$nin": [None, "red"]}}, Not(Or((NO_COLOR, RED))), "null in $nin"),
    ({"_id": "42"}, Terms("id", ("42",)), "_id is the stored id field"),
    ({"_id": {"$gt": "10"}}, Range("id", gt="10"), "_id is a keyword: ranges by code point"),
    ({"$gte": {"price": 200}}, Range("price", gte=200.0), "Ximilar's operator-first form"),
    (
        {"$in": {"color": ["red"], "tags": ["a"]}},
        And((RED, TAG_A)),
        "operator-first over two fields",
    ),
    ({"$exists": {"_id": True}}, Exists("id"), "operator-first $exists"),
    ({"price": "10"}, Terms("price", (10.0,)), "a numeric string on a number field"),
    ({"price": " -1.5e2 "}, Terms("price", (-150.0,)), "number text as JSON writes it"),
    ({"price": 10}, Terms("price", (10.0,)), "numbers are floats"),
    ({"active": "true"}, Terms("active", (True,)), "a boolean given as a string"),
    ({"active": {"$ne": "false"}}, Not(Terms("active", (False,))), "false as a string"),
    ({"active": False}, Terms("active", (False,)), "a JSON boolean"),
    ({"day": "2024-01-05"}, Terms("day", ("2024-01-05",)), "ISO date"),
    (
        {"day": {"$lt": "2024-01-05T10:30:00.123Z"}},
        Range("day", lt="2024-01-05T10:30:00.123Z"),
        "ISO date-time",
    ),
    ({"day": 1704412800000}, Terms("day", ("1704412800000",)), "epoch milliseconds"),
    ({"title": {"$gte": "m"}}, Range("title", gte="m"), "text range (on its keyword)"),
    ({"color": {"$lt": "b"}}, Range("color", lt="b"), "keyword range"),
]


@pytest.mark.parametrize(("raw", "expected", "why"), CASES, ids=[c[2] for c in CASES])
def test_parses_into_the_neutral_tree(raw: object, expected: FilterTree | None, why: str) -> None:
    assert parse_mongo_filter(raw, CONFIG) == expected, why


def test_a_dotted_name_is_a_field_the_config_has() -> None:
    assert parse_mongo_filter({"dims.width": 3}, DOTTED) == Terms("dims.width", (3.0,))
    with pytest.raises(UnknownField, match=r"'dims\.width'"):
        parse_mongo_filter({"dims.width": 3}, CONFIG)


def nested(levels: int) -> dict[str, Any]:
    """A valid filter whose JSON nests exactly ``levels`` deep (a value is a level)."""
    node: dict[str, Any] = {"price": {"$gt": 1}} if levels % 2 else {"color": "red"}
    depth = 3 if levels % 2 else 2
    while depth < levels:
        node = {"$or": [node]}
        depth += 2
    return node


def json_depth(node: object) -> int:
    if isinstance(node, dict):
        return 1 + max((json_depth(v) for v in node.values()), default=0)
    if isinstance(node, list):
        return 1 + max((json_depth(v) for v in node), default=0)
    return 1


@pytest.mark.parametrize("levels", [MAX_DEPTH - 1, MAX_DEPTH])
def test_nesting_up_to_the_limit_is_fine(levels: int) -> None:
    raw = nested(levels)
    assert json_depth(raw) == levels
    assert parse_mongo_filter(raw, CONFIG) is not None


def test_values_up_to_the_limit_are_fine() -> None:
    # the filter object, the field's object and the list are three values
    raw = {"color": {"$in": [str(i) for i in range(MAX_NODES - 3)]}}
    tree = parse_mongo_filter(raw, CONFIG)
    assert isinstance(tree, Terms) and len(tree.values) == MAX_NODES - 3


ERRORS: list[tuple[object, type[Exception], str]] = [
    ({"price": {"$foo": 1}}, InvalidRequest, "filter.price.$foo: unknown operator"),
    ({"color": {"$regex": "^r"}}, InvalidRequest, "filter.color.$regex: operator not supported"),
    ({"tags": {"$elemMatch": {"$eq": "a"}}}, InvalidRequest, "filter.tags.$elemMatch: operator"),
    ({"tags": {"$all": ["a"]}}, InvalidRequest, "filter.tags.$all: operator not supported"),
    ({"$where": "this.a"}, InvalidRequest, "filter.$where: operator not supported"),
    ({"$foo": [{"color": "red"}]}, InvalidRequest, "filter.$foo: unknown operator"),
    ({"$not": {"color": "red"}}, InvalidRequest, "filter.$not: $not applies to a field"),
    ({"tags": {"$in": "a"}}, InvalidRequest, "filter.tags.$in: expected an array"),
    ({"tags": {"$nin": {"a": 1}}}, InvalidRequest, "filter.tags.$nin: expected an array"),
    ({"$and": {"color": "red"}}, InvalidRequest, "filter.$and: expected an array"),
    ({"$and": []}, InvalidRequest, "filter.$and: expected a non-empty array"),
    ({"$nor": []}, InvalidRequest, "filter.$nor: expected a non-empty array"),
    ({"$or": [{}]}, InvalidRequest, "filter.$or[0]: empty object"),
    ({"$or": [{"color": "red"}, "blue"]}, InvalidRequest, "filter.$or[1]: expected an object"),
    ({"color": {"shade": "dark"}}, InvalidRequest, "filter.color: nested objects"),
    ({"color": {"$eq": "red", "shade": "x"}}, InvalidRequest, "filter.color: nested objects"),
    ({"color": {}}, InvalidRequest, "filter.color: empty object"),
    ({"tags": ["a", "b"]}, InvalidRequest, "filter.tags: an array cannot be matched whole"),
    ({"tags": {"$eq": ["a"]}}, InvalidRequest, "filter.tags.$eq: an array cannot be matched"),
    ({"tags": {"$ne": {"x": 1}}}, InvalidRequest, "filter.tags.$ne: expected a value, not an"),
    ({"tags": {"$in": ["a", ["b"]]}}, InvalidRequest, "filter.tags.$in[1]: expected a single"),
    ({"price": {"$gt": None}}, InvalidRequest, "filter.price.$gt: expected a value to compare"),
    ({"price": {"$lte": [1]}}, InvalidRequest, "filter.price.$lte: expected a value to compare"),
    ({"active": {"$lt": True}}, InvalidRequest, "filter.active.$lt: range operators need"),
    ({"price": "ten"}, InvalidRequest, "filter.price: expected a number"),
    ({"price": True}, InvalidRequest, "filter.price: expected a number"),
    ({"price": 10**400}, InvalidRequest, "filter.price: expected a number"),
    ({"price": {"$in": [1, "inf"]}}, InvalidRequest, "filter.price.$in[1]: expected a number"),
    ({"price": "nan"}, InvalidRequest, "filter.price: expected a number"),
    ({"active": 1}, InvalidRequest, "filter.active: expected true or false"),
    ({"active": "yes"}, InvalidRequest, "filter.active: expected true or false"),
    ({"day": "2024-02-30"}, InvalidRequest, "filter.day: expected an ISO date"),
    ({"day": "yesterday"}, InvalidRequest, "filter.day: expected an ISO date"),
    ({"day": 1.5}, InvalidRequest, "filter.day: expected an ISO date"),
    ({"color": 5}, InvalidRequest, "filter.color: expected a string"),
    ({"_id": 42}, InvalidRequest, "filter._id: expected a string"),
    ({"price": {"$exists": 1}}, InvalidRequest, "filter.price.$exists: expected true or false"),
    ({"price": {"$not": 5}}, InvalidRequest, "filter.price.$not: expected an object"),
    ({"price": {"$not": {"x": 1}}}, InvalidRequest, 'filter.price.$not: expected {"$operator"'),
    ({"$gte": 5}, InvalidRequest, "filter.$gte: expected an object"),
    ([{"color": "red"}], InvalidRequest, "filter: expected an object"),
    ("color=red", InvalidRequest, "filter: expected an object"),
    ({1: "red"}, InvalidRequest, "filter: keys must be strings"),
    ({"nope": 1}, UnknownField, "filter.nope: unknown field 'nope'"),
    ({"$lt": {"nope": 1}}, UnknownField, "filter.$lt.nope: unknown field 'nope'"),
    ({"$or": [{"color": "red"}, {"nope": 1}]}, UnknownField, "filter.$or[1].nope: unknown"),
    ({"id": "1"}, UnknownField, "unknown field 'id'"),
    (nested(MAX_DEPTH + 1), InvalidRequest, f"nested deeper than {MAX_DEPTH} levels"),
    (nested(10_001), InvalidRequest, f"nested deeper than {MAX_DEPTH} levels"),
    (
        {"color": {"$in": [str(i) for i in range(MAX_NODES - 2)]}},
        InvalidRequest,
        f"filter: too large (more than {MAX_NODES} values)",
    ),
    (
        {"$or": [{"color": str(i)} for i in range(10_000)]},
        InvalidRequest,
        f"filter: too large (more than {MAX_NODES} values)",
    ),
]


@pytest.mark.parametrize(("raw", "error", "fragment"), ERRORS, ids=[e[2] for e in ERRORS])
def test_rejects_what_it_cannot_express(raw: object, error: type[Exception], fragment: str) -> None:
    with pytest.raises(error) as info:
        parse_mongo_filter(raw, CONFIG)
    assert type(info.value) is error
    assert fragment in str(info.value)


def test_the_parser_is_pure() -> None:
    code = (
        "import sys, gateway.search.mongo_filter; print(' '.join(m for m in "
        "('opensearchpy', 'torch', 'httpx', 'anyio', 'fastapi') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == []


# ---------------------------------------------------------------- Mongo, by brute force


def mongo_matches(record: dict[str, Any], query: dict[str, Any]) -> bool:
    """Mongo's answer for a stored record (no nulls, no empty arrays) and a raw filter."""
    return all(_top_level(record, key, value) for key, value in query.items())


def _top_level(record: dict[str, Any], key: str, value: Any) -> bool:
    if key == "$and":
        return all(mongo_matches(record, q) for q in value)
    if key == "$or":
        return any(mongo_matches(record, q) for q in value)
    if key == "$nor":
        return not any(mongo_matches(record, q) for q in value)
    if key.startswith("$"):  # Ximilar's {"$op": {field: operand}}
        return all(_on_field(record, name, {key: operand}) for name, operand in value.items())
    return _on_field(record, key, value)


def _on_field(record: dict[str, Any], name: str, condition: Any) -> bool:
    stored = record.get("id" if name == "_id" else name)
    if isinstance(condition, dict):
        return all(_op(stored, op, operand) for op, operand in condition.items())
    return _op(stored, "$eq", condition)


def _kind(value: Any) -> str:
    """Mongo compares only values of one type: booleans, numbers and strings apart."""
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "string"


COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


def _op(stored: Any, op: str, operand: Any) -> bool:
    elements = [] if stored is None else stored if isinstance(stored, list) else [stored]
    if op == "$eq":
        if operand is None:
            return stored is None
        return any(_kind(e) == _kind(operand) and e == operand for e in elements)
    if op == "$ne":
        return not _op(stored, "$eq", operand)
    if op == "$in":
        return any(_op(stored, "$eq", value) for value in operand)
    if op == "$nin":
        return not _op(stored, "$in", operand)
    if op == "$exists":
        return (stored is not None) is operand
    if op == "$not":
        return not all(_op(stored, inner, value) for inner, value in operand.items())
    compare = COMPARE[op]
    return any(_kind(e) == _kind(operand) and compare(e, operand) for e in elements)


# Mongo's own documented behaviour, to trust the evaluator: (filter, record, matches, why).
SEMANTICS: list[tuple[dict[str, Any], dict[str, Any], bool, str]] = [
    ({"price": {"$gt": 10, "$lt": 20}}, {"price": [5, 25]}, True, "two values meet two ops"),
    ({"price": {"$gt": 10, "$lt": 20}}, {"price": [25, 30]}, False, "no value meets $lt"),
    ({"price": {"$gte": 10, "$lt": 20}}, {"price": 15}, True, "one value meets both"),
    ({"tags": "b"}, {"tags": ["a", "b"]}, True, "equality: any element"),
    ({"tags": {"$ne": "b"}}, {"tags": ["a", "b"]}, False, "$ne: no element may equal"),
    ({"tags": {"$ne": "b"}}, {}, True, "$ne matches a missing field"),
    ({"tags": {"$nin": ["b"]}}, {}, True, "$nin matches a missing field"),
    ({"tags": {"$in": []}}, {"tags": "a"}, False, "$in [] matches nothing"),
    ({"tags": None}, {}, True, "null matches a missing field"),
    ({"tags": None}, {"tags": "a"}, False, "null does not match a value"),
    ({"price": {"$not": {"$gt": 5}}}, {}, True, "$not matches a missing field"),
    ({"price": {"$not": {"$gt": 5}}}, {"price": [1, 9]}, False, "$not: no element > 5"),
    ({"$nor": [{"tags": "a"}]}, {"tags": ["a", "b"]}, False, "$nor"),
    ({"price": {"$exists": False}}, {}, True, "$exists false"),
    ({"$lte": {"price": 3}}, {"price": [9, 2]}, True, "operator-first form"),
]


@pytest.mark.parametrize(
    ("query", "record", "expected", "why"), SEMANTICS, ids=[s[3] for s in SEMANTICS]
)
def test_mongo_semantics_on_multi_valued_fields(
    query: dict[str, Any], record: dict[str, Any], expected: bool, why: str
) -> None:
    record = {"id": "1", **record}
    assert mongo_matches(record, query) is expected, why
    tree = parse_mongo_filter(query, CONFIG)
    assert tree is not None
    assert matches(record, tree, CONFIG) is expected, why


# ---------------------------------------------------------------- random filters and records

POOLS: dict[str, tuple[Any, ...]] = {
    "color": ("red", "blue", "green"),
    "tags": ("a", "b", "c", "d"),
    "price": (-1, 0, 1, 2.5, 4),
    "active": (True, False),
    "day": ("2024-01-01", "2024-01-02", "2024-01-03"),  # one format: text order is time order
    "title": ("Red shoe", "blue hat", "red shoe"),
    "_id": ("0", "1", "10", "5", "150"),
}
MULTI_VALUED = ("tags", "price")
FIELD_NAMES = tuple(POOLS)
RANGE_NAMES = tuple(name for name in FIELD_NAMES if name != "active")
EQUALITY_OPS = ("$eq", "$ne", "$in", "$nin", "$exists")


def random_record(rng: random.Random, number: int) -> dict[str, Any]:
    """A stored record: each field missing, one value, or (multi-valued ones) 1-3 values."""
    record: dict[str, Any] = {"id": str(number)}
    for name, pool in POOLS.items():
        if name == "_id" or rng.random() < 0.25:
            continue
        if name in MULTI_VALUED and rng.random() < 0.5:
            record[name] = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
        else:
            record[name] = rng.choice(pool)
    return record


def _value(rng: random.Random, name: str, nullable: bool) -> Any:
    return None if nullable and rng.random() < 0.1 else rng.choice(POOLS[name])


def _operand(rng: random.Random, name: str, op: str) -> Any:
    if op in ("$in", "$nin"):
        return [_value(rng, name, True) for _ in range(rng.choice((0, 1, 2, 2, 3)))]
    if op == "$exists":
        return rng.random() < 0.5
    return _value(rng, name, op in ("$eq", "$ne"))


def _operators(rng: random.Random, name: str, nots: int) -> dict[str, Any]:
    if name in RANGE_NAMES and rng.random() < 0.3:
        # between two bounds: on an array, Mongo lets two values meet them
        low, high = sorted(rng.choice(POOLS[name]) for _ in range(2))
        condition = {rng.choice(("$gt", "$gte")): low, rng.choice(("$lt", "$lte")): high}
    else:
        ops = EQUALITY_OPS + (tuple(COMPARE) if name in RANGE_NAMES else ())
        condition = {op: _operand(rng, name, op) for op in rng.sample(ops, rng.randint(1, 2))}
    if nots and rng.random() < 0.2:
        condition["$not"] = _operators(rng, name, nots - 1)
    return condition


def random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A valid Mongo filter over ``CONFIG``: fields, $and/$or/$nor, Ximilar's $op-first form."""
    query: dict[str, Any] = {}
    for _ in range(rng.randint(1, 2)):
        roll = rng.random()
        if roll < 0.25 and depth < 3:
            children = [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]
            query[rng.choice(("$and", "$or", "$nor"))] = children
        elif roll < 0.35:
            name = rng.choice(RANGE_NAMES)
            op = rng.choice(EQUALITY_OPS + tuple(COMPARE))
            query[op] = {name: _operand(rng, name, op)}
        else:
            name = rng.choice(FIELD_NAMES)
            implicit = rng.random() < 0.3
            query[name] = _value(rng, name, True) if implicit else _operators(rng, name, 1)
    return query


@settings(max_examples=200, deadline=None)
@given(st.randoms(use_true_random=False))
def test_parsed_filters_select_what_mongo_selects(rng: random.Random) -> None:
    query = random_filter(rng)
    records = [random_record(rng, i) for i in range(20)]
    tree = parse_mongo_filter(query, CONFIG)
    assert tree is not None
    for record in records:
        want = mongo_matches(record, query)
        assert matches(record, tree, CONFIG) is want, json.dumps([query, record])
