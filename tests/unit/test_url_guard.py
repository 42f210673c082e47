"""The SSRF guard refuses non-public hosts, table-style, without any network traffic."""

from __future__ import annotations

import httpx
import pytest

from imgsearch.errors import ImageFetchError
from imgsearch.url_guard import refuse_non_public_hosts


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/x.jpg", "loopback"),
        ("http://localhost:9200/_cat/indices", "loopback by name"),
        ("http://10.1.2.3/x.jpg", "private 10/8"),
        ("http://192.168.0.10/x.jpg", "private 192.168/16"),
        ("http://172.16.5.5/x.jpg", "private 172.16/12"),
        ("http://169.254.169.254/latest/meta-data", "link-local cloud metadata"),
        ("http://[::1]/x.jpg", "IPv6 loopback"),
        ("http://[fd00::1]/x.jpg", "IPv6 unique local"),
        ("http://0.0.0.0/x.jpg", "unspecified"),
        ("http://no-such-host.invalid/x.jpg", "does not resolve"),
    ],
)
def test_refused(url: str, why: str) -> None:
    with pytest.raises(ImageFetchError):
        refuse_non_public_hosts(httpx.Request("GET", url))


@pytest.mark.parametrize("url", ["http://8.8.8.8/x.jpg", "https://[2001:4860:4860::8888]/x.jpg"])
def test_public_addresses_pass(url: str) -> None:
    refuse_non_public_hosts(httpx.Request("GET", url))  # literal IPs: no DNS lookup needed
