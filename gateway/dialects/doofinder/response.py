"""Neutral ``SearchResult`` → the Doofinder v6 ``SearchResponse`` JSON. Pure.

Facets follow the reference's ``TermFacetResponse``/``RangeFacetResponse`` schemas:
``{"key": "brand", "terms": {"items": [{"name", "count"}], "selected": [...]}}`` and
``{"key": "price", "range": {"min", "max", "from", "to"}}``.

``dfid`` is ``{hashid}@product@{md5(id)}`` as Doofinder writes it. md5 cannot be reversed,
so ``parse_dfid`` tells the service which stored field to look the item up by: a full dfid
names ``id_md5`` (the md5 hex of ``id``, which the indexer must store as a keyword), and
anything else is taken as a plain ``id``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateway.search.model import (
    BOOKKEEPING_FIELDS,
    ID_FIELD,
    Hit,
    ItemQuery,
    RangeFacetResult,
    Scalar,
    SearchRequest,
    SearchResult,
    TermsFacetResult,
)
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import InvalidRequest

DFID_TYPE = "product"
QUERY_NAME = "image_search"
ID_MD5_FIELD = "id_md5"
_MD5 = re.compile(r"[0-9a-f]{32}")


class TermItem(BaseModel):
    name: str
    count: int


class Terms(BaseModel):
    items: list[TermItem]
    selected: list[TermItem]


class TermFacetResponse(BaseModel):
    key: str
    terms: Terms


class RangeStats(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    min: float | None = None
    max: float | None = None
    from_: float | str | None = Field(default=None, alias="from")
    to: float | str | None = None


class RangeFacetResponse(BaseModel):
    key: str
    range: RangeStats


class Item(BaseModel):
    """One result; the engine's other stored fields come along as extra keys."""

    model_config = ConfigDict(extra="allow")

    id: str
    dfid: str
    title: str
    url: str | None = None
    image_url: str | None = None
    description: str | None = None
    score: float


class DoofinderSearchResponse(BaseModel):
    results: list[Item]
    total: int
    count: int
    page: int
    rpp: int
    query_name: str = QUERY_NAME
    facets: list[TermFacetResponse | RangeFacetResponse] = Field(default_factory=list)


# Results repeat across searches (a catalog's popular items): their dfids are kept (~1/4 of
# the hashing cost each time one comes back).
DFID_CACHE_SIZE = 16384


@lru_cache(maxsize=DFID_CACHE_SIZE)
def make_dfid(hashid: str, item_id: str) -> str:
    return f"{hashid}@{DFID_TYPE}@{hashlib.md5(item_id.encode()).hexdigest()}"


def parse_dfid(dfid: str, hashid: str, exclude_self: bool = True) -> ItemQuery:
    """A full ``{hashid}@product@{md5}`` dfid → look up ``id_md5``; anything else → ``id``."""
    parts = dfid.split("@")
    if len(parts) == 3 and _MD5.fullmatch(parts[2]):
        if parts[0] != hashid:
            raise InvalidRequest("Invalid dfid: it belongs to another search engine")
        if parts[1] != DFID_TYPE:
            raise InvalidRequest(f"Invalid dfid: unknown index {parts[1]!r}")
        return ItemQuery(ID_MD5_FIELD, parts[2], exclude_self)
    if not dfid:
        raise InvalidRequest("Invalid dfid")
    return ItemQuery(ID_FIELD, dfid, exclude_self)


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, list):
        return str(value[0]) if value else None
    return str(value)


def _item_formatter(config: EngineConfig, hashid: str) -> Callable[[Hit], dict[str, Any]]:
    """Hit → one result: its stored fields (bookkeeping and vectors left out) and Doofinder's.

    Search hits come without those already (``dsl.source_filter``), so the copy is usually
    plain; the engine's names are looked up once per response, not once per hit.
    """
    names = config.result_fields
    hidden = BOOKKEEPING_FIELDS.union(config.vectors)
    title, url, description = names.title, names.url, names.description
    image_field = names.image_url or "image_url"

    def item_of(hit: Hit) -> dict[str, Any]:
        source = hit.source
        item: dict[str, Any] = (
            dict(source)
            if hidden.isdisjoint(source)
            else {k: v for k, v in source.items() if k not in hidden}
        )
        item["id"] = hit.id
        item["dfid"] = make_dfid(hashid, hit.id)
        item["title"] = (_text(source.get(title)) if title else None) or ""
        item["url"] = _text(source.get(url)) if url else None
        item["image_url"] = _text(source.get(image_field))
        item["description"] = _text(source.get(description)) if description else None
        item["score"] = hit.score
        return item

    return item_of


def _name(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_facet(facet: TermsFacetResult | RangeFacetResult) -> dict[str, Any]:
    if isinstance(facet, RangeFacetResult):
        return {
            "key": facet.field,
            "range": {
                "min": facet.min,
                "max": facet.max,
                "from": facet.selected_from,
                "to": facet.selected_to,
            },
        }
    return {
        "key": facet.field,
        "terms": {
            "items": [{"name": _name(t.value), "count": t.count} for t in facet.items],
            "selected": [{"name": _name(t.value), "count": t.count} for t in facet.selected],
        },
    }


def format_response(
    result: SearchResult,
    req: SearchRequest,
    config: EngineConfig,
    hashid: str,
    query_name: str = QUERY_NAME,
) -> dict[str, Any]:
    """The JSON body of a successful ``_image_search`` (see ``DoofinderSearchResponse``)."""
    return {
        "results": list(map(_item_formatter(config, hashid), result.hits)),
        "total": result.total,
        "count": result.total,
        "page": req.page,
        "rpp": req.rpp,
        "query_name": query_name,
        "facets": [format_facet(facet) for facet in result.facets],
    }
