"""Solr ``fq`` → neutral filter tree: tables of (fqs, expected, why), errors, and a round trip.

The random trees, their fq renderings and the random records here are shared with
``tests/integration/test_solr_filter_node.py``, which checks the same trees on the real node.
"""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.search.model import ID_FIELD, And, Exists, FilterTree, Not, Or, Range, Scalar, Terms
from gateway.search.solr_filter import parse_filter_queries
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest, UnknownField
from tests.reference_search import matches

ROOT = Path(__file__).resolve().parents[2]

CONFIG = EngineConfig.model_validate(
    {
        "hashid": "solr-fq",
        "alias": "solr-fq",
        "fields": {
            "brand": {"type": "keyword", "facet": True},
            "tags": {"type": "keyword", "facet": True},  # multi-valued in the records
            "size": {"type": "keyword"},
            "price": {"type": "number", "facet": True},
            "in_stock": {"type": "boolean"},
            "released": {"type": "date"},
            "title": {"type": "text"},
            "url": {"type": "keyword"},
        },
        "vectors": {"clip": {"embedder": "clip"}},
    }
)


def parse(fqs: list[str]) -> FilterTree | None:
    return parse_filter_queries(fqs, CONFIG)


def T(field: str, *values: Scalar) -> Terms:  # noqa: N802 (reads like the tree it builds)
    return Terms(field, values)


PARSE_CASES: list[tuple[list[str], FilterTree | None, str]] = [
    (["brand:acme"], T("brand", "acme"), "field:value (reference example)"),
    (['title:"living room"'], T("title", "living room"), "a quoted phrase is one exact value"),
    ([r"brand:living\ room"], T("brand", "living room"), "escaped whitespace"),
    (
        [r"url:https\://shop.example/p/1"],
        T("url", "https://shop.example/p/1"),
        "escaped colons; '/' inside a term is a term character in Solr",
    ),
    ([r'brand:"say \"hi\""'], T("brand", 'say "hi"'), "escaped quotes inside a phrase"),
    ([r"brand:\u0041cme"], T("brand", "Acme"), "\\uXXXX escapes"),
    ([r"brand:\-acme"], T("brand", "-acme"), "an escaped leading '-' is part of the value"),
    (["brand:a-b+c!d/e"], T("brand", "a-b+c!d/e"), "- + ! / continue a term"),
    ([r"brand:\AND"], T("brand", "AND"), "an escaped operator word is a value"),
    (["brand:ANDROID"], T("brand", "ANDROID"), "only the whole word AND is an operator"),
    (['brand:""'], T("brand", ""), "an empty phrase matches the empty value"),
    (["price:[100 TO *]"], Range("price", gte=100.0), "open upper bound (reference example)"),
    (["price:{1 TO 5}"], Range("price", gt=1.0, lt=5.0), "exclusive bounds"),
    (["price:[1 TO 5}"], Range("price", gte=1.0, lt=5.0), "mixed bounds"),
    (["price:{* TO 5]"], Range("price", lte=5.0), "open lower bound"),
    (["price:[ -5.5  TO 1e3 ]"], Range("price", gte=-5.5, lte=1000.0), "signs, exponents, spaces"),
    (
        ["released:[2024-01-01T00:00:00Z TO 2024-02-01T00:00:00.5Z}"],
        Range("released", gte="2024-01-01T00:00:00.000Z", lt="2024-02-01T00:00:00.500Z"),
        "dates in a range need no escaping; passed on with milliseconds",
    ),
    (["brand:[a TO m]"], Range("brand", gte="a", lte="m"), "keyword ranges compare strings"),
    (['title:["a b" TO "c d"]'], Range("title", gte="a b", lte="c d"), "quoted range bounds"),
    ([r"brand:[a\:b TO c]"], Range("brand", gte="a:b", lte="c"), "escapes in range bounds"),
    (['brand:["*" TO z]'], Range("brand", gte="*", lte="z"), "a quoted * is a value, not open"),
    (["brand:*"], Exists("brand"), "field:* means the field has a value"),
    (["price:[* TO *]"], Exists("price"), "[* TO *] means the field has a value"),
    (["in_stock:{* TO *}"], Exists("in_stock"), "even on a boolean field"),
    (["*:*"], Exists(ID_FIELD), "every document (each has an id)"),
    ([r"id:p\-1"], T(ID_FIELD, "p-1"), "id is the stored item id"),
    (["in_stock:true"], T("in_stock", True), "booleans"),
    (["in_stock:FALSE"], T("in_stock", False), "booleans in any case"),
    (["price:5"], T("price", 5.0), "numbers are floats"),
    (
        [r"released:2024-01-31T10\:00\:00Z"],
        T("released", "2024-01-31T10:00:00.000Z"),
        "a date value with escaped colons",
    ),
    (
        ['released:"2024-01-31T10:00:00.123456Z"'],
        T("released", "2024-01-31T10:00:00.123Z"),
        "a quoted date; Solr keeps milliseconds",
    ),
    (["brand:acme AND size:M"], And((T("brand", "acme"), T("size", "M"))), "AND"),
    (["brand:acme && size:M"], And((T("brand", "acme"), T("size", "M"))), "&&"),
    (["brand:acme OR size:M"], Or((T("brand", "acme"), T("size", "M"))), "OR"),
    (["brand:acme || size:M"], Or((T("brand", "acme"), T("size", "M"))), "||"),
    (["brand:acme size:M"], Or((T("brand", "acme"), T("size", "M"))), "default operator is OR"),
    (["+brand:acme +size:M"], And((T("brand", "acme"), T("size", "M"))), "required clauses"),
    (["+brand:acme size:M"], T("brand", "acme"), "optional clauses beside required ones"),
    (
        ["brand:a OR brand:b AND size:M"],
        And((T("brand", "b"), T("size", "M"))),
        "Lucene: AND makes its left clause required, the OR one stays optional",
    ),
    (
        ["brand:a AND brand:b OR size:M"],
        And((T("brand", "a"), T("brand", "b"))),
        "Lucene: a later OR does not undo AND",
    ),
    (["brand:acme -size:M"], And((T("brand", "acme"), Not(T("size", "M")))), "prefix -"),
    (["brand:acme NOT size:M"], And((T("brand", "acme"), Not(T("size", "M")))), "NOT"),
    (["brand:acme AND NOT size:M"], And((T("brand", "acme"), Not(T("size", "M")))), "AND NOT"),
    (["brand:acme && !size:M"], And((T("brand", "acme"), Not(T("size", "M")))), "! is NOT"),
    (
        ["brand:acme OR NOT size:M"],
        And((T("brand", "acme"), Not(T("size", "M")))),
        "Lucene: OR NOT still prohibits",
    ),
    (["-brand:acme"], Not(T("brand", "acme")), "a purely negative fq: all but those"),
    (["NOT brand:acme"], Not(T("brand", "acme")), "the same with NOT"),
    (["!brand:acme"], Not(T("brand", "acme")), "the same with !"),
    (
        ["-brand:a -brand:b"],
        And((Not(T("brand", "a")), Not(T("brand", "b")))),
        "several prohibited clauses",
    ),
    (["*:* -brand:a"], And((Exists(ID_FIELD), Not(T("brand", "a")))), "the classic *:* -x"),
    (["brand:(a OR b)"], T("brand", "a", "b"), "field grouping"),
    (["brand:(a b)"], T("brand", "a", "b"), "field grouping, default OR"),
    (["brand:(a || b || a)"], T("brand", "a", "b"), "repeated values collapse"),
    (["brand:(a AND b)"], And((T("brand", "a"), T("brand", "b"))), "AND inside a group"),
    (
        ["brand:(a price:5)"],
        Or((T("brand", "a"), T("price", 5.0))),
        "an explicit field inside a group",
    ),
    (
        ["(brand:a OR size:M) AND price:[1 TO *]"],
        And((Or((T("brand", "a"), T("size", "M"))), Range("price", gte=1.0))),
        "parentheses",
    ),
    (
        ["brand:a OR (-size:M)"],
        Or((T("brand", "a"), Not(T("size", "M")))),
        "a nested purely negative group means all but those (recent Solr)",
    ),
    (["-(-brand:a)"], T("brand", "a"), "double negation"),
    (["((brand:a))"], T("brand", "a"), "redundant parentheses"),
    (
        ["brand:acme", "price:[100 TO *]"],
        And((T("brand", "acme"), Range("price", gte=100.0))),
        "several fq are ANDed",
    ),
    (["", "  ", "brand:acme"], T("brand", "acme"), "blank fq are ignored"),
    ([], None, "no fq: no filter"),
    (["", " \t"], None, "only blank fq: no filter"),
    (
        ["brand:a\tAND\nsize:M\u3000"],
        And((T("brand", "a"), T("size", "M"))),
        "Lucene's whitespace",
    ),
    (["brand: acme"], T("brand", "acme"), "space after the colon"),
]


@pytest.mark.parametrize(("fqs", "expected", "why"), PARSE_CASES, ids=[c[2] for c in PARSE_CASES])
def test_parses(fqs: list[str], expected: FilterTree | None, why: str) -> None:
    assert parse(fqs) == expected, why


ERROR_CASES: list[tuple[list[str], type[InvalidRequest], str]] = [
    (["brand:ac*me"], InvalidRequest, "fq 1, column 7: wildcards are not supported"),
    (["brand:acme*"], InvalidRequest, "column 7: wildcards are not supported"),
    (["brand:*acme"], InvalidRequest, "column 7: wildcards are not supported"),
    (["brand:?cme"], InvalidRequest, "column 7: wildcards are not supported"),
    (["brand:a OR brand:v?l"], InvalidRequest, "column 18: wildcards are not supported"),
    (["brand:acme~"], InvalidRequest, "column 11: fuzzy and proximity searches (~)"),
    (["brand:acme~2"], InvalidRequest, "column 11: fuzzy and proximity searches (~)"),
    (['title:"a b"~3'], InvalidRequest, "column 12: fuzzy and proximity searches (~)"),
    (["brand:acme^2"], InvalidRequest, "column 11: boosts (^) are not supported"),
    (["(brand:a)^2"], InvalidRequest, "column 10: boosts (^) are not supported"),
    (["{!term f=brand}acme"], InvalidRequest, "column 1: local parameters {!...}"),
    (["brand:a OR {!lucene}b"], InvalidRequest, "column 12: local parameters {!...}"),
    (['_val_:"sum(1,2)"'], InvalidRequest, "column 1: function queries (_val_)"),
    (['_query_:"{!dismax}a"'], InvalidRequest, "column 1: nested queries (_query_)"),
    (["acme"], InvalidRequest, "column 1: 'acme' has no field: write field:value"),
    (['"acme"'], InvalidRequest, "column 1: '\"acme\"' has no field"),
    (["[a TO b]"], InvalidRequest, "column 1: '[a TO b]' has no field"),
    (["brand:a living"], InvalidRequest, "column 9: 'living' has no field"),
    (["brand:a and brand:b"], InvalidRequest, "column 9: 'and' has no field"),
    (["brand:a and brand:b"], InvalidRequest, "(operators are upper case)"),
    (["brand:/ac.e/"], InvalidRequest, "column 7: regular expressions (/.../)"),
    (["brand:a /* note */"], InvalidRequest, "column 9: comments are not supported"),
    (["(brand:a"], InvalidRequest, "column 1: unbalanced parentheses: this '(' is never closed"),
    (["brand:(a OR b"], InvalidRequest, "column 7: unbalanced parentheses"),
    (["brand:a)"], InvalidRequest, "column 8: unbalanced parentheses: this ')' closes no '('"),
    (["()"], InvalidRequest, "column 2: expected a clause, found ')'"),
    (["price:[1 TO 5"], InvalidRequest, "column 7: unbalanced brackets: this range is never"),
    (["price:1]"], InvalidRequest, "column 8: unbalanced brackets: this ']' closes no range"),
    (["price:1}"], InvalidRequest, "column 8: unbalanced brackets: this '}' closes no range"),
    (["price:[1 5]"], InvalidRequest, "column 10: expected TO between the bounds"),
    (["price:[1 TO 5 6]"], InvalidRequest, "column 15: expected ']' or '}' to close the range"),
    (["price:[1 TO]"], InvalidRequest, "column 12: a range needs two bounds"),
    (["price:[1\tTO\t5]"], InvalidRequest, "a range needs two bounds"),  # Solr: tab is goop
    ([r"brand:[a\ b TO c]"], InvalidRequest, "column 9: a range bound cannot end in a back"),
    (['price:["" TO 5]'], InvalidRequest, "column 8: an empty quoted range bound"),
    (['brand:"acme'], InvalidRequest, "column 7: unbalanced quotes"),
    (["nope:x"], UnknownField, "fq 1, column 1: unknown field 'nope'"),
    (["brand:a OR nope:[1 TO 2]"], UnknownField, "column 12: unknown field 'nope'"),
    (["brand:(a nope:b)"], UnknownField, "column 10: unknown field 'nope'"),
    (["price:abc"], InvalidRequest, "column 7: 'abc' is not a number (price is a number field)"),
    (["price:1_000"], InvalidRequest, "'1_000' is not a number"),
    (["price:1e999"], InvalidRequest, "'1e999' is not a number"),
    (["price:nan"], InvalidRequest, "'nan' is not a number"),
    (["price:[1 TO x]"], InvalidRequest, "column 13: 'x' is not a number"),
    (["price:-3"], InvalidRequest, "column 7: expected a value after price:, found '-'"),
    (["in_stock:yes"], InvalidRequest, "column 10: 'yes' is not true or false"),
    (["in_stock:[false TO true]"], InvalidRequest, "column 10: in_stock is a boolean field"),
    (["released:NOW"], InvalidRequest, "column 10: 'NOW' is not a date"),
    (["released:[NOW-1DAY TO *]"], InvalidRequest, "column 11: 'NOW-1DAY' is not a date"),
    (['released:"2024-01-31"'], InvalidRequest, "'2024-01-31' is not a date"),
    (['released:"2024-02-30T00:00:00Z"'], InvalidRequest, "is not a date"),
    (["released:2024-01-01T00:00:00Z"], InvalidRequest, "column 23: a ':' in a value must be"),
    (["brand:a AND"], InvalidRequest, "column 12: expected a clause, found the end"),
    (["AND brand:a"], InvalidRequest, "column 1: expected a clause, found 'AND'"),
    (["brand:"], InvalidRequest, "column 7: expected a value after brand:, found the end"),
    (["brand:a - brand:b"], InvalidRequest, "column 9: '-' must be followed directly by a clause"),
    (["--brand:a"], InvalidRequest, "column 2: expected a clause, found '-'"),
    (["NOT NOT brand:a"], InvalidRequest, "column 5: expected a clause, found 'NOT'"),
    (["*:acme"], InvalidRequest, "column 3: searching all fields (*:value)"),
    (["brand:a\\"], InvalidRequest, "column 8: a backslash at the end escapes nothing"),
    ([r"brand:\u00G1"], InvalidRequest, "column 7: \\u must be followed by 4 hex digits"),
    (["brand:a", "brand:b*"], InvalidRequest, "fq 2, column 7: wildcards"),
]


@pytest.mark.parametrize(
    ("fqs", "error", "fragment"), ERROR_CASES, ids=[c[0][-1] for c in ERROR_CASES]
)
def test_refuses(fqs: list[str], error: type[InvalidRequest], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse(fqs)
    assert type(info.value) is error
    assert fragment in info.value.message


def test_limits_on_count_length_depth_and_clauses() -> None:
    assert parse(["brand:a"] * 20) == T("brand", "a")
    with pytest.raises(InvalidRequest, match="at most 20 fq parameters"):
        parse(["brand:a"] * 21)
    fq = "brand:" + "a" * 3994
    assert len(fq) == 4000
    assert parse([fq]) == T("brand", "a" * 3994)
    with pytest.raises(InvalidRequest, match="fq 1: longer than 4000 characters"):
        parse([fq + "a"])
    assert parse(["(" * 32 + "brand:a" + ")" * 32]) == T("brand", "a")
    with pytest.raises(InvalidRequest, match="column 33: nesting deeper than 32 levels"):
        parse(["(" * 33 + "brand:a" + ")" * 33])
    with pytest.raises(InvalidRequest, match="nesting deeper than 32 levels"):
        parse(["-(" * 1333 + "brand:a"])  # refused, never a RecursionError
    with pytest.raises(InvalidRequest, match="column 39: nesting deeper than 32 levels"):
        parse(["brand:(" + "(" * 32 + "a" + ")" * 33])
    many = " ".join(f"price:{i}" for i in range(100))
    assert parse([many] * 10) is not None
    with pytest.raises(InvalidRequest, match="fq 11, column 7: more than 1000 clauses"):
        parse([many] * 11)


def test_the_module_is_pure() -> None:
    code = (
        "import sys, gateway.search.solr_filter; "
        "print(' '.join(m for m in ('opensearchpy', 'torch', 'httpx', 'anyio', 'fastapi') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert loaded == []


# ---------------------------------------------------------------- random trees and records

BRANDS = [
    "acme", "Acme", "living room", "a:b", "x-y", "AND", "OR", "NOT", "TO", "*", "wild*card",
    'say "hi"', "back\\slash", "(paren)", "[br]", "{cb}", "", "Ünïcode", "tab\tbed",
    "ideo\u3000space", "!bang", "-minus", "+plus", "a/b", "&&", "||", "q?", "t~", "c^2",
]  # fmt: skip
TAGS = ["red", "green", "blue", "x:y", "AND"]
SIZES = ["S", "M", "L"]
PRICES = [-5.5, 0.0, 1.0, 2.25, 10.0, 99.99, 100.0, 1e6]
DATES = [
    "2023-12-31T23:59:59.999Z",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00.500Z",
    "2024-06-15T12:30:00Z",
]
TITLES = ["Red Shirt", "red shirt", "Blue: Jeans", "AND", ""]
POOLS: dict[str, list[Any]] = {
    "brand": BRANDS,
    "tags": TAGS,
    "size": SIZES,
    "price": PRICES,
    "in_stock": [True, False],
    "released": DATES,
    "title": TITLES,
}
N_IDS = 200


def record_id(i: int) -> str:
    return f"x:{i}" if i % 7 == 0 else f"p-{i}"


def random_record(rng: random.Random, i: int) -> dict[str, Any]:
    """A document: each field missing, null, empty, one value or (often) several."""
    doc: dict[str, Any] = {"id": record_id(i)}
    for name, pool in POOLS.items():
        shape = rng.random()
        if shape < 0.15:
            continue
        if shape < 0.2:
            doc[name] = rng.choice([None, []])
        elif shape < 0.45 or name == "tags":
            doc[name] = rng.sample(pool, rng.randint(1, min(3, len(pool))))
        else:
            doc[name] = rng.choice(pool)
    return doc


IDS = [record_id(i) for i in range(N_IDS)]


def _range(name: str, lower: str | None, upper: str | None, low: Scalar, high: Scalar) -> Range:
    return Range(name, **{op: value for op, value in ((lower, low), (upper, high)) if op})


def _leaves(name: str) -> st.SearchStrategy[FilterTree]:
    pool = POOLS.get(name, IDS)
    options: list[st.SearchStrategy[FilterTree]] = [
        st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True).map(
            lambda values: Terms(name, tuple(values))
        ),
        st.just(Exists(name)),
    ]
    if name != "in_stock":
        bound = st.sampled_from([value for value in pool if value != ""])
        lower = st.sampled_from([None, "gte", "gt"])
        upper = st.sampled_from([None, "lte", "lt"])
        options.insert(1, st.builds(_range, st.just(name), lower, upper, bound, bound))
    return st.one_of(options)


LEAVES = st.one_of([_leaves(name) for name in [*POOLS, ID_FIELD]])


def _maybe_negated(trees: st.SearchStrategy[FilterTree]) -> st.SearchStrategy[FilterTree]:
    # a flag rather than a ``Not`` branch: hypothesis favours the smallest branch otherwise
    return st.tuples(st.booleans(), trees).map(lambda pair: Not(pair[1]) if pair[0] else pair[1])


def trees(depth: int = 3) -> st.SearchStrategy[FilterTree]:
    """Random neutral trees over CONFIG's fields (shared with the integration test)."""
    if depth == 0:
        return _maybe_negated(LEAVES)
    children = trees(depth - 1)
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(children, min_size=2, max_size=3).map(lambda c: Or(tuple(c))),
        _maybe_negated(children),
    )


SEEDS = st.integers(min_value=0, max_value=2**32 - 1)


# ---------------------------------------------------------------- rendering trees as fq

_SPECIAL = set('\\+-!():^[]"{}~*?|&/ \t\n\r\u3000')


def _escaped(text: str) -> str:
    out = "".join("\\" + c if c in _SPECIAL else c for c in text)
    return "\\" + out if out in ("AND", "OR", "NOT") else out


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _value_text(value: Scalar, rng: random.Random) -> str:
    if isinstance(value, bool):
        return rng.choice(["true", "TRUE", "True"] if value else ["false", "FALSE"])
    if isinstance(value, float):
        return rng.choice([repr(value), f"{value:g}"])
    return value


def _value(value: Scalar, rng: random.Random) -> str:
    text = _value_text(value, rng)
    return _quoted(text) if text == "" or rng.random() < 0.3 else _escaped(text)


def _bound(value: Scalar | None, rng: random.Random) -> str:
    if value is None:
        return "*"
    text = _value_text(value, rng)
    bare = not any(c in " ]}" for c in text) and rng.random() < 0.7
    return _escaped(text) if bare else _quoted(text)


def _join(parts: list[str], rng: random.Random, ops: list[str]) -> str:
    out = parts[0]
    for part in parts[1:]:
        out += rng.choice(ops) + part
    return out


def _inner(tree: FilterTree, rng: random.Random) -> str:
    """``tree`` as the text of a boolean group, without the parentheses around it."""
    space = [" ", "  ", "\t", "\n"]
    if isinstance(tree, And):
        if rng.random() < 0.5:
            ands = [f"{rng.choice(space)}{op} " for op in ("AND", "&&")]
            return _join([_negated_or_clause(c, rng) for c in tree.children], rng, ands)
        parts = [
            "-" + clause(c.child, rng)
            if isinstance(c, Not) and rng.random() < 0.7
            else "+" + clause(c, rng)
            for c in tree.children
        ]
        return _join(parts, rng, space)
    if isinstance(tree, Or):
        ors = [f"{rng.choice(space)}{op} " for op in ("OR", "||")] + space
        return _join([clause(c, rng) for c in tree.children], rng, ors)
    assert isinstance(tree, Not)
    return _negated_or_clause(tree, rng)


def _negated_or_clause(tree: FilterTree, rng: random.Random) -> str:
    """A prohibited clause for a ``Not`` (Lucene's way inside an AND), else the clause."""
    if isinstance(tree, Not) and rng.random() < 0.7:
        return rng.choice(["-", "NOT ", "!"]) + clause(tree.child, rng)
    return clause(tree, rng)


def clause(tree: FilterTree, rng: random.Random) -> str:
    """``tree`` as one Lucene clause (compound trees in parentheses)."""
    if isinstance(tree, Terms):
        values = [_value(v, rng) for v in tree.values]
        if len(values) == 1 and rng.random() < 0.7:
            return f"{tree.field}:{values[0]}"
        if rng.random() < 0.5:
            ors = [" OR ", " || ", " "]
            return "(" + _join([f"{tree.field}:{v}" for v in values], rng, ors) + ")"
        return f"{tree.field}:(" + _join(values, rng, [" OR ", " || ", " "]) + ")"
    if isinstance(tree, Range):
        low = tree.gte if tree.gte is not None else tree.gt
        high = tree.lte if tree.lte is not None else tree.lt
        opening = "[" if tree.gte is not None or (low is None and rng.random() < 0.5) else "{"
        closing = "]" if tree.lte is not None or (high is None and rng.random() < 0.5) else "}"
        return f"{tree.field}:{opening}{_bound(low, rng)} TO {_bound(high, rng)}{closing}"
    if isinstance(tree, Exists):
        return tree.field + rng.choice([":*", ":[* TO *]", ":{* TO *}"])
    return "(" + rng.choice(["", " "]) + _inner(tree, rng) + ")"


def render_fqs(tree: FilterTree, rng: random.Random) -> list[str]:
    """fq strings that mean ``tree``: a top-level AND may be spread over several fq."""
    parts = list(tree.children) if isinstance(tree, And) and rng.random() < 0.5 else [tree]
    fqs = [
        _inner(part, rng) if isinstance(part, And | Or | Not) and rng.random() < 0.5 else
        clause(part, rng)
        for part in parts
    ]  # fmt: skip
    if rng.random() < 0.2:
        fqs.insert(rng.randint(0, len(fqs)), rng.choice(["", " "]))
    return fqs


RECORDS = [random_record(random.Random(i), i) for i in range(N_IDS)]


@settings(max_examples=200, deadline=None)
@given(trees(), SEEDS)
def test_rendered_trees_parse_back_to_the_same_filter(tree: FilterTree, seed: int) -> None:
    rng = random.Random(seed)
    fqs = render_fqs(tree, rng)
    parsed = parse(fqs)
    assert parsed is not None
    for record in RECORDS[rng.randrange(4) :: 4] + [random_record(rng, i) for i in range(10)]:
        want = matches(record, tree, CONFIG)
        assert matches(record, parsed, CONFIG) == want, (fqs, record, parsed)


def test_the_round_trip_sees_both_outcomes() -> None:
    """The property above would pass vacuously if trees matched all records or none."""
    mixed: list[bool] = []

    @settings(max_examples=50, derandomize=True, database=None)
    @given(trees())
    def collect(tree: FilterTree) -> None:
        hits = sum(matches(record, tree, CONFIG) for record in RECORDS)
        mixed.append(0 < hits < len(RECORDS))

    collect()
    assert sum(mixed) >= len(mixed) // 3
