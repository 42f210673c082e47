"""Pixolution Flow ``/api/cores/{collection}/image`` parameters (Solr style) → neutral parts. Pure.

Parameters come from the query string and, for POST, a form-encoded body, merged as Solr
merges them (every value of a name, query string first). A single-valued parameter given
twice takes its first value (Solr's ``SolrParams.get``); ``fq`` collects every value.

- Query image: exactly one of ``id`` (an indexed item, left out of its own results), ``url``
  or ``base64``; or none with ``color`` (search by colour alone). ``color`` beside an image
  re-ranks the image's pool (``gateway.search.color_query``).
- ``fq`` (repeated, ANDed) and ``q`` other than ``*:*`` (ANDed like one more ``fq``): Solr's
  standard syntax, parsed by ``gateway.search.solr_filter``.
- ``rows`` (default 10) and ``start`` (default 0), with ``start + rows`` at most 10,000.
- ``fl``: field names separated by commas or spaces, ``*``, globs (``color_*``) and
  ``score``; default ``*,score``. Unknown names are left out of the documents, as in Solr.
- ``sort``: ``field asc|desc`` pairs separated by commas; ``score desc`` is relevance (the
  default, and the tie-breaker of every field sort, then ``id``), so keys after it never
  apply; ``score asc`` and function sorts are refused.
- ``wt`` must be ``json`` if given; ``facet``, ``group`` and ``hl`` switched on are refused
  (not supported, rather than silently ignored). Other parameters are ignored, as Solr
  ignores parameters no component reads.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from gateway.search.color_query import parse_colors
from gateway.search.model import (
    ID_FIELD,
    ColorQuery,
    FilterTree,
    SearchRequest,
    SortKey,
    SortOrder,
)
from gateway.search.solr_filter import parse_filter_queries
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest, UnknownField

DEFAULT_ROWS = 10
MAX_WINDOW = 10_000  # start + rows (OpenSearch's default index.max_result_window)
MAX_FL = 2_000
MAX_SORT = 1_000
IMAGE_PARAMS = ("id", "url", "base64")
SWITCHES = ("facet", "group", "hl")  # Solr components this endpoint does not have
SCORE = "score"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_GLOB = re.compile(r"[A-Za-z0-9_.*?]+")
_INTEGER = re.compile(r"[+-]?[0-9]{1,9}")
_ECHO_LIMIT = 200  # longer echoed values (a base64 image) are shortened


@dataclass(frozen=True)
class FieldList:
    """What ``fl`` asks for: every stored field, named ones, glob patterns, the score."""

    all_fields: bool = True
    names: tuple[str, ...] = ()
    globs: tuple[str, ...] = ()
    score: bool = True

    def wants(self, name: str) -> bool:
        return (
            self.all_fields
            or name in self.names
            or any(fnmatch.fnmatchcase(name, pattern) for pattern in self.globs)
        )


@dataclass(frozen=True)
class FlowParams:
    """Everything a Flow ``/image`` request says besides the image bytes themselves."""

    item_id: str | None = None
    url: str | None = None
    base64: str | None = None
    colors: ColorQuery | None = None
    filter: FilterTree | None = None
    rows: int = DEFAULT_ROWS
    start: int = 0
    fl: FieldList = FieldList()
    sort: tuple[SortKey, ...] = ()
    echo: dict[str, str | list[str]] = field(default_factory=dict)

    def window(self, k: int) -> tuple[int, int]:
        """(offset, size) to ask the service for, so that ``maxScore`` is known: the whole
        pool for a field sort, the top ``start + rows`` in relevance order, just the page
        when the score is not asked for."""
        if not self.fl.score:
            return self.start, self.rows
        if self.sort:
            return 0, max(k, 1)
        return 0, max(self.start + self.rows, 1)

    def search_request(self, config: EngineConfig, offset: int, size: int) -> SearchRequest:
        """The neutral request for the hits ``offset .. offset + size`` (see ``window``)."""
        return SearchRequest(
            engine=config.hashid,
            vector_field=config.query_vector_field,
            k=config.gateway.k,
            filters={"fq": self.filter} if self.filter is not None else {},
            sort=self.sort,
            start=offset,
            rpp=size,
            collapse=config.gateway.product_field,
        )


# ---------------------------------------------------------------- values


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _integer(params: dict[str, list[str]], name: str, default: int) -> int:
    text = _first(params, name)
    if text is None or not text.strip():
        return default
    if not _INTEGER.fullmatch(text.strip()):
        raise InvalidRequest(f"Invalid {name}: {text!r} is not an integer")
    value = int(text.strip())
    if value < 0:
        raise InvalidRequest(f"Invalid {name}: {value} is negative")
    return value


def _switched_on(text: str | None) -> bool:
    return text is not None and text.strip().lower() in ("true", "on", "yes")


# ---------------------------------------------------------------- fl and sort


def parse_fl(values: Sequence[str]) -> FieldList:
    """``fl`` values (each a comma/space separated list) → ``FieldList``; none: ``*,score``."""
    entries = [part for value in values for part in re.split(r"[,\s]+", value) if part]
    if not entries:
        return FieldList()
    if sum(len(value) for value in values) > MAX_FL:
        raise InvalidRequest(f"Invalid fl: at most {MAX_FL} characters")
    names: list[str] = []
    globs: list[str] = []
    all_fields = score = False
    for entry in entries:
        if entry == "*":
            all_fields = True
        elif entry == SCORE:
            score = True
        elif _NAME.fullmatch(entry):
            names.append(entry)
        elif _GLOB.fullmatch(entry):
            globs.append(entry)
        else:
            raise InvalidRequest(
                f"Invalid fl: {entry!r} is not supported (field names, globs such as "
                "color_*, * and score only; no aliases, functions or [transformers])"
            )
    return FieldList(all_fields, tuple(names), tuple(globs), score)


def parse_sort(text: str | None, config: EngineConfig) -> tuple[SortKey, ...]:
    """Solr ``sort``: ``field asc|desc`` pairs separated by commas."""
    if text is None or not text.strip():
        return ()
    if len(text) > MAX_SORT:
        raise InvalidRequest(f"Invalid sort: at most {MAX_SORT} characters")
    if "(" in text:
        raise InvalidRequest("Invalid sort: function sorts are not supported (fields only)")
    known = config.searchable_fields()
    keys: list[SortKey] = []
    for part in text.split(","):
        words = part.split()
        if not words:
            raise InvalidRequest(f"Invalid sort {text!r}: an empty sort clause")
        if len(words) != 2 or words[1].lower() not in ("asc", "desc"):
            raise InvalidRequest(
                f"Can't determine a Sort Order (asc or desc) in sort spec {part.strip()!r}"
            )
        name, order = words[0], cast(SortOrder, words[1].lower())
        if name == SCORE:
            if order == "asc":
                raise InvalidRequest("Invalid sort: score asc is not supported (score desc only)")
            break  # relevance is the tie-breaker of every sort: later keys never apply
        if not _NAME.fullmatch(name):
            raise InvalidRequest(f"Invalid sort: {name!r} is not a field name")
        if name != ID_FIELD and name not in known:
            raise UnknownField(f"sort param field can't be found: {name}")
        if any(key.field == name for key in keys):
            raise InvalidRequest(f"Invalid sort: field {name!r} given more than once")
        keys.append(SortKey(name, order))
    return tuple(keys)


# ---------------------------------------------------------------- entry point


def collect(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Every value of each name, in order."""
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    return params


def echo_params(params: dict[str, list[str]]) -> dict[str, str | list[str]]:
    """``responseHeader.params`` as Solr echoes explicit parameters (one value: a string),
    with long values (a base64 image) shortened."""

    def short(value: str) -> str:
        if len(value) <= _ECHO_LIMIT:
            return value
        return f"{value[:40]}... ({len(value)} characters)"

    return {
        name: short(values[0]) if len(values) == 1 else [short(v) for v in values]
        for name, values in params.items()
    }


def parse_params(pairs: Iterable[tuple[str, str]], config: EngineConfig) -> FlowParams:
    """Parse ``pairs`` (query string, then form body). ``InvalidRequest`` (or its
    ``UnknownField`` subclass) with a client-safe message for anything not supported."""
    params = collect(pairs)
    wt = _first(params, "wt")
    if wt is not None and wt.strip().lower() not in ("", "json"):
        raise InvalidRequest(f"Invalid wt: {wt!r} is not supported (json only)")
    for switch in SWITCHES:
        if _switched_on(_first(params, switch)):
            raise InvalidRequest(f"{switch}={_first(params, switch)} is not supported by /image")
    given = {name: _first(params, name) for name in IMAGE_PARAMS}
    given = {name: value for name, value in given.items() if value is not None and value.strip()}
    if len(given) > 1:
        raise InvalidRequest(f"Give one query image: id, url or base64, not {', '.join(given)}")
    color_text = _first(params, "color")
    colors = parse_colors(color_text) if color_text is not None and color_text.strip() else None
    fqs = list(params.get("fq", []))
    q = _first(params, "q")
    if q is not None and q.strip() not in ("", "*:*"):
        fqs.append(q)
    rows = _integer(params, "rows", DEFAULT_ROWS)
    start = _integer(params, "start", 0)
    if start + rows > MAX_WINDOW:
        raise InvalidRequest(f"Invalid start/rows: start + rows must be at most {MAX_WINDOW}")
    echo = echo_params(params) if (_first(params, "echoParams") or "").lower() != "none" else {}
    return FlowParams(
        item_id=given.get("id"),
        url=given.get("url"),
        base64=given.get("base64"),
        colors=colors,
        filter=parse_filter_queries(fqs, config),
        rows=rows,
        start=start,
        fl=parse_fl(params.get("fl", [])),
        sort=parse_sort(_first(params, "sort"), config),
        echo=echo,
    )
