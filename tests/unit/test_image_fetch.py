"""fetch_image_bytes against a real HTTP server on 127.0.0.1 and real local files."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.errors import ImageFetchError, PayloadTooLarge
from imgsearch.image_fetch import FetchRetry, FetchTimeouts, fetch_image_bytes
from imgsearch.images import ImageLimits

LIMITS = ImageLimits(max_bytes=100_000)
FAST_RETRY = FetchRetry(attempts=3, initial_backoff=0.01, max_backoff=0.02)
SHORT = FetchTimeouts(connect=1.0, read=0.3, total=2.0)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, "PNG")
    return buffer.getvalue()


PNG = _png()


class _Handler(BaseHTTPRequestHandler):
    hits: Counter[str] = Counter()

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""

    def _send(self, status: int, body: bytes = b"", length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "image/png")
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up (timeout or byte cap), as the test wanted.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path
        self.hits[path] += 1
        if path == "/image.png":
            self._send(200, PNG)
        elif path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/image.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/flaky":  # 503 twice, then the image
            self._send(503) if self.hits[path] <= 2 else self._send(200, PNG)
        elif path == "/always-503":
            self._send(503)
        elif path == "/busy":
            self._send(429)
        elif path == "/forbidden":
            self._send(403)
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, PNG)
        elif path == "/big":
            self._send(200, b"x" * (LIMITS.max_bytes + 1))
        elif path == "/big-unannounced":  # no Content-Length: only streaming can catch it
            self._send(200, b"x" * (LIMITS.max_bytes * 3), length=False)
        else:
            self._send(404)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _reset_hits() -> None:
    _Handler.hits.clear()


def fetch(url: str, **kwargs: object) -> bytes:
    options: dict[str, object] = {"timeout": SHORT, "retry": FAST_RETRY} | kwargs
    return fetch_image_bytes(url, LIMITS, **options)  # type: ignore[arg-type]


def test_fetches_an_image(server: str) -> None:
    assert fetch(f"{server}/image.png") == PNG


def test_follows_redirects(server: str) -> None:
    assert fetch(f"{server}/redirect") == PNG


def test_404_is_not_retried_and_says_not_found(server: str) -> None:
    with pytest.raises(ImageFetchError, match=r"not found \(HTTP 404\)"):
        fetch(f"{server}/missing.png")
    assert _Handler.hits["/missing.png"] == 1


def test_403_is_not_retried(server: str) -> None:
    with pytest.raises(ImageFetchError, match="HTTP 403"):
        fetch(f"{server}/forbidden")
    assert _Handler.hits["/forbidden"] == 1


def test_503_then_200_is_retried_to_success(server: str) -> None:
    assert fetch(f"{server}/flaky") == PNG
    assert _Handler.hits["/flaky"] == 3


@pytest.mark.parametrize(("path", "code"), [("/always-503", 503), ("/busy", 429)])
def test_persistent_transient_errors_give_up_after_the_attempts(
    server: str, path: str, code: int
) -> None:
    with pytest.raises(ImageFetchError, match=rf"HTTP {code} \(after 3 attempts\)"):
        fetch(f"{server}{path}")
    assert _Handler.hits[path] == 3


def test_slow_server_times_out(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(ImageFetchError, match="timed out"):
        fetch(f"{server}/slow", retry=FetchRetry(attempts=2, initial_backoff=0.01))
    assert time.monotonic() - started < 1.5
    assert _Handler.hits["/slow"] == 2


def test_connection_refused_is_an_error_with_reason() -> None:
    with pytest.raises(ImageFetchError, match="connection failed"):
        fetch("http://127.0.0.1:9/x.png")  # port 9 (discard) is closed here


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_oversized_body_is_refused(server: str, path: str) -> None:
    with pytest.raises(PayloadTooLarge):
        fetch(f"{server}{path}")
    assert _Handler.hits[path] == 1


def test_shared_client_is_used_and_left_open(server: str) -> None:
    import httpx

    with httpx.Client() as client:
        assert fetch(f"{server}/image.png", client=client) == PNG
        assert not client.is_closed


def test_local_path_and_file_url(tmp_path: Path) -> None:
    path = tmp_path / "a b.png"
    path.write_bytes(PNG)
    assert fetch_image_bytes(str(path), LIMITS) == PNG
    assert fetch_image_bytes(path.as_uri(), LIMITS) == PNG


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(ImageFetchError, match="not found"):
        fetch_image_bytes(str(tmp_path / "nope.png"), LIMITS)
    with pytest.raises(ImageFetchError, match="not a regular file"):
        fetch_image_bytes(str(tmp_path), LIMITS)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (LIMITS.max_bytes + 1))
    with pytest.raises(PayloadTooLarge):
        fetch_image_bytes(str(big), LIMITS)


def test_local_files_can_be_forbidden(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(PNG)
    for source in (str(path), path.as_uri()):
        with pytest.raises(ImageFetchError, match="not allowed"):
            fetch_image_bytes(source, LIMITS, allow_local=False)


@pytest.mark.parametrize(
    "source", ["ftp://example.com/a.png", "data:image/png;base64,AAAA", "gopher://x/"]
)
def test_other_schemes_are_refused(source: str) -> None:
    with pytest.raises(ImageFetchError, match="unsupported URL scheme"):
        fetch_image_bytes(source, LIMITS)


def test_file_url_with_remote_host_is_refused() -> None:
    with pytest.raises(ImageFetchError, match="remote host"):
        fetch_image_bytes("file://example.com/etc/passwd", LIMITS)
