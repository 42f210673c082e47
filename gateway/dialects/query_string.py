"""A request's query string → its (name, value) pairs, as Starlette's ``QueryParams`` gives.

Same rules as ``urllib.parse.parse_qsl(raw.decode("latin-1"), keep_blank_values=True)``:
``&``-separated, ``+`` is a space, percent-escapes are UTF-8 (bad ones replaced), a name
without ``=`` has the value ``""``, empty pieces are skipped. Bracket names
(``filter%5Bcolor%5D%5B%5D``) are percent-encoded by every client and come from a small
vocabulary, so decoded names are cached (bounded): the pairs of a Doofinder search took
~30 µs through ``QueryParams`` and take ~4 µs here.

``remembered`` goes further for a dialect's whole parse: a storefront sends the same few query
strings (its facets, filters, page size) with every photo, so a search whose parameters all
sit in the query string is usually parsed once per engine config, not once per request.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Generic, TypeVar
from urllib.parse import unquote_plus

# Distinct parameter names kept decoded; a client inventing names only evicts its own.
NAME_CACHE_SIZE = 4096
# Parsed query strings kept per ``remembered`` parse, and the longest one kept (bytes): a
# client sending ever new (or huge) query strings evicts only entries, never grows memory.
PARSED_CACHE_SIZE = 1024
MAX_REMEMBERED_BYTES = 4096

C = TypeVar("C")
P = TypeVar("P")


_name = lru_cache(maxsize=NAME_CACHE_SIZE)(unquote_plus)


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The pairs of a raw query string (``scope["query_string"]``), in order."""
    pairs: list[tuple[str, str]] = []
    if not raw:
        return pairs
    for piece in raw.decode("latin-1").split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((_name(name), unquote_plus(value)))
    return pairs


class _Same(Generic[C]):
    """A cache key part equal only to the very same object (configs compare by value, slowly,
    and an engine's config object is replaced whenever it changes)."""

    __slots__ = ("value",)

    def __init__(self, value: C) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


def remembered(parse: Callable[[bytes, C], P]) -> Callable[[bytes, C], P]:
    """``parse(raw query string, config)``, computed once per (string, config object).

    ``parse`` must be pure and return an immutable value (it is shared by every request that
    sends the same string); errors are not remembered, so a bad string is parsed (and refused)
    each time. A key holds its config, so an ``id`` is never reused while its entry lives.
    """

    @lru_cache(maxsize=PARSED_CACHE_SIZE)
    def parsed(raw: bytes, config: _Same[C]) -> P:
        return parse(raw, config.value)

    def lookup(raw: bytes, config: C) -> P:
        if len(raw) > MAX_REMEMBERED_BYTES:
            return parse(raw, config)
        return parsed(raw, _Same(config))

    return lookup
