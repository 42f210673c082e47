"""Prometheus metrics for operators: requests by route and status, latency, time per stage.

Each app gets its own registry (several apps in one process, as in tests, never clash). The
middleware labels requests by route template (``/6/{hashid}/_image_search``), never by raw
path, so label cardinality stays bounded. What a request observes is recorded once its
answer has been sent: the histograms' locks and bucket searches are off the latency path.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class _Deferred:
    """Stage observations of one request, recorded after its answer is sent."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []
        self.open = True


# The current request's deferred observations (tasks it starts inherit them until it ends).
_DEFERRED: ContextVar[_Deferred | None] = ContextVar("imgsearch_deferred_metrics", default=None)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "imgsearch_http_requests",
            "HTTP requests by route template, engine and status code",
            ["route", "hashid", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "imgsearch_http_request_seconds",
            "Time from request to response start, by route template",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "imgsearch_search_stage_seconds",
            "Time spent per search stage (decode, embed, opensearch)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        # Labelled children by label values: ``labels()`` validates and locks on every call
        # (five per search); the label sets are bounded (route templates, engines, statuses).
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_stage(self, stage: str, seconds: float) -> None:
        deferred = _DEFERRED.get()
        if deferred is not None and deferred.open:
            deferred.stages.append((stage, seconds))
        else:
            self._child(self.stage, stage).observe(seconds)

    def observe_latency(self, route: str, seconds: float) -> None:
        self._child(self.latency, route).observe(seconds)

    def count_request(self, route: str, hashid: str, status: str) -> None:
        self._child(self.requests, route, hashid, status).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts and times every HTTP request once the router has matched it."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, hashids: frozenset[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.hashids = hashids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        latency: float | None = None

        async def observing_send(message: Message) -> None:
            nonlocal status, latency
            if message["type"] == "http.response.start":
                status = int(message["status"])
                latency = time.perf_counter() - started
                message = _with_app_time(message, latency)
            await send(message)

        deferred = _Deferred()
        token = _DEFERRED.set(deferred)
        try:
            await self.app(scope, receive, observing_send)
        finally:
            _DEFERRED.reset(token)
            deferred.open = False
            route = getattr(scope.get("route"), "path", "unmatched")
            for stage, seconds in deferred.stages:
                self.metrics.observe_stage(stage, seconds)
            if latency is not None:
                self.metrics.observe_latency(route, latency)
            hashid = str(scope.get("path_params", {}).get("hashid", ""))
            if hashid and hashid not in self.hashids:
                hashid = "unknown"  # client-chosen paths must not create label values
            self.metrics.count_request(route, hashid, str(status))


def _with_app_time(message: Message, seconds: float) -> Message:
    """Append ``app;dur=`` (the whole app's time) to a ``Server-Timing`` the route set.

    Beside the route's parts (decode, embed, opensearch) it splits the rest of a request's
    latency into the app's own work and the HTTP transport around it.
    """
    headers = list(message.get("headers", []))
    for i, (name, value) in enumerate(headers):
        if name.lower() == b"server-timing":
            headers[i] = (name, value + b", app;dur=%.2f" % (seconds * 1000))
            return {**message, "headers": headers}
    return message
