"""query_pairs gives what Starlette's QueryParams gives, for any raw query string."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from gateway.dialects.query_string import query_pairs

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
