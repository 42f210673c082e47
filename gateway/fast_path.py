"""Straight to the endpoint for the ``Request``-only routes, past FastAPI's router.

A search paid ~0.1 ms (a tenth of the gateway's own time) for FastAPI's route matching over
every dialect's routes and the wrappers around an endpoint (exception handling, two exit
stacks), none of which does anything for a ``RequestRoute``: it has no dependencies and no
parameters to validate. This middleware, the innermost one, matches those routes itself
(their own ``matches``, so path parameters and methods follow the same rules), sets the
scope keys the router would (``route``, ``endpoint``, ``path_params``, ``router``) and awaits
the endpoint. The routes must be the first that can match their paths (``create_app``
includes Doofinder's router first): a route here that matches the path but not the method
sends the request on to the router, which knows every route.

Errors get the app's own exception handlers, looked up as Starlette's ``ExceptionMiddleware``
does (an ``HTTPException``'s status code first, then the exception's MRO); an exception only
the catch-all (``Exception`` or 500) handles goes on up to ``ServerErrorMiddleware``, as
before. A method the route does not take, every other route, and requests traced by
FastAPI's native telemetry (which names spans from the router's choice) go on to FastAPI
unchanged.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.request_route import RequestRoute

_TELEMETRY_SCOPE_KEY = "fastapi.telemetry"


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[RequestRoute],
        router: ASGIApp,
        handlers: Mapping[Any, Any],
    ) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.router = router
        # The app's own mapping: handlers added after start-up are seen too.
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _TELEMETRY_SCOPE_KEY not in scope:
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    scope.setdefault("router", self.router)
                    await self._handle(route, scope, receive, send)
                    return
                if match is Match.PARTIAL:
                    break  # the router answers a wrong method (405) or finds another route
        await self.app(scope, receive, send)

    async def _handle(
        self, route: RequestRoute, scope: Scope, receive: Receive, send: Send
    ) -> None:
        request = Request(scope, receive, send)
        try:
            response: Response = await route.endpoint(request)
        except Exception as exc:
            handler = self._handler_for(exc)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)

    def _handler_for(self, exc: Exception) -> Any:
        if isinstance(exc, HTTPException) and exc.status_code != 500:  # 500: further out
            handler = self.handlers.get(exc.status_code)
            if handler is not None:
                return handler
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None  # ServerErrorMiddleware's, further out
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None
