"""query_pairs gives what Starlette's QueryParams gives, for any raw query string."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from gateway.dialects.query_string import MAX_REMEMBERED_BYTES, query_pairs, remembered

# Raw bytes as clients send them: escapes (good, bad, UTF-8 and not), separators, brackets.
_PIECES = st.sampled_from(
    ["a", "b", "=", "&", "&&", "+", "%", "%2", "%20", "%5B", "%5d", "%C3%A9", "%ff", "[", "]",
     "é", ";", "filter", "%26", "%3D", " "]
)  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(_PIECES, max_size=20).map("".join))
def test_raw_query_strings_parse_as_starlette_parses_them(text: str) -> None:
    raw = text.encode("utf-8")
    assert query_pairs(raw) == QueryParams(raw).multi_items()


@given(st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6))
def test_encoded_pairs_round_trip(pairs: list[tuple[str, str]]) -> None:
    """What a client encodes comes back: names with brackets, blanks, any text."""
    raw = urlencode(pairs).encode("ascii")
    assert query_pairs(raw) == pairs


def test_repeated_names_keep_their_order_and_values() -> None:
    raw = b"filter%5Bsize%5D%5B%5D=M&filter%5Bsize%5D%5B%5D=L&rpp=&flag"
    assert query_pairs(raw) == [
        ("filter[size][]", "M"),
        ("filter[size][]", "L"),
        ("rpp", ""),
        ("flag", ""),
    ]


class _Config:
    """Equal by value, as engine configs are: the cache must still tell two objects apart."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Config) and other.k == self.k

    def __hash__(self) -> int:
        return hash(self.k)


Pairs = tuple[tuple[str, str], ...]


def _counting_parse() -> tuple[list[tuple[bytes, _Config]], Callable[[bytes, _Config], Pairs]]:
    calls: list[tuple[bytes, _Config]] = []

    def parse(raw: bytes, config: _Config) -> Pairs:
        calls.append((raw, config))
        if b"bad" in raw:
            raise ValueError("refused")
        return (*query_pairs(raw), ("k", str(config.k)))

    return calls, parse


def test_remembered_parses_once_per_string_and_config_object() -> None:
    calls, parse = _counting_parse()
    lookup = remembered(parse)
    first, twin = _Config(1), _Config(1)  # equal, not the same object
    raw = b"rpp=5&filter%5Bsize%5D=M"
    assert lookup(raw, first) == parse(raw, first)
    calls.clear()
    assert lookup(bytes(raw), first) == (("rpp", "5"), ("filter[size]", "M"), ("k", "1"))
    assert calls == []  # an equal string (another bytes object) is the same entry
    lookup(raw, twin)
    lookup(b"rpp=6", first)
    assert calls == [(raw, twin), (b"rpp=6", first)]


def test_remembered_never_keeps_errors_or_long_strings() -> None:
    calls, parse = _counting_parse()
    lookup = remembered(parse)
    config = _Config(1)
    for _ in range(2):
        with pytest.raises(ValueError, match="refused"):
            lookup(b"bad=1", config)
    long = b"q=" + b"x" * MAX_REMEMBERED_BYTES
    assert lookup(long, config) == lookup(long, config)
    assert [raw for raw, _ in calls] == [b"bad=1", b"bad=1", long, long]
