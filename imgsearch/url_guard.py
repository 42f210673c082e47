"""Refuse image URLs that point into private networks (server-side request forgery).

The gateway fetches ``image_url`` for anonymous clients; without this a client could make it
read from loopback, the cluster's private network or a cloud metadata address. The check runs
on every request the HTTP client sends, so redirects are checked too. It resolves the name
itself, so a DNS answer that changes between this check and the connection (rebinding) is
not covered: keep the gateway's egress firewalled if that matters.
"""

from __future__ import annotations

import ipaddress
import socket

import httpx

from imgsearch.errors import ImageFetchError


def refuse_non_public_hosts(request: httpx.Request) -> None:
    """httpx request hook: raise ImageFetchError unless every address of the host is global."""
    host = request.url.host
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ImageFetchError(f"cannot resolve image host {host!r}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise ImageFetchError(f"image host {host!r} resolves to a non-public address; refused")


def public_only_client(headers: dict[str, str] | None = None) -> httpx.Client:
    """An httpx client that refuses every request (and redirect) to a non-public address."""
    return httpx.Client(headers=headers, event_hooks={"request": [refuse_non_public_hosts]})
