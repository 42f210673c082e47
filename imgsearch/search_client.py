"""OpenSearch client construction, its JSON serializer, and opensearch-py errors → ours."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import urllib3
from opensearchpy import OpenSearch
from opensearchpy import exceptions as os_exc
from opensearchpy.serializer import JSONSerializer

from imgsearch.errors import (
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
)

logger = logging.getLogger(__name__)


class FastJSONSerializer(JSONSerializer):
    """orjson instead of json: query vectors and bulk payloads are thousands of floats.

    ``json.dumps`` of one search's ``_msearch`` (two 512-float vectors) takes ~0.6 ms; orjson
    ~20x less. Types orjson does not know fall back to opensearch-py's ``default``.
    """

    _OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

    def dumps(self, data: Any) -> Any:
        if isinstance(data, str | bytes):
            return data
        try:
            return orjson.dumps(data, default=self.default, option=self._OPTIONS).decode()
        except TypeError as exc:
            raise os_exc.SerializationError(data, exc) from exc

    def loads(self, s: str) -> Any:
        try:
            return orjson.loads(s)
        except orjson.JSONDecodeError as exc:
            raise os_exc.SerializationError(s, exc) from exc


def make_client(
    url: str,
    *,
    timeout_s: float = 10.0,
    connect_timeout_s: float | None = None,
    max_retries: int = 2,
    pool_size: int | None = None,
) -> OpenSearch:
    """A client for one cluster: ``url`` names one node or several, comma-separated.

    ``timeout_s`` bounds each read, ``connect_timeout_s`` (default: ``timeout_s``) each
    connection attempt. A refused or failed connection is retried up to ``max_retries``
    times on the next node, so a stopped cluster answers within
    ``(max_retries + 1) * connect_timeout_s`` and a dead node costs one quick retry; read
    timeouts are not retried. ``pool_size`` caps the keep-alive connections per node (one
    per concurrent request; urllib3's default is 10).
    """
    hosts = node_urls(url)
    timeout = urllib3.Timeout(connect=connect_timeout_s or timeout_s, read=timeout_s)
    extra: dict[str, Any] = {} if pool_size is None else {"pool_maxsize": pool_size}
    return OpenSearch(
        hosts=hosts,
        serializer=FastJSONSerializer(),
        timeout=timeout,
        max_retries=max_retries,
        retry_on_timeout=False,
        retry_on_status=(502, 503),
        http_compress=False,
        **extra,
    )


def node_urls(url: str) -> list[str]:
    """``http://a:9200,http://b:9200`` → one URL per node (blanks dropped)."""
    hosts = [part.strip().rstrip("/") for part in url.split(",") if part.strip()]
    if not hosts:
        raise ConfigError("no OpenSearch URL given")
    return hosts


@contextmanager
def backend_errors() -> Iterator[None]:
    """Translate opensearch-py exceptions into the project's error hierarchy."""
    try:
        yield
    except os_exc.ConnectionTimeout as exc:
        raise BackendTimeout("Search backend timed out") from exc
    except os_exc.ConnectionError as exc:
        raise BackendUnavailable("Search backend unavailable") from exc
    except os_exc.NotFoundError as exc:
        raise NotFound(_reason(exc)) from exc
    except os_exc.RequestError as exc:
        logger.warning("OpenSearch rejected a request: %s", _reason(exc))
        raise InvalidRequest(f"Invalid query: {_reason(exc)}") from exc
    except os_exc.TransportError as exc:
        logger.error("OpenSearch error %s: %s", exc.status_code, _reason(exc))
        raise BackendUnavailable("Search backend error") from exc


def _reason(exc: os_exc.TransportError) -> str:
    info = exc.info
    if isinstance(info, dict):
        error = info.get("error")
        if isinstance(error, dict):
            root = error.get("root_cause") or [error]
            first = root[0] if isinstance(root, list) and root else error
            if isinstance(first, dict):
                return str(first.get("reason") or first.get("type") or error)
        if error:
            return str(error)
    return str(exc.error)
