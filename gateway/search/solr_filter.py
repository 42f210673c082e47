"""Solr filter queries (``fq``, the standard "lucene" syntax) → the neutral filter tree. Pure.

For dialects that speak Solr (Pixolution Flow's ``/image``): each ``fq`` is parsed on its own
and the results are ANDed, as Solr does with several ``fq`` parameters. Blank ``fq`` are
ignored.

Supported: ``field:value``, ``field:"quoted value"``, escapes (``\\:``, ``\\uXXXX``),
``field:[a TO b]`` / ``{a TO b}`` / mixed ``[a TO b}`` with ``*`` as an open bound,
``field:*`` and ``field:[* TO *]`` (the field has a value), ``*:*`` (every document),
``AND OR NOT && || !``, prefix ``+``/``-``, parentheses and ``field:(a OR b)``. Refused with
an ``InvalidRequest`` naming the construct and its column: wildcards, fuzzy/proximity ``~``,
boosts ``^``, regular expressions, local params ``{!…}``, ``_val_``/``_query_``, comments,
field-less terms; unknown fields raise ``UnknownField``.

Semantics, as Solr's standard parser with its default ``q.op=OR``:

- Operators are not a precedence grammar but Lucene clause flags: a clause is required
  (``+``, or either side of ``AND``), prohibited (``-``, ``NOT``, ``!``) or optional. A group
  with required clauses matches them all and ignores its optional ones (``a OR b AND c`` is
  ``+b +c``); otherwise it matches any optional one; prohibited clauses are excluded.
  So ``a OR NOT b`` is ``a -b``, as in Solr.
- A purely negative group (``-brand:acme``, or ``(NOT a)`` nested) means every document
  except those: Solr does this at the top level, and recent Solr for nested groups too
  (``autoFixPureNegative``); older versions matched nothing for a nested one.
- Values are whole stored values, typed by the field: keyword and text match the exact value
  (a text field through its keyword sub-field, not analyzed tokens, so a quoted phrase is an
  exact value too); number → float; boolean → ``true``/``false``; date → Solr's
  ``YYYY-MM-DDThh:mm:ss[.fff]Z``, passed on as UTC with milliseconds (no date math).
- Ranges work on number, date, keyword and text fields (strings in code-point order);
  on a boolean only ``[* TO *]``. ``id`` is the stored item id (a keyword).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, auto
from typing import NoReturn

from gateway.search.model import (
    ID_FIELD,
    And,
    Exists,
    FilterTree,
    Not,
    Or,
    Range,
    Scalar,
    Terms,
)
from imgsearch.engine_config import EngineConfig, FieldType
from imgsearch.errors import InvalidRequest, UnknownField

MAX_FQS = 20
MAX_FQ_LENGTH = 4000
MAX_DEPTH = 32
# Leaf clauses over all fq together: keeps the query under OpenSearch's clause limit (1024).
MAX_CLAUSES = 1000

_WHITESPACE = frozenset(" \t\n\r\u3000")
# Characters that cannot start a bare term (Solr's _TERM_START_CHAR), and those that cannot
# continue one (a term may go on with - + / !).
_NOT_TERM_START = _WHITESPACE | frozenset('+-!():^[]"{}~*?\\/')
_NOT_TERM_CHAR = _NOT_TERM_START - frozenset("-+/!")
# A bare range bound ends at a space, ']' or '}' only (Solr's RANGE_GOOP), escaped or not.
_RANGE_STOP = frozenset(" ]}")
_MAGIC_FIELDS = {
    "_val_": "function queries (_val_) are not supported",
    "_query_": "nested queries (_query_) are not supported",
}
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DATE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?Z"
)


class _Kind(Enum):
    TERM = auto()
    QUOTED = auto()
    RANGE = auto()
    STAR = auto()
    COLON = auto()
    LPAREN = auto()
    RPAREN = auto()
    AND = auto()
    OR = auto()
    NOT = auto()
    PLUS = auto()
    MINUS = auto()
    END = auto()


class _Occur(Enum):
    MUST = auto()
    SHOULD = auto()
    MUST_NOT = auto()


_SINGLES = {
    "(": _Kind.LPAREN,
    ")": _Kind.RPAREN,
    ":": _Kind.COLON,
    "+": _Kind.PLUS,
    "-": _Kind.MINUS,
    "!": _Kind.NOT,
}
# What a token may not start with (where a wildcard ``*`` is not the lone ``*`` of field:*).
_REFUSED = {
    "{": "local parameters {!...} are not supported",
    "*": "wildcards are not supported",
    "?": "wildcards are not supported",
    "~": "fuzzy and proximity searches (~) are not supported",
    "^": "boosts (^) are not supported",
    "/": "regular expressions (/.../) are not supported",
    "]": "unbalanced brackets: this ']' closes no range",
    "}": "unbalanced brackets: this '}' closes no range",
}
_COMMENTS = "comments are not supported"
_VALUE_KINDS = frozenset({_Kind.TERM, _Kind.QUOTED, _Kind.RANGE, _Kind.STAR})
_KEYWORDS = {"AND": _Kind.AND, "&&": _Kind.AND, "OR": _Kind.OR, "||": _Kind.OR, "NOT": _Kind.NOT}


@dataclass(frozen=True)
class _Bound:
    """One end of a range: ``value`` ``None`` when open (``*``)."""

    value: str | None
    inclusive: bool
    column: int


@dataclass(frozen=True)
class _Token:
    kind: _Kind
    text: str  # as written (keywords are recognised on this)
    value: str  # escapes resolved
    column: int  # 1-based
    end: int  # 0-based index just past the token
    bounds: tuple[_Bound, _Bound] | None = None


class _Lexer:
    """Splits one fq into tokens, refusing unsupported constructs where they start."""

    def __init__(self, text: str, fail: _Fail) -> None:
        self.text = text
        self.fail = fail
        self.pos = 0

    def tokens(self) -> list[_Token]:
        out: list[_Token] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                out.append(_Token(_Kind.END, "", "", self.pos + 1, self.pos))
                return out
            out.append(self._token())

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
            self.pos += 1

    def _simple(self, kind: _Kind) -> _Token:
        start = self.pos
        self.pos += 1
        return _Token(kind, self.text[start], self.text[start], start + 1, self.pos)

    def _token(self) -> _Token:
        start, char = self.pos, self.text[self.pos]
        nxt = self.text[start + 1] if start + 1 < len(self.text) else ""
        if char in _SINGLES:
            if char in "+-!" and (nxt == "" or nxt in _WHITESPACE):
                self.fail(start, f"{char!r} must be followed directly by a clause")
            return self._simple(_SINGLES[char])
        if char == '"':
            return self._quoted()
        if char == "[" or (char == "{" and nxt != "!"):
            return self._range()
        if char == "*" and (nxt == "" or nxt in _NOT_TERM_CHAR - frozenset("*?\\")):
            return self._simple(_Kind.STAR)
        if char == "/":
            self.fail(start, _COMMENTS if nxt == "*" else _REFUSED[char])
        if char in _REFUSED:
            self.fail(start, _REFUSED[char])
        return self._term()

    def _escape(self) -> str:
        """The character an escape at ``pos`` stands for (``\\uXXXX`` included)."""
        start = self.pos
        if start + 1 >= len(self.text):
            self.fail(start, "a backslash at the end escapes nothing")
        char = self.text[start + 1]
        self.pos += 2
        if char != "u":
            return char
        digits = self.text[self.pos : self.pos + 4]
        if not re.fullmatch(r"[0-9A-Fa-f]{4}", digits):
            self.fail(start, "\\u must be followed by 4 hex digits")
        self.pos += 4
        return chr(int(digits, 16))

    def _term(self) -> _Token:
        start = self.pos
        value: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\":
                value.append(self._escape())
            elif char in "*?":
                self.fail(start, "wildcards are not supported")
            elif char in _NOT_TERM_CHAR:
                break
            else:
                value.append(char)
                self.pos += 1
        text = self.text[start : self.pos]
        kind = _KEYWORDS.get(text, _Kind.TERM)
        return _Token(kind, text, "".join(value), start + 1, self.pos)

    def _quoted(self) -> _Token:
        start = self.pos
        self.pos += 1
        value: list[str] = []
        while True:
            if self.pos >= len(self.text):
                self.fail(start, "unbalanced quotes: this '\"' is never closed")
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                break
            if char == "\\":
                value.append(self._escape())
            else:
                value.append(char)
                self.pos += 1
        text = self.text[start : self.pos]
        return _Token(_Kind.QUOTED, text, "".join(value), start + 1, self.pos)

    def _range_part(self, opening: int) -> tuple[str, str | None, int]:
        """The next word inside a range: (value, text as written or None if quoted, column)."""
        self._skip_space()
        if self.pos >= len(self.text):
            self.fail(opening, "unbalanced brackets: this range is never closed")
        start = self.pos
        if self.text[start] == '"':
            token = self._quoted()
            if token.value == "":
                self.fail(start, "an empty quoted range bound")
            return token.value, None, start + 1
        value: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] not in _RANGE_STOP:
            if self.text[self.pos] == "\\":
                if self.text[self.pos + 1 : self.pos + 2] in _RANGE_STOP:
                    self.fail(self.pos, "a range bound cannot end in a backslash: quote it")
                value.append(self._escape())
            else:
                value.append(self.text[self.pos])
                self.pos += 1
        if self.pos == start:
            self.fail(start, "a range needs two bounds: [a TO b]")
        return "".join(value), self.text[start : self.pos], start + 1

    def _range(self) -> _Token:
        opening = self.pos
        self.pos += 1
        low, low_text, low_col = self._range_part(opening)
        _, word, word_col = self._range_part(opening)
        if word != "TO":
            self.fail(word_col - 1, "expected TO between the bounds of a range")
        high, high_text, high_col = self._range_part(opening)
        self._skip_space()
        if self.pos >= len(self.text):
            self.fail(opening, "unbalanced brackets: this range is never closed")
        closing = self.text[self.pos]
        if closing not in "]}":
            self.fail(self.pos, "expected ']' or '}' to close the range")
        self.pos += 1
        bounds = (
            _Bound(None if low_text == "*" else low, self.text[opening] == "[", low_col),
            _Bound(None if high_text == "*" else high, closing == "]", high_col),
        )
        text = self.text[opening : self.pos]
        return _Token(_Kind.RANGE, text, text, opening + 1, self.pos, bounds)


class _Fail:
    """Raises ``InvalidRequest`` located in one fq."""

    def __init__(self, number: int) -> None:
        self.number = number

    def __call__(self, index: int, message: str) -> NoReturn:
        raise InvalidRequest(f"fq {self.number}, column {index + 1}: {message}")


@dataclass
class _Budget:
    """Leaf clauses left for all fq together."""

    clauses: int = MAX_CLAUSES


# ---------------------------------------------------------------- tree building


def _flat(parts: Sequence[FilterTree], kind: type[And | Or]) -> list[FilterTree]:
    """``parts`` with nested groups of the same kind spliced in and repeats left out."""
    flat: list[FilterTree] = []
    for part in parts:
        for child in part.children if isinstance(part, kind) else (part,):
            if child not in flat:
                flat.append(child)
    return flat


def _and(parts: Sequence[FilterTree]) -> FilterTree:
    flat = _flat(parts, And)
    return flat[0] if len(flat) == 1 else And(tuple(flat))


def _or(parts: Sequence[FilterTree]) -> FilterTree:
    """Any of ``parts``; ``Terms`` on one field merge into one (the same set of documents)."""
    merged: list[FilterTree] = []
    index: dict[str, int] = {}
    for part in _flat(parts, Or):
        if isinstance(part, Terms) and part.field in index:
            seen = merged[index[part.field]]
            assert isinstance(seen, Terms)
            extra = tuple(v for v in part.values if v not in seen.values)
            merged[index[part.field]] = Terms(part.field, seen.values + extra)
            continue
        if isinstance(part, Terms):
            index[part.field] = len(merged)
        merged.append(part)
    return merged[0] if len(merged) == 1 else Or(tuple(merged))


def _not(part: FilterTree) -> FilterTree:
    return part.child if isinstance(part, Not) else Not(part)


def _group(clauses: Sequence[tuple[_Occur, FilterTree]]) -> FilterTree:
    """One Lucene boolean group: required clauses, else any optional one; minus prohibited."""
    if len(clauses) == 1 and clauses[0][0] is _Occur.SHOULD:
        return clauses[0][1]
    must = [tree for occur, tree in clauses if occur is _Occur.MUST]
    should = [tree for occur, tree in clauses if occur is _Occur.SHOULD]
    parts = [_and(must)] if must else [_or(should)] if should else []
    parts.extend(_not(tree) for occur, tree in clauses if occur is _Occur.MUST_NOT)
    return _and(parts)


# ---------------------------------------------------------------- typed values


def _number(text: str) -> float | None:
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _date(text: str) -> str | None:
    """Solr's instant form as UTC with milliseconds (exact on OpenSearch's range bounds)."""
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None
    millis = (match.group(7) or ".0")[1:4].ljust(3, "0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{millis}Z"


def _boolean(text: str) -> bool | None:
    return {"true": True, "false": False}.get(text.lower())


# ---------------------------------------------------------------- parser


class _Parser:
    """Recursive descent over one fq, after Solr's QueryParser.jj (q.op=OR)."""

    def __init__(self, text: str, number: int, config: EngineConfig, budget: _Budget) -> None:
        self.fail = _Fail(number)
        self.tokens = _Lexer(text, self.fail).tokens()
        self.pos = 0
        self.types = {name: spec.type for name, spec in config.searchable_fields().items()}
        self.types[ID_FIELD] = FieldType.KEYWORD
        self.number = number
        self.budget = budget

    def parse(self) -> FilterTree:
        tree = self._query(None, 0)
        token = self._peek()
        if token.kind is _Kind.RPAREN:
            self.fail(token.column - 1, "unbalanced parentheses: this ')' closes no '('")
        return tree

    def _peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def _next(self) -> _Token:
        token = self._peek()
        self.pos += 1
        return token

    def _query(self, field: str | None, depth: int) -> FilterTree:
        clauses: list[tuple[_Occur, FilterTree]] = []
        conjunction: _Kind | None = None
        while True:
            modifier = self._next().kind if self._peek().kind in _MODIFIERS else None
            tree = self._clause(field, depth)
            self._add(clauses, conjunction, modifier, tree)
            if self._peek().kind in (_Kind.END, _Kind.RPAREN):
                return _group(clauses)
            conjunction = self._next().kind if self._peek().kind in _CONJUNCTIONS else None

    @staticmethod
    def _add(
        clauses: list[tuple[_Occur, FilterTree]],
        conjunction: _Kind | None,
        modifier: _Kind | None,
        tree: FilterTree,
    ) -> None:
        """Lucene's ``addClause`` with the OR default operator."""
        if clauses and conjunction is _Kind.AND and clauses[-1][0] is not _Occur.MUST_NOT:
            clauses[-1] = (_Occur.MUST, clauses[-1][1])
        prohibited = modifier in (_Kind.MINUS, _Kind.NOT)
        required = modifier is _Kind.PLUS or (conjunction is _Kind.AND and not prohibited)
        occur = _Occur.MUST if required else _Occur.MUST_NOT if prohibited else _Occur.SHOULD
        clauses.append((occur, tree))

    def _clause(self, field: str | None, depth: int) -> FilterTree:
        token = self._peek()
        if token.kind in (_Kind.TERM, _Kind.STAR) and self._peek(1).kind is _Kind.COLON:
            self.pos += 2
            field = self._field(token)
        token = self._next()
        if token.kind is _Kind.LPAREN:
            if depth + 1 > MAX_DEPTH:
                self.fail(token.column - 1, f"nesting deeper than {MAX_DEPTH} levels")
            tree = self._query(field, depth + 1)
            if self._next().kind is not _Kind.RPAREN:
                self.fail(token.column - 1, "unbalanced parentheses: this '(' is never closed")
            return tree
        return self._leaf(field, token)

    def _field(self, token: _Token) -> str:
        name = "*" if token.kind is _Kind.STAR else token.value
        if name in _MAGIC_FIELDS:
            self.fail(token.column - 1, _MAGIC_FIELDS[name])
        if name != "*" and name not in self.types:
            raise UnknownField(f"fq {self.number}, column {token.column}: unknown field {name!r}")
        return name

    def _leaf(self, field: str | None, token: _Token) -> FilterTree:
        where = token.column - 1
        if token.kind not in _VALUE_KINDS:
            found = "the end" if token.kind is _Kind.END else repr(token.text)
            if field is None:
                self.fail(where, f"expected a clause, found {found}")
            hint = " (escape it, \\-3, or quote the value)" if token.kind is _Kind.MINUS else ""
            self.fail(where, f"expected a value after {field}:, found {found}{hint}")
        if field is None:
            hint = " (operators are upper case)" if token.text.upper() in _KEYWORDS else ""
            self.fail(where, f"{token.text!r} has no field: write field:value{hint}")
        self.budget.clauses -= 1
        if self.budget.clauses < 0:
            self.fail(where, f"more than {MAX_CLAUSES} clauses in all fq together")
        if field == "*":
            if token.kind is not _Kind.STAR:
                self.fail(where, "searching all fields (*:value) is not supported")
            return Exists(ID_FIELD)  # *:* — every document has an id
        if token.kind is _Kind.STAR:
            return Exists(field)
        if token.kind is _Kind.RANGE:
            return self._range(field, token)
        after = self._peek()
        if token.kind is _Kind.TERM and after.kind is _Kind.COLON and after.column - 1 == token.end:
            self.fail(after.column - 1, "a ':' in a value must be escaped (\\:) or quoted")
        return Terms(field, (self._typed(field, token.value, where),))

    def _range(self, field: str, token: _Token) -> FilterTree:
        assert token.bounds is not None
        low, high = token.bounds
        if low.value is None and high.value is None:
            return Exists(field)
        if self.types[field] is FieldType.BOOLEAN:
            self.fail(token.column - 1, f"{field} is a boolean field: ranges need another type")
        bounds: dict[str, Scalar] = {}
        for bound, closed, opened in ((low, "gte", "gt"), (high, "lte", "lt")):
            if bound.value is not None:
                typed = self._typed(field, bound.value, bound.column - 1)
                bounds[closed if bound.inclusive else opened] = typed
        return Range(field, **bounds)

    def _typed(self, field: str, text: str, where: int) -> Scalar:
        kind = self.types[field]
        if kind is FieldType.NUMBER:
            number = _number(text)
            if number is None:
                self.fail(where, f"{text!r} is not a number ({field} is a number field)")
            return number
        if kind is FieldType.BOOLEAN:
            flag = _boolean(text)
            if flag is None:
                self.fail(where, f"{text!r} is not true or false ({field} is a boolean field)")
            return flag
        if kind is FieldType.DATE:
            moment = _date(text)
            if moment is None:
                self.fail(
                    where,
                    f"{text!r} is not a date: write 2024-01-31T00:00:00Z (no date math)",
                )
            return moment
        return text


_MODIFIERS = frozenset({_Kind.PLUS, _Kind.MINUS, _Kind.NOT})
_CONJUNCTIONS = frozenset({_Kind.AND, _Kind.OR})


def parse_filter_queries(fqs: Sequence[str], config: EngineConfig) -> FilterTree | None:
    """All ``fq`` ANDed into one tree; ``None`` when every ``fq`` is blank.

    Raises ``InvalidRequest`` (``UnknownField`` for fields the engine lacks) with the fq's
    number and the column of the offending construct.
    """
    if len(fqs) > MAX_FQS:
        raise InvalidRequest(f"at most {MAX_FQS} fq parameters")
    budget = _Budget()
    trees: list[FilterTree] = []
    for number, fq in enumerate(fqs, start=1):
        if len(fq) > MAX_FQ_LENGTH:
            raise InvalidRequest(f"fq {number}: longer than {MAX_FQ_LENGTH} characters")
        if fq.strip():
            trees.append(_Parser(fq, number, config, budget).parse())
    return _and(trees) if trees else None
