"""Neutral ``SearchResult`` → Solr's JSON response as Pixolution Flow answers it. Pure.

Success::

    {"responseHeader": {"status": 0, "QTime": 12, "params": {...}},
     "response": {"numFound": 57, "start": 0, "maxScore": 0.93, "numFoundExact": true,
                  "docs": [{"id": "111", "color_palette_hex": [...], ..., "score": 0.93}]}}

``numFound`` is the number of candidates in the engine's pool (at most ``gateway.k``; one per
product with ``gateway.product_field``), exact. ``maxScore`` (only when ``fl`` asks for the
score, as in Solr) is the best score in that pool. Documents carry the stored catalog
fields (vectors, the ``palette`` object and bookkeeping fields are never returned).

Errors, in Solr's shape::

    {"responseHeader": {"status": 400, "QTime": 0},
     "error": {"metadata": ["error-class", "org.apache.solr.common.SolrException",
                            "root-error-class", "org.apache.solr.common.SolrException"],
               "msg": "...", "code": 400}}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.dialects.flow.params import FlowParams
from gateway.search.model import BOOKKEEPING_FIELDS, ID_FIELD, Hit, SearchResult
from imgsearch.engine_config import EngineConfig

# Bookkeeping (left out by ``dsl.source_filter`` already) and internal structure.
HIDDEN_FIELDS = BOOKKEEPING_FIELDS | {"palette"}
SOLR_EXCEPTION = "org.apache.solr.common.SolrException"
# Our statuses Solr does not use → the one Solr answers in that case (an image over the byte
# cap: Solr's upload-limit error is a 400).
SOLR_STATUSES = {413: 400, 424: 500, 504: 503}


def format_doc(hit: Hit, params: FlowParams, config: EngineConfig) -> dict[str, Any]:
    """One document: the fields ``fl`` asks for (``id`` first), then ``score``."""
    doc: dict[str, Any] = {}
    if params.fl.wants(ID_FIELD):
        doc[ID_FIELD] = hit.id
    for name, value in hit.source.items():
        if name == ID_FIELD or name in HIDDEN_FIELDS or name in config.vectors:
            continue
        if value is not None and params.fl.wants(name):
            doc[name] = value
    if params.fl.score:
        doc["score"] = hit.score
    return doc


def page(hits: Sequence[Hit], params: FlowParams, offset: int) -> Sequence[Hit]:
    """The ``start .. start + rows`` hits out of those fetched from ``offset``."""
    skip = params.start - offset
    return hits[skip : skip + params.rows]


def format_response(
    result: SearchResult,
    params: FlowParams,
    config: EngineConfig,
    *,
    offset: int,
    qtime_ms: float,
) -> dict[str, Any]:
    """The JSON body of a successful ``/image`` search; ``result`` holds the hits fetched
    from ``offset`` (``FlowParams.window``)."""
    header: dict[str, Any] = {"status": 0, "QTime": round(qtime_ms)}
    if params.echo:
        header["params"] = params.echo
    response: dict[str, Any] = {"numFound": result.total, "start": params.start}
    if params.fl.score:
        response["maxScore"] = max((hit.score for hit in result.hits), default=0.0)
    response["numFoundExact"] = True
    response["docs"] = [
        format_doc(hit, params, config) for hit in page(result.hits, params, offset)
    ]
    return {"responseHeader": header, "response": response}


def error_body(status: int, message: str) -> dict[str, Any]:
    """Solr's error answer (``status`` is already the one Solr would send)."""
    return {
        "responseHeader": {"status": status, "QTime": 0},
        "error": {
            "metadata": ["error-class", SOLR_EXCEPTION, "root-error-class", SOLR_EXCEPTION],
            "msg": message,
            "code": status,
        },
    }
