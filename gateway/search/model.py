"""The neutral search model every dialect parses into and formats from.

A request keeps its positive filters as a mapping *field → clause* and its negative
filters (excludes, excluded ids) apart, so the DSL builder can drop one facet's own clause
to count that facet disjunctively (see ``SearchRequest.filter_tree``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# A filter value, typed per field: keyword/text/date → str, number → float, boolean → bool.
Scalar = str | float | bool

FacetType = Literal["terms", "range"]
SortOrder = Literal["asc", "desc"]
FilterExecution = Literal["and", "or"]

# The stored document field holding the item id (see ``mappings/index.json``).
ID_FIELD = "id"
# Stored fields that are bookkeeping (the indexer's), never catalog data shown to clients;
# search and record bodies leave them out of ``_source``.
BOOKKEEPING_FIELDS = frozenset({"content_hash", "indexed_at", "id_md5"})


@dataclass(frozen=True)
class Terms:
    """The field has at least one of ``values``."""

    field: str
    values: tuple[Scalar, ...]


@dataclass(frozen=True)
class Range:
    """The field lies within the given bounds (any bound may be absent)."""

    field: str
    gte: Scalar | None = None
    gt: Scalar | None = None
    lte: Scalar | None = None
    lt: Scalar | None = None


@dataclass(frozen=True)
class Exists:
    """The field has at least one value."""

    field: str


@dataclass(frozen=True)
class And:
    """Every child matches."""

    children: tuple[FilterTree, ...]


@dataclass(frozen=True)
class Or:
    """At least one child matches."""

    children: tuple[FilterTree, ...]


@dataclass(frozen=True)
class Not:
    """The child does not match."""

    child: FilterTree


FilterTree = Terms | Range | Exists | And | Or | Not


@dataclass(frozen=True)
class FacetRequest:
    """Count ``field`` over the pool: top ``size`` terms, or min/max for ``range``."""

    field: str
    size: int
    type: FacetType


@dataclass(frozen=True)
class SortKey:
    field: str
    order: SortOrder = "asc"


@dataclass(frozen=True)
class ImageQuery:
    """Query by an image the client sent (raw bytes; each dialect decodes its transport)."""

    data: bytes


@dataclass(frozen=True)
class ImageUrlQuery:
    """Query by an image the gateway fetches from a public http(s) URL."""

    url: str


@dataclass(frozen=True)
class ItemQuery:
    """ "More like this": the stored vector of the item whose ``field`` equals ``value``.

    ``exclude_self`` leaves the item itself out of the results.
    """

    field: str
    value: str
    exclude_self: bool = True


@dataclass(frozen=True)
class TextQuery:
    """Query by words, embedded by the engine's text tower (CLIP maps text and images into
    one space)."""

    text: str


@dataclass(frozen=True)
class ColorQuery:
    """Query by colours: one to five ``(hex, weight)`` pairs, e.g. ``(("#0a7e8c", 0.7),
    ("#ffffff", 0.3))``, searched on the engine's colour descriptor field as the descriptor
    of an image made of those colours in those proportions (weights are shares)."""

    colors: tuple[tuple[str, float], ...]


SingleQuery = ImageQuery | ImageUrlQuery | ItemQuery | TextQuery | ColorQuery


@dataclass(frozen=True)
class MultiQuery:
    """Several queries fused: hits rank by their mean cosine similarity to all of them.

    Items named by an ``ItemQuery`` with ``exclude_self`` are left out of the results.
    """

    queries: tuple[SingleQuery, ...]


Query = SingleQuery | MultiQuery


@dataclass(frozen=True)
class TermsBoost:
    """Blend similarity with how many of ``values`` a hit's ``field`` shares (e.g. tags).

    A hit's score becomes ``(1 - weight) * similarity + weight * jaccard(values, field)``.
    """

    field: str
    values: tuple[str, ...]
    weight: float


@dataclass(frozen=True)
class VectorRerank:
    """Re-order the k-NN pool with a second query, on ``vector_field`` (e.g. colours).

    The pool stays the ``k`` nearest documents to the main query (same total, same facets);
    a hit's score becomes ``(1 - weight) * score + weight * (1 + cos) / 2``, ``cos`` between
    ``query`` and the hit's ``vector_field`` (a hit without that field gets 0 for the second
    part). The service sets ``vector`` from ``query``.
    """

    vector_field: str
    query: SingleQuery
    weight: float
    vector: tuple[float, ...] | None = None


@dataclass(frozen=True)
class SearchRequest:
    """One k-NN search over an engine's pool of ``k`` nearest documents.

    ``filters`` maps a field to its positive clause (a ``Terms`` or ``Range`` on that field);
    they combine with ``filter_execution``. ``excludes`` (negative clauses) and
    ``exclude_ids`` always apply. ``sort`` empty means relevance order.
    """

    engine: str
    vector_field: str
    k: int
    vector: list[float] | None = None  # set by the service from the query
    filters: Mapping[str, FilterTree] = field(default_factory=dict)
    filter_execution: FilterExecution = "and"
    excludes: tuple[FilterTree, ...] = ()
    exclude_ids: tuple[str, ...] = ()
    facets: tuple[FacetRequest, ...] = ()
    sort: tuple[SortKey, ...] = ()
    page: int = 1
    rpp: int = 20
    start: int | None = None  # an explicit offset, for APIs that page by "from"
    terms_boost: TermsBoost | None = None
    # Keep the best hit per value of this field; totals and facets count products.
    collapse: str | None = None
    # Words matched with BM25 over the engine's text fields; with a vector too, the two
    # rankings are fused (reciprocal-rank fusion) into one pool.
    keywords: str | None = None
    # A second query that re-orders the pool (e.g. colours beside an image query).
    rerank: VectorRerank | None = None
    # Worth OpenSearch's shard request cache: the same query is likely to come again (an
    # indexed item's "more like this"); uploaded photos never repeat.
    cacheable: bool = False
    # OpenSearch's ``preference``: which copy of each shard answers. Each copy builds its own
    # HNSW graphs, so a primary and its replica can find different approximate pools; every
    # body of one search (and every page of one session) must read the same copies.
    preference: str | None = None

    @property
    def reorders_pool(self) -> bool:
        """The page is cut from the whole pool re-ordered in Python, not by OpenSearch."""
        return (
            bool(self.sort)
            or self.terms_boost is not None
            or self.collapse is not None
            or self.keywords is not None
        )

    @property
    def offset(self) -> int:
        return self.start if self.start is not None else (self.page - 1) * self.rpp

    def filter_tree(self, omit: str | None = None) -> FilterTree | None:
        """The complete filter, without ``omit``'s own positive clause; ``None`` if empty."""
        positive = tuple(clause for name, clause in self.filters.items() if name != omit)
        parts: list[FilterTree] = []
        if len(positive) == 1:
            parts.append(positive[0])
        elif positive:
            parts.append(And(positive) if self.filter_execution == "and" else Or(positive))
        parts.extend(Not(clause) for clause in self.excludes)
        if self.exclude_ids:
            parts.append(Not(Terms(ID_FIELD, tuple(self.exclude_ids))))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def disjunctive_facets(self) -> tuple[FacetRequest, ...]:
        """Facets whose field carries a selected filter: each is counted in its own body."""
        return tuple(facet for facet in self.facets if facet.field in self.filters)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    source: dict[str, object]


@dataclass(frozen=True)
class TermCount:
    value: Scalar
    count: int


@dataclass(frozen=True)
class TermsFacetResult:
    """Top terms (selected ones always included) and the selected terms with their counts."""

    field: str
    items: tuple[TermCount, ...]
    selected: tuple[TermCount, ...]
    type: Literal["terms"] = "terms"


@dataclass(frozen=True)
class RangeFacetResult:
    """Min/max of the field over the pool (``None`` when no document has it)."""

    field: str
    min: float | None
    max: float | None
    selected_from: Scalar | None = None
    selected_to: Scalar | None = None
    type: Literal["range"] = "range"


FacetResult = TermsFacetResult | RangeFacetResult


@dataclass(frozen=True)
class SearchResult:
    total: int
    hits: tuple[Hit, ...]
    facets: tuple[FacetResult, ...] = ()


@dataclass(frozen=True)
class NearDuplicate:
    """An indexed item whose perceptual hash is ``distance`` bits from the query's."""

    id: str
    distance: int
