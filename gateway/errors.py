"""Map the project's error hierarchy to HTTP, in one place, in Doofinder's error shape.

Every error body is ``{"error": "<message>"}``; unexpected exceptions become a 500 whose
body hides internals (the traceback goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    (e.EmbeddingFailed, 424),
    (e.BackendTimeout, 504),
    (e.BackendUnavailable, 503),
    (e.ConfigError, 500),
)

EMBEDDING_FAILED_MESSAGE = "There was an error obtaining the embeddings, please try again."


def status_for(exc: e.ImgSearchError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(request: Request, status: int, message: str) -> JSONResponse:
    headers = cors_headers(getattr(request.state, "cors_origin", None))
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.ImgSearchError)
    status = status_for(exc)
    if status >= 500 or status == 424:
        logger.warning("%s %s -> %d: %s", request.method, request.url.path, status, exc.message)
    message = EMBEDDING_FAILED_MESSAGE if isinstance(exc, e.EmbeddingFailed) else exc.message
    return error_response(request, status, message)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return error_response(request, 400, "Invalid request: " + "; ".join(parts))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "Internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(e.ImgSearchError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
