"""An ``APIRoute`` for endpoints that take only the ``Request`` and return a ``Response``.

FastAPI still documents such an operation (its parameters come from ``openapi_extra``), but
calls the endpoint directly instead of solving dependencies, parsing headers and cookies and
validating parameters the endpoint has none of: on the hot search routes that machinery cost
about a fifth of the gateway's own time (BENCHMARKS, "The gateway's own overhead").
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute


class RequestRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        parameters = list(inspect.signature(endpoint).parameters.values())
        if (
            not inspect.iscoroutinefunction(endpoint)
            or len(parameters) != 1
            or parameters[0].annotation not in (Request, "Request")
        ):
            raise TypeError(f"{endpoint.__qualname__}: a RequestRoute takes (request: Request)")
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler: Callable[[Request], Coroutine[Any, Any, Response]] = self.endpoint
        return handler
