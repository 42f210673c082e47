"""Per-engine access rules: server tokens and allowed browser origins (CORS).

Rules: a request with ``Authorization: Token <key>`` must carry one of the engine's tokens.
A request without a token is a browser call: when the engine restricts access (tokens or
origins configured), its ``Origin`` must match an allowed origin pattern (``*`` wildcards,
e.g. ``https://*.shop.example``). An engine with neither is open (local demo use).
"""

from __future__ import annotations

import hmac
import re
from functools import lru_cache

from imgsearch.engine_config import GatewaySpec
from imgsearch.errors import Forbidden


@lru_cache(maxsize=256)
def _origin_pattern(pattern: str) -> re.Pattern[str]:
    if "://" not in pattern:
        pattern = "*://" + pattern
    parts = [re.escape(p) for p in pattern.split("*")]
    return re.compile("^" + "[^/]*".join(parts) + "$", re.IGNORECASE)


def origin_allowed(origin: str, patterns: list[str]) -> bool:
    return any(_origin_pattern(p).match(origin) for p in patterns)


def authorize(spec: GatewaySpec, authorization: str | None, origin: str | None) -> str | None:
    """Raise Forbidden unless allowed; return the origin to echo in CORS headers, if any."""
    cors_origin = origin if origin and origin_allowed(origin, spec.allowed_origins) else None
    if authorization is not None:
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "token" or not any(
            hmac.compare_digest(key.strip().encode(), t.encode()) for t in spec.tokens
        ):
            raise Forbidden("forbidden")
        return cors_origin
    restricted = bool(spec.tokens or spec.allowed_origins)
    if not restricted:
        return origin
    if cors_origin is None:
        raise Forbidden("forbidden")
    return cors_origin


def cors_headers(origin: str | None) -> dict[str, str]:
    """Headers that let a browser page from ``origin`` read the answer; none without one."""
    if not origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def preflight_headers(spec: GatewaySpec, origin: str | None) -> dict[str, str]:
    """CORS preflight answer headers: only for an origin the engine accepts (else none)."""
    allowed = authorize(spec, None, origin) if origin else None
    if not allowed:
        return {}
    return {
        **cors_headers(allowed),
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
    }


def authorize_write(spec: GatewaySpec, authorization: str | None) -> None:
    """Writes need a server token, always: an engine without tokens is read-only."""
    if not spec.tokens:
        raise Forbidden("writes are disabled: the engine has no API tokens (gateway.tokens)")
    if authorization is None:
        raise Forbidden("forbidden")
    authorize(spec, authorization, None)
