"""Read image bytes from an http(s) URL, a ``file://`` URL or a local path, within the byte cap.

Only transient failures (connection errors, timeouts, 429, 5xx) are retried; a 404 will not
become a 200 by asking again. Every failure is an ``ImageFetchError`` whose message says what
happened, or ``PayloadTooLarge`` when the body is over the cap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from imgsearch.errors import ImageFetchError, PayloadTooLarge
from imgsearch.images import ImageLimits

_HEADERS = {"User-Agent": "imgsearch/0.1", "Accept": "image/*", "Accept-Encoding": "identity"}


@dataclass(frozen=True)
class FetchTimeouts:
    """Seconds. ``total`` bounds one attempt, so a server dripping bytes cannot hold us."""

    connect: float = 3.0
    read: float = 10.0
    total: float = 30.0


@dataclass(frozen=True)
class FetchRetry:
    """Attempts (including the first) and exponential backoff between them, in seconds."""

    attempts: int = 3
    initial_backoff: float = 0.25
    max_backoff: float = 2.0


class _TransientError(Exception):
    """A failure worth retrying; becomes ImageFetchError when the attempts run out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def fetch_image_bytes(
    source: str,
    limits: ImageLimits,
    *,
    client: httpx.Client | None = None,
    timeout: FetchTimeouts = FetchTimeouts(),
    retry: FetchRetry = FetchRetry(),
    allow_local: bool = True,
) -> bytes:
    """The bytes at ``source``; pass ``allow_local=False`` for sources from untrusted users."""
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_http(source, limits, client, timeout, retry)
    is_drive_letter = len(scheme) == 1  # "C:\\x.jpg" parses with scheme "c"
    if scheme not in ("", "file") and not is_drive_letter:
        raise ImageFetchError(f"unsupported URL scheme {parts.scheme!r}; use http, https or file")
    if not allow_local:
        raise ImageFetchError("local files are not allowed here; use an http(s) URL")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ImageFetchError(f"file URL with a remote host {parts.netloc!r} is not supported")
        return read_local_bytes(Path(url2pathname(unquote(parts.path))), limits)
    return read_local_bytes(Path(source), limits)


def read_local_bytes(path: Path, limits: ImageLimits) -> bytes:
    """Read a local file, refusing anything over the byte cap before reading it."""
    try:
        if not path.is_file():
            reason = "is not a regular file" if path.exists() else "not found"
            raise ImageFetchError(f"{path}: {reason}")
        size = path.stat().st_size
        if size > limits.max_bytes:
            raise PayloadTooLarge(f"{path} is {size} bytes; the limit is {limits.max_bytes}")
        with path.open("rb") as handle:
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise ImageFetchError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > limits.max_bytes:  # the file grew while we read it
        raise PayloadTooLarge(f"{path} is over the limit of {limits.max_bytes} bytes")
    return data


def _fetch_http(
    url: str,
    limits: ImageLimits,
    client: httpx.Client | None,
    timeout: FetchTimeouts,
    retry: FetchRetry,
) -> bytes:
    own_client = client is None
    http = client if client is not None else httpx.Client(headers=_HEADERS)
    retrying = Retrying(
        stop=stop_after_attempt(max(1, retry.attempts)),
        wait=wait_exponential(multiplier=retry.initial_backoff, max=retry.max_backoff),
        retry=retry_if_exception_type(_TransientError),
        reraise=True,
    )
    try:
        for attempt in retrying:
            with attempt:
                return _get_once(http, url, limits, timeout)
    except _TransientError as exc:
        attempts = max(1, retry.attempts)
        raise ImageFetchError(f"{url}: {exc.reason} (after {attempts} attempts)") from exc
    finally:
        if own_client:
            http.close()
    raise ImageFetchError(f"{url}: no attempt was made")  # unreachable: stop needs >= 1


def _get_once(client: httpx.Client, url: str, limits: ImageLimits, timeout: FetchTimeouts) -> bytes:
    per_phase = httpx.Timeout(timeout.read, connect=timeout.connect)
    deadline = time.monotonic() + timeout.total
    try:
        with client.stream(
            "GET", url, timeout=per_phase, follow_redirects=True, headers=_HEADERS
        ) as response:
            _check_status(response)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limits.max_bytes:
                raise PayloadTooLarge(
                    f"{url}: body is {declared} bytes; the limit is {limits.max_bytes}"
                )
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > limits.max_bytes:
                    raise PayloadTooLarge(f"{url}: body is over the limit of {limits.max_bytes}")
                if time.monotonic() > deadline:
                    raise _TransientError(f"timed out: download took over {timeout.total}s")
            return bytes(body)
    except httpx.TimeoutException as exc:
        raise _TransientError(f"timed out ({type(exc).__name__})") from exc
    except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
        raise _TransientError(f"connection failed ({type(exc).__name__}: {exc})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise ImageFetchError(f"{url}: request failed ({type(exc).__name__}: {exc})") from exc


def _check_status(response: httpx.Response) -> None:
    code = response.status_code
    if code == 429 or code >= 500:
        raise _TransientError(f"server answered HTTP {code}")
    if code == 404 or code == 410:
        raise ImageFetchError(f"{response.url}: not found (HTTP {code})")
    if code >= 400:
        raise ImageFetchError(f"{response.url}: server refused the request (HTTP {code})")
    if code >= 300:
        raise ImageFetchError(f"{response.url}: unfollowed redirect (HTTP {code})")
