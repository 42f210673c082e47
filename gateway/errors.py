"""Map the project's error hierarchy to HTTP, in one place, in each dialect's error shape.

The status comes from one ordered table; the body from the dialect whose path prefix the
request falls under (``{"error": "<message>"}`` elsewhere). Unexpected exceptions become a
500 whose body hides internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.dialect import Dialect, plain_error_body
from gateway.security import cors_headers
from imgsearch import errors as e

logger = logging.getLogger(__name__)

# Ordered: the first matching class wins, so subclasses come before their bases.
STATUS_BY_ERROR: tuple[tuple[type[e.ImgSearchError], int], ...] = (
    (e.ImageFetchError, 400),
    (e.InvalidRequest, 400),
    (e.PayloadTooLarge, 413),
    (e.Forbidden, 403),
    (e.NotFound, 404),
    (e.EmbedderMismatch, 409),
    (e.Conflict, 409),
    (e.EmbeddingFailed, 424),
    (e.BackendTimeout, 504),
    (e.BackendUnavailable, 503),
    (e.ConfigError, 500),
)

# EmbeddingFailed carries the model's own exception text: never shown to clients.
EMBEDDING_FAILED_MESSAGE = "Embedding the image failed, please try again."


def status_for(exc: e.ImgSearchError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


class ErrorShapes:
    """Which dialect's shape and words an error answer on a given path uses."""

    def __init__(self, dialects: Sequence[Dialect]) -> None:
        self._dialects = tuple(dialects)

    def dialect(self, path: str) -> Dialect | None:
        """The dialect with the longest prefix of ``path`` (``/api/cores/`` before ``/api/``),
        matched on whole path segments (``/api/collection/`` is not ``/api/collections/``)."""
        matching = [(len(p), d) for d in self._dialects if (p := d.prefix_of(path)) is not None]
        return max(matching, key=lambda m: m[0], default=(0, None))[1]

    def status(self, path: str, status: int) -> int:
        dialect = self.dialect(path)
        return dialect.statuses.get(status, status) if dialect else status

    def body(self, path: str, status: int, message: str) -> dict[str, object]:
        dialect = self.dialect(path)
        return (dialect.error_body if dialect else plain_error_body)(status, message)

    def message(self, path: str, exc: e.ImgSearchError) -> str:
        dialect = self.dialect(path)
        worded = dialect.message_for(exc) if dialect else None
        if worded is not None:
            return worded
        return EMBEDDING_FAILED_MESSAGE if isinstance(exc, e.EmbeddingFailed) else exc.message


def install_error_handlers(app: FastAPI, shapes: ErrorShapes) -> None:
    def respond(request: Request, status: int, message: str) -> JSONResponse:
        headers = cors_headers(getattr(request.state, "cors_origin", None))
        status = shapes.status(request.url.path, status)
        body = shapes.body(request.url.path, status, message)
        return JSONResponse(body, status_code=status, headers=headers)

    async def domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, e.ImgSearchError)
        status = status_for(exc)
        if status >= 500 or status == 424:
            logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc.message)
        return respond(request, status, shapes.message(request.url.path, exc))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return respond(request, 400, "Invalid request: " + "; ".join(parts))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return respond(request, exc.status_code, str(exc.detail))

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return respond(request, 500, "Internal server error")

    app.add_exception_handler(e.ImgSearchError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
