"""Token and origin rules, table-style."""

from __future__ import annotations

import pytest

from gateway.security import authorize, cors_headers, origin_allowed
from imgsearch.engine_config import GatewaySpec
from imgsearch.errors import Forbidden

LOCKED = GatewaySpec(tokens=["k1", "k2"], allowed_origins=["https://*.shop.example"])
ORIGINS_ONLY = GatewaySpec(allowed_origins=["https://shop.example", "http://localhost:*"])
OPEN = GatewaySpec()


@pytest.mark.parametrize(
    ("origin", "patterns", "allowed", "why"),
    [
        ("https://www.shop.example", ["https://*.shop.example"], True, "subdomain wildcard"),
        ("https://a.b.shop.example", ["https://*.shop.example"], True, "deeper subdomain"),
        ("https://shop.example", ["https://*.shop.example"], False, "apex is not a subdomain"),
        ("http://www.shop.example", ["https://*.shop.example"], False, "scheme must match"),
        ("https://www.shop.example.evil", ["https://*.shop.example"], False, "suffix attack"),
        ("https://evilshop.example", ["https://*.shop.example"], False, "no dot before"),
        ("https://www.shop.example", ["*.shop.example"], True, "pattern without scheme"),
        ("http://localhost:5173", ["http://localhost:*"], True, "any port"),
        ("https://SHOP.example", ["https://shop.example"], True, "hosts are case-insensitive"),
        ("https://shop.example", [], False, "nothing allowed"),
    ],
)
def test_origin_patterns(origin: str, patterns: list[str], allowed: bool, why: str) -> None:
    assert origin_allowed(origin, patterns) is allowed, why


@pytest.mark.parametrize(
    ("spec", "authorization", "origin", "result", "why"),
    [
        (LOCKED, "Token k1", None, None, "server call with a valid token"),
        (LOCKED, "token k2", "https://a.shop.example", "https://a.shop.example", "token + origin"),
        (LOCKED, None, "https://a.shop.example", "https://a.shop.example", "allowed browser"),
        (ORIGINS_ONLY, None, "https://shop.example", "https://shop.example", "exact origin"),
        (OPEN, None, "https://anywhere.example", "https://anywhere.example", "open engine"),
        (OPEN, None, None, None, "open engine, no origin"),
    ],
)
def test_allowed(
    spec: GatewaySpec, authorization: str | None, origin: str | None, result: str | None, why: str
) -> None:
    assert authorize(spec, authorization, origin) == result, why


@pytest.mark.parametrize(
    ("spec", "authorization", "origin", "why"),
    [
        (LOCKED, "Token nope", None, "wrong token"),
        (LOCKED, "Bearer k1", None, "wrong scheme"),
        (LOCKED, "Token", None, "empty token"),
        (LOCKED, None, None, "no token, no origin"),
        (LOCKED, None, "https://evil.example", "origin not allowed"),
        (LOCKED, "Token nope", "https://a.shop.example", "bad token beats a good origin"),
        (OPEN, "Token anything", None, "a token on an engine without tokens"),
    ],
)
def test_forbidden(
    spec: GatewaySpec, authorization: str | None, origin: str | None, why: str
) -> None:
    with pytest.raises(Forbidden):
        authorize(spec, authorization, origin)


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        (None, {}),
        ("", {}),
        ("https://a.shop.example", {"Access-Control-Allow-Origin": "https://a.shop.example",
                                    "Vary": "Origin"}),
    ],
)  # fmt: skip
def test_cors_headers(origin: str | None, expected: dict[str, str]) -> None:
    assert cors_headers(origin) == expected
