"""Ximilar's collection API, ``/similarity/{service}/v2/<method>``: thin routes over the service.

The ``collection-id`` header names the engine; ``Authorization: Token …`` is checked against
the engine's tokens (reads follow the engine's access rules, writes always need a token).
Bodies are JSON objects; answers carry ``status`` and ``statistics.OperationTime``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.deps import Service
from gateway.dialect import Dialect
from gateway.dialects.ximilar import params as p
from gateway.dialects.ximilar import response as r
from gateway.engines import EngineRuntime
from gateway.json_response import FastJSONResponse
from gateway.search.distances import distance_from_score, score_from_distance
from gateway.search.model import MultiQuery, SearchRequest, SearchResult, TermsBoost
from gateway.search.records import stored_record
from gateway.security import authorize, authorize_write
from gateway.service import CatalogService
from imgsearch.errors import InvalidRequest, MissingFields, UnknownEngine, UnknownItem

PREFIX = "/similarity/{service}/v2"
TAGS_FIELD = "tags"
TAGS_WEIGHT = 0.3  # share of the score that tag overlap (Jaccard) decides in *Tags* methods
MAX_RANGE = 1_000
NEAR_DUP_RADIUS = 5.0  # bits, Ximilar's default radius for near-duplicates

router = APIRouter(tags=["Ximilar visual search v2"])


@dataclass
class Call:
    """One request: the service, the engine, the parsed body and the start time."""

    service: CatalogService
    engine: EngineRuntime
    body: dict[str, Any]
    started: float

    @property
    def millis(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def ok(self, **extra: Any) -> dict[str, Any]:
        return r.envelope(*r.OK, self.millis, **extra)


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


async def _call(request: Request, service: CatalogService, write: bool) -> Call:
    started = time.perf_counter()
    hashid = request.headers.get("collection-id")
    if not hashid:
        raise MissingFields(["collection-id"])
    engine = service.engine(hashid)
    authorization = request.headers.get("authorization")
    if write:
        authorize_write(engine.config.gateway, authorization)
    else:
        request.state.cors_origin = authorize(
            engine.config.gateway, authorization, request.headers.get("origin")
        )
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("the request body is not valid JSON") from exc
    return Call(service, engine, p.body_object(body), started)


def _route(
    name: str, summary: str, *, write: bool = False, get: bool = False
) -> Callable[[Handler], Handler]:
    """Register ``handler`` as ``POST`` (and ``GET``) ``{PREFIX}/{name}``."""

    def register(handler: Handler) -> Handler:
        async def endpoint(service: str, request: Request, catalog: Service) -> Response:
            call = await _call(request, catalog, write)
            return FastJSONResponse(await handler(call))

        endpoint.__doc__ = handler.__doc__
        for method in ["GET", "POST"] if get else ["POST"]:
            router.add_api_route(f"{PREFIX}/{name}", endpoint, methods=[method], summary=summary,
                                 operation_id=f"ximilar_{name}_{method.lower()}",
                                 response_class=FastJSONResponse)  # fmt: skip
        return handler

    return register


# ---------------------------------------------------------------- basic operations


@_route("ping", "Information about the collection", get=True)
async def ping(call: Call) -> dict[str, Any]:
    """Checks the collection's index answers; ``info`` says what it is."""
    count = await call.service.count(call.engine)
    info = f"imgsearch index {call.engine.config.alias} ({count} records)"
    return call.ok(info=info)


@_route("insert", "Insert records (at most 10)", write=True)
async def insert(call: Call) -> dict[str, Any]:
    """Records with ``_id`` and ``_url`` or ``_base64``; searchable when this returns."""
    records = p.new_records(call.body)
    outcomes = await call.service.insert(call.engine, records)
    fields = p.fields_to_return(call.body, ["_id"])
    return await _write_answer(call, outcomes, r.insert_status(outcomes), fields)


@_route("nearDupsInsert", "Insert records unless a near-duplicate exists", write=True)
async def near_dups_insert(call: Call) -> dict[str, Any]:
    """As ``insert``, but a record within ``radius`` bits of an indexed image is skipped."""
    records = p.new_records(call.body)
    radius = p.number(call.body, "radius", NEAR_DUP_RADIUS, 0)
    outcomes = await call.service.insert(call.engine, records, near_duplicate_bits=int(radius))
    fields = p.fields_to_return(call.body, ["*"])
    return await _write_answer(call, outcomes, r.insert_status(outcomes), fields)


@_route("delete", "Delete records by _id", write=True)
async def delete(call: Call) -> dict[str, Any]:
    ids = p.record_ids(call.body)
    outcomes = await call.service.delete(call.engine, ids)
    written = sum(o.ok for o in outcomes)
    status = r.found_status(written, len(ids), 220, "records deleted")
    return r.write_answer(outcomes, status, call.millis)


@_route("get", "Records by _id")
async def get(call: Call) -> dict[str, Any]:
    ids = p.record_ids(call.body)
    fields = p.fields_to_return(call.body, ["*"])
    found = await call.service.get(call.engine, ids)
    status = r.found_status(len(found), len(ids), 205, "records found")
    answer = [r.project(found[i], fields) for i in ids if i in found]
    missing = [r.skipped(i, *r.NOT_FOUND) for i in ids if i not in found]
    body = r.envelope(*status, call.millis, answer_records=answer, answer_count=len(answer))
    if missing:
        body["skipped_records"] = missing
    return body


@_route("find", "Records matching a filter")
async def find(call: Call) -> dict[str, Any]:
    tree = p.filter_tree(call.body, call.engine.config)
    limit = p.integer(call.body, "limit", 10, 1, p.MAX_K)
    offset = p.integer(call.body, "from", 0, 0, 10_000)
    fields = p.fields_to_return(call.body, ["*"])
    page = await call.service.find(call.engine, tree, size=limit, offset=offset)
    answer = [r.project(record, fields) for record in page.records]
    return call.ok(answer_records=answer, answer_count=len(answer))


@_route("update", "Update fields of records by _id", write=True)
async def update(call: Call) -> dict[str, Any]:
    """Fields given replace stored ones; ``null`` removes a field; the image stays."""
    changes = p.updates(call.body)
    outcomes = await call.service.update(call.engine, changes)
    written = sum(o.ok for o in outcomes)
    status = r.found_status(written, len(changes), 205, "records found")
    return await _write_answer(call, outcomes, status, p.fields_to_return(call.body, ["*"]))


@_route("deleteByFilter", "Delete every record matching a filter", write=True)
async def delete_by_filter(call: Call) -> dict[str, Any]:
    tree = p.filter_tree(call.body, call.engine.config)
    if tree is None:
        raise MissingFields(["filter"])
    deleted = await call.service.delete_where(call.engine, tree)
    return call.ok(answer_count=deleted)


@_route("getRecordCount", "Number of records", get=True)
async def get_record_count(call: Call) -> dict[str, Any]:
    tree = p.filter_tree(call.body, call.engine.config)
    return call.ok(answer_count=await call.service.count(call.engine, tree))


@_route("allRecords", "All records, or one page of them")
async def all_records(call: Call) -> dict[str, Any]:
    """``size``/``page`` (body or query string) page through records in ``_id`` order."""
    tree = p.filter_tree(call.body, call.engine.config)
    fields = p.fields_to_return(call.body, ["_id"])
    if call.body.get("size") is None:
        records = [r.project(rec, fields) async for rec in call.service.scan(call.engine, tree)]
        return call.ok(answer_records=records, answer_count=len(records))
    size = p.integer(call.body, "size", 100, 1, p.MAX_K)
    page_no = p.integer(call.body, "page", 1, 1, 10_000)
    page = await call.service.find(call.engine, tree, size=size, offset=(page_no - 1) * size)
    answer = [r.project(rec, fields) for rec in page.records]
    body = call.ok(answer_records=answer, answer_count=len(answer), total_count=page.total)
    body["next"] = f"?page={page_no + 1}&size={size}" if page_no * size < page.total else None
    body["previous"] = f"?page={page_no - 1}&size={size}" if page_no > 1 else None
    return body


@_route("random", "Random records")
async def random_records(call: Call) -> dict[str, Any]:
    tree = p.filter_tree(call.body, call.engine.config)
    count = p.integer(call.body, "count", 1, 1, p.MAX_K)
    fields = p.fields_to_return(call.body, ["*"])
    records = await call.service.sample(call.engine, tree, size=count)
    answer = [r.project(rec, fields) for rec in records]
    return call.ok(answer_records=answer, answer_count=len(answer))


# ---------------------------------------------------------------- similarity


def _knn_request(call: Call, boost: TermsBoost | None = None) -> SearchRequest:
    k = p.integer(call.body, "k", 30, 1, p.MAX_K)
    start = p.integer(call.body, "from", 0, 0, 10_000 - k)
    tree = p.filter_tree(call.body, call.engine.config)
    product = p.product_field(call.body, call.engine.config)
    pool = start + k
    if boost is not None or product is not None:
        # re-rank (tags) or collapse (products) a wider visual pool to fill the page
        pool = min(max(5 * pool, 200), 10_000)
    return SearchRequest(
        engine=call.engine.hashid,
        vector_field=call.engine.vector_field,
        k=pool,
        filters={"filter": tree} if tree is not None else {},
        rpp=k,
        start=start,
        terms_boost=boost,
        collapse=product,
    )


async def _knn(call: Call, query: Any, boost: TermsBoost | None = None) -> dict[str, Any]:
    request = _knn_request(call, boost)
    result = await call.service.search(call.engine, query, request, call.service.timings())
    return _hits_answer(call, result, ["_id"])


def _hits_answer(call: Call, result: SearchResult, default: list[str]) -> dict[str, Any]:
    fields = p.fields_to_return(call.body, default)
    config = call.engine.config
    answer = [r.project(stored_record(h.source, h.id, config), fields) for h in result.hits]
    distances = [distance_from_score(h.score) for h in result.hits]
    queries = call.body.get("query_records") or [call.body.get("query_record")]
    return call.ok(answer_records=answer, answer_distances=distances,
                   answer_count=len(answer), query_records=_echo(queries))  # fmt: skip


def _echo(records: list[Any]) -> list[Any]:
    """Query records copied back, without the (large) base64 images."""
    return [
        {k: v for k, v in rec.items() if k != "_base64"} if isinstance(rec, dict) else rec
        for rec in records
    ]


@_route("visualKNN", "Visually similar records")
async def visual_knn(call: Call) -> dict[str, Any]:
    """``query_record`` by ``_id`` (itself excluded), ``_url`` or ``_base64``."""
    return await _knn(call, p.query_record(call.body))


@_route("visualKNNMulti", "Records similar to several images")
async def visual_knn_multi(call: Call) -> dict[str, Any]:
    """Ranked by the mean cosine similarity to all ``query_records``."""
    return await _knn(call, MultiQuery(tuple(p.query_records(call.body))))


def _tags_boost(call: Call, records: list[Any]) -> TermsBoost:
    if TAGS_FIELD not in call.engine.config.fields:
        raise InvalidRequest(f"this collection has no {TAGS_FIELD!r} field")
    return TermsBoost(TAGS_FIELD, p.tags_of(records, TAGS_FIELD), TAGS_WEIGHT)


@_route("visualTagsKNN", "Similar records by image and tags")
async def visual_tags_knn(call: Call) -> dict[str, Any]:
    """Score = 0.7 visual similarity + 0.3 tag overlap (Jaccard) with the query's tags."""
    query = p.query_record(call.body)
    return await _knn(call, query, _tags_boost(call, [call.body.get("query_record")]))


@_route("visualTagsKNNMulti", "Similar records by several images and their tags")
async def visual_tags_knn_multi(call: Call) -> dict[str, Any]:
    query = MultiQuery(tuple(p.query_records(call.body)))
    return await _knn(call, query, _tags_boost(call, list(call.body.get("query_records") or [])))


@_route("range", "Every record within a radius")
async def radius(call: Call) -> dict[str, Any]:
    """``radius`` is the Euclidean distance of normalised embeddings (0..2)."""
    distance = p.number(call.body, "radius", None, 0)
    tree = p.filter_tree(call.body, call.engine.config)
    request = SearchRequest(
        engine=call.engine.hashid,
        vector_field=call.engine.vector_field,
        k=MAX_RANGE,
        filters={"filter": tree} if tree is not None else {},
        rpp=MAX_RANGE,
        collapse=p.product_field(call.body, call.engine.config),
    )
    query = p.query_record(call.body)
    result = await call.service.within(call.engine, query, request,
                                       min_score=score_from_distance(distance),
                                       timings=call.service.timings())  # fmt: skip
    return _hits_answer(call, result, ["_id"])


@_route("visualRankRecords", "Rank given records by similarity to a query")
async def visual_rank_records(call: Call) -> dict[str, Any]:
    query = p.query_record(call.body)
    records = p.record_list(call.body, "records", p.MAX_LIST)
    candidates = [p.query_of(rec, f"records[{i}]") for i, rec in enumerate(records)]
    k = p.integer(call.body, "k", len(records), 1, p.MAX_LIST)
    limit = call.body.get("radius")
    max_distance = p.number(call.body, "radius", None, 0) if limit is not None else None
    scores = await call.service.similarities(
        call.engine, query, candidates, call.engine.vector_field, call.service.timings()
    )
    ranked: list[tuple[float, int]] = []
    skipped: list[dict[str, Any]] = []
    for i, score in enumerate(scores):
        label = str(records[i].get("_id", f"records[{i}]"))
        if isinstance(score, UnknownItem):
            skipped.append(r.skipped(label, *r.NOT_FOUND))
        elif isinstance(score, Exception):
            skipped.append(r.skipped(label, 400, score.message))
        else:
            distance = distance_from_score(score)
            if max_distance is None or distance <= max_distance:
                ranked.append((distance, i))
    ranked.sort()
    ranked = ranked[:k]
    fields = p.fields_to_return(call.body, ["_id", "_url", "_file"])
    answer = [{f: v for f, v in _echo([records[i]])[0].items() if f in fields or "*" in fields}
              for _, i in ranked]  # fmt: skip
    status = r.OK if not skipped else (206, "some of the records not found")
    body = r.envelope(*status, call.millis, answer_records=answer,
                      answer_distances=[d for d, _ in ranked], answer_count=len(answer),
                      query_records=_echo([call.body.get("query_record")]))  # fmt: skip
    if skipped:
        body["skipped_records"] = skipped
    return body


@_route("nearDuplicates", "Near-duplicate images of a query")
async def near_duplicates(call: Call) -> dict[str, Any]:
    """``radius`` in differing bits of the 64-bit perceptual hash (default 5)."""
    bits = int(p.number(call.body, "radius", NEAR_DUP_RADIUS, 0))
    tree = p.filter_tree(call.body, call.engine.config)
    found = await call.service.near_duplicates(
        call.engine, p.query_record(call.body), max_distance=bits, size=p.MAX_K, tree=tree
    )
    fields = p.fields_to_return(call.body, ["*"])
    records = await call.service.get(call.engine, [d.id for d in found]) if found else {}
    answer = [r.project(records[d.id], fields) for d in found if d.id in records]
    distances = [float(d.distance) for d in found if d.id in records]
    return call.ok(answer_records=answer, answer_distances=distances, answer_count=len(answer),
                   query_records=_echo([call.body.get("query_record")]))  # fmt: skip


@_route("allNearDupPairs", "Every pair of near-duplicate records")
async def all_near_dup_pairs(call: Call) -> dict[str, Any]:
    """Pairs within ``radius`` bits (default 5), closest first; exact, not sampled."""
    bits = int(p.number(call.body, "radius", NEAR_DUP_RADIUS, 0))
    tree = p.filter_tree(call.body, call.engine.config)
    pairs = await call.service.near_duplicate_pairs(call.engine, max_distance=bits, tree=tree)
    answer = [{"_id_1": a, "_id_2": b, "distance": float(d)} for a, b, d in pairs]
    return call.ok(answer_pairs=answer, answer_count=len(answer))


async def _write_answer(
    call: Call, outcomes: list[Any], status: tuple[int, str], fields: tuple[str, ...]
) -> dict[str, Any]:
    written = [o.id for o in outcomes if o.ok]
    projected: dict[str, dict[str, Any]] = {}
    if written and tuple(fields) != ("_id",):
        found = await call.service.get(call.engine, written)
        projected = {i: r.project(rec, fields) for i, rec in found.items()}
    return r.write_answer(outcomes, status, call.millis, projected)


DIALECT = Dialect(
    name="ximilar",
    router=router,
    path_prefix="/similarity/",
    error_body=r.error_body,
    messages={UnknownEngine: "collection not found"},
)
