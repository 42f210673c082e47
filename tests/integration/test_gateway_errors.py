"""Every client error gets Doofinder's ``{"error": ...}`` shape and the right status; no 500s."""

from __future__ import annotations

import base64
import io
import socket
import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.embedders.clip import write_seeded_checkpoint
from imgsearch.errors import ConfigError
from tests.integration.conftest import Catalog, engine_config
from tests.ports import free_port

URL = "/6/shop1/_image_search"
JSON = {"content-type": "application/json"}


def _b64(data: bytes) -> dict[str, str]:
    return {"image": base64.b64encode(data).decode()}


def _photo(catalog: Catalog) -> bytes:
    return catalog.images[sorted(catalog.images)[0]].read_bytes()


def _error(response: object, status: int) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    message: str = body["error"]
    return message


def _png_header_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "message"),
    [
        ("post", "/6/nope/_image_search", {"json": {"image": "x"}}, 404, "Mapping not found"),
        ("post", URL, {"json": {}}, 400, 'Following fields are missing: ["image"]'),
        ("post", URL, {"content": b""}, 400, 'Following fields are missing: ["image"]'),
        ("post", URL, {"content": b"{not json", "headers": {"content-type": "application/json"}},
         400, "Request body is not valid JSON"),
        ("post", URL, {"content": b'{"rpp": NaN}', "headers": JSON},
         400, "Request body is not valid JSON"),
        ("post", URL, {"content": b"\xef\xbb\xbf{}", "headers": JSON},
         400, 'Following fields are missing: ["image"]'),
        ("post", URL, {"json": ["a"]}, 400, "Request body must be a JSON object"),
        ("post", URL, {"json": {"image": 5}}, 400, "Field image must be a base64 string"),
        ("post", URL + "?rpp=0", {"json": {"image": "x"}}, 400, "Invalid rpp"),
        ("post", URL + "?rpp=101", {"json": {"image": "x"}}, 400, "Invalid rpp"),
        ("post", URL + "?rpp=abc", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?rpp=50&page=2", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?page=0", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?filter[nope][]=x", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?filter[price][between]=1", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?filter[price][gte]=cheap", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?filter[brand][gte]=A", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?sort[0][nope]=asc", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?sort[0][price]=sideways", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?facets[0][field]=title", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?facets[0][size]=3", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?filter_execution=xor", {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?session_id=" + "s" * 33, {"json": {"image": "x"}}, 400, None),
        ("post", URL + "?user_id=" + "u" * 37, {"json": {"image": "x"}}, 400, None),
        ("post", "/6/noimages/_image_search", {"json": {"image": "x"}}, 400,
         "Image Search is not enabled for this search engine"),
        ("get", "/6/shop1/_visually_similar", {}, 400, 'Following fields are missing: ["dfid"]'),
        ("get", "/6/shop1/_visually_similar?dfid=nope", {}, 404,
         "Image for the given dfid not found"),
        ("get", "/6/shop1/_visually_similar?dfid=other@product@" + "0" * 32, {}, 400, None),
    ],
)  # fmt: skip
def test_parameter_errors(
    gateway: TestClient,
    method: str,
    path: str,
    kwargs: dict[str, object],
    status: int,
    message: str | None,
) -> None:
    response = getattr(gateway, method)(path, **kwargs)
    text = _error(response, status)
    if message is not None:
        assert text == message
    else:
        assert len(text) > 5


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (b"definitely not an image", 400, "not an image"),
        (b"", 400, "missing"),
        (_png_header_claiming(20_000, 20_000), 400, "pixels"),
    ],
)
def test_bad_images(gateway: TestClient, payload: bytes, status: int, fragment: str) -> None:
    message = _error(gateway.post(URL, json=_b64(payload)), status)
    assert fragment in message.lower()


def test_truncated_jpeg_is_a_clear_400(gateway: TestClient, catalog: Catalog) -> None:
    photo = _photo(catalog)
    message = _error(gateway.post(URL, json=_b64(photo[: len(photo) // 3])), 400)
    assert "truncated" in message.lower() or "image" in message.lower()


def test_invalid_base64(gateway: TestClient) -> None:
    _error(gateway.post(URL, json={"image": "@@@not-base64@@@"}), 400)


def test_image_over_byte_cap_is_413(gateway: TestClient) -> None:
    noise = Image.effect_noise((900, 900), 100).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, format="PNG")
    data = buffer.getvalue()
    assert len(data) >= 1_600_000  # over the 1.5 MB image cap, under the 2 MB body cap
    response = gateway.post(URL, files={"image": ("big.png", data[:1_600_000], "image/png")})
    assert response.status_code == 413, response.text


def test_body_over_cap_is_413(gateway: TestClient) -> None:
    message = _error(gateway.post(URL, content=b"x" * 2_100_000), 413)
    assert "too large" in message.lower()


def test_tokens_and_origins(gateway: TestClient, catalog: Catalog) -> None:
    url = "/6/locked/_image_search"
    payload = _b64(_photo(catalog))
    assert _error(gateway.post(url, json=payload), 403) == "forbidden"
    bad = {"Authorization": "Token wrong"}
    assert _error(gateway.post(url, json=payload, headers=bad), 403) == "forbidden"
    evil = {"Origin": "https://evil.example"}
    assert _error(gateway.post(url, json=payload, headers=evil), 403) == "forbidden"
    ok = gateway.post(url, json=payload, headers={"Authorization": "Token secret-token"})
    assert ok.status_code == 200, ok.text
    origin = "https://www.shop.example"
    browser = gateway.post(url, json=payload, headers={"Origin": origin})
    assert browser.status_code == 200, browser.text
    assert browser.headers["access-control-allow-origin"] == origin
    preflight = gateway.options(
        url, headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    denied = gateway.options(url, headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers


def test_embedding_failure_is_424(
    gateway: TestClient, catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = gateway.app.state.service.registry.get("shop1").embedder()  # type: ignore[attr-defined]

    def explode(images: object) -> object:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(embedder, "embed_images", explode)
    message = _error(gateway.post(URL, json=_b64(_photo(catalog))), 424)
    assert message == "There was an error obtaining the embeddings, please try again."


@pytest.fixture
def image_server(catalog: Catalog) -> Iterator[str]:
    photo = _photo(catalog)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/photo.jpg":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(photo)))
                self.end_headers()
                self.wfile.write(photo)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_image_url(gateway: TestClient, catalog: Catalog, image_server: str) -> None:
    by_url = gateway.post(URL, json={"image_url": f"{image_server}/photo.jpg"})
    by_b64 = gateway.post(URL, json=_b64(_photo(catalog)))
    assert by_url.status_code == 200, by_url.text
    assert by_url.json()["results"] == by_b64.json()["results"]
    assert "404" in _error(gateway.post(URL, json={"image_url": f"{image_server}/gone.jpg"}), 400)
    local = gateway.post(URL, json={"image_url": str(catalog.images[sorted(catalog.images)[0]])})
    _error(local, 400)


def test_image_url_into_private_networks_is_refused_by_default(
    catalog: Catalog, opensearch_url: str, image_server: str
) -> None:
    app = create_app(GatewaySettings(opensearch_url=opensearch_url), {"shop1": catalog.config})
    with TestClient(app) as client:
        for url in (f"{image_server}/photo.jpg", "http://169.254.169.254/latest/meta-data"):
            message = _error(client.post(URL, json={"image_url": url}), 400)
            assert "non-public address" in message, message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung backend)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


def test_backend_down_is_503_and_slow_is_504(
    catalog: Catalog, silent_port: int, tiny_clip_checkpoint: Path
) -> None:
    payload = _b64(_photo(catalog))
    engines = {"shop1": catalog.config}
    down = create_app(GatewaySettings(opensearch_url=f"http://127.0.0.1:{free_port()}"), engines)
    with TestClient(down, raise_server_exceptions=False) as client:
        assert _error(client.post(URL, json=payload), 503) == "Search backend unavailable"
        assert client.get("/health").status_code == 503
    slow = create_app(
        GatewaySettings(opensearch_url=f"http://127.0.0.1:{silent_port}", search_timeout_s=0.5),
        engines,
    )
    with TestClient(slow, raise_server_exceptions=False) as client:
        assert _error(client.post(URL, json=payload), 504) == "Search backend timed out"


def test_health(gateway: TestClient) -> None:
    response = gateway.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["engines"]["shop1"] == "ok"


_key = st.sampled_from(
    ["filter[brand][]", "filter[price][gte]", "filter[x]", "facets[0][field]", "facets[a][size]",
     "sort[0][price]", "sort", "rpp", "page", "exclude[brand]", "filter[[", "filter]", "dfid",
     "filter_execution", "session_id", "facets[0][type]", "filter[price][lt][x]"]
)  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(pairs=st.lists(st.tuples(_key, st.text(max_size=12)), max_size=6))
def test_no_parameter_combination_gives_a_500(
    gateway: TestClient, pairs: list[tuple[str, str]]
) -> None:
    response = gateway.get("/6/shop1/_visually_similar", params=[("dfid", "x"), *pairs])
    assert response.status_code < 500, (pairs, response.text)
    assert "error" in response.json() or response.status_code == 200


def test_embedder_mismatch_is_refused(
    catalog: Catalog, gateway_settings: GatewaySettings, tmp_path: Path
) -> None:
    """A gateway whose model differs from the one that wrote the index must not search it."""
    other = write_seeded_checkpoint(tmp_path / "other.pt", seed=1)
    config = engine_config("shop1", catalog.config.alias, other)
    with TestClient(create_app(gateway_settings, {"shop1": config})) as client:
        message = _error(client.post(URL, json=_b64(_photo(catalog))), 409)
    assert "Rebuild the index" in message and "sha256:" in message


def test_missing_model_weights_stop_start_up(catalog: Catalog, tmp_path: Path) -> None:
    broken = engine_config("shop1", catalog.config.alias, tmp_path / "missing.pt")
    app = create_app(GatewaySettings(), {"shop1": broken})
    with pytest.raises(ConfigError, match=r"missing\.pt"), TestClient(app):
        pass
