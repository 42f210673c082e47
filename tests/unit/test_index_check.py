"""The index's embedder check around a query's embedding (``ServiceCore._checked_query_vector``).

The index's answer (its ``_meta``) is played by an overridden ``_ensure_index_matches`` that
waits like a round trip and then runs the engine's real ``verify``; the embedding is the
real one (colour descriptor, worker thread), as is the adapter the "index" may name.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import numpy as np
import pytest
from opensearchpy import OpenSearch
from PIL import Image

from gateway.engines import EngineRegistry, EngineRuntime
from gateway.metrics import GatewayMetrics
from gateway.search.model import ImageQuery, Query
from gateway.service.core import QueryVector, ServiceCore
from gateway.service.timings import Timings
from gateway.settings import GatewaySettings
from imgsearch.embedders.adapted import adapt
from imgsearch.embedders.base import EmbedderInfo
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.engine_config import EngineConfig
from imgsearch.errors import EmbedderMismatch, ImgSearchError
from imgsearch.finetune.adapter import Adapter
from tests.tolerance import assert_same_vector

FIELD = "color"
ROUND_TRIP_S = 0.05


def _photo() -> bytes:
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    image.paste((20, 40, 220), (0, 0, 32, 64))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class _IndexPlayer(ServiceCore):
    """A service whose index answers ``indexed`` after a round trip; logs what ran when."""

    def __init__(self, indexed: EmbedderInfo) -> None:
        super().__init__(
            client=OpenSearch(hosts=["http://127.0.0.1:9"]),  # never called
            registry=EngineRegistry({}, lambda _c, _f: ColorEmbedder()),
            settings=GatewaySettings(),
            metrics=GatewayMetrics(),
        )
        self.indexed = indexed
        self.log: list[str] = []

    async def _ensure_index_matches(self, engine: EngineRuntime, vector_field: str) -> None:
        if engine.verified(vector_field):
            return
        self.log.append("check")
        await asyncio.sleep(ROUND_TRIP_S)
        self.log.append("checked")
        engine.verify({vector_field: self.indexed}, vector_field)

    async def _query_vector(
        self, engine: EngineRuntime, query: Query, vector_field: str, timings: Timings
    ) -> QueryVector:
        self.log.append("embed")
        try:
            return await super()._query_vector(engine, query, vector_field, timings)
        finally:
            self.log.append("embedded")


@pytest.fixture
def base() -> ColorEmbedder:
    return ColorEmbedder()


@pytest.fixture
def adapter(base: ColorEmbedder) -> Adapter:
    dim = base.info.dim
    matrix = np.random.default_rng(0).normal(size=(dim, dim)).astype(np.float32)
    return Adapter.linear(base.info.version, matrix)


@pytest.fixture
def engine(base: ColorEmbedder, adapter: Adapter) -> EngineRuntime:
    config = EngineConfig.model_validate(
        {"hashid": "e", "alias": "e", "vectors": {FIELD: {"embedder": "color"}}}
    )
    return EngineRuntime(
        config, lambda _c, _f: base, load_adapter={adapter.adapter_id: adapter}.__getitem__
    )


def _search(service: _IndexPlayer, engine: EngineRuntime, data: bytes) -> QueryVector:
    async def run() -> QueryVector:
        return await service._checked_query_vector(engine, ImageQuery(data), FIELD, Timings())

    return asyncio.run(run())


def _due(engine: EngineRuntime, base: ColorEmbedder) -> tuple[_IndexPlayer, QueryVector]:
    """A service whose engine was checked once (that search's vector beside it); from now on
    every search finds the check due again."""
    service = _IndexPlayer(base.info)
    first = _search(service, engine, _photo())
    engine.recheck_s = 0.0
    service.log.clear()
    return service, first


def test_the_first_check_comes_before_the_embedding(
    engine: EngineRuntime, base: ColorEmbedder
) -> None:
    service = _IndexPlayer(base.info)
    _search(service, engine, _photo())
    assert service.log == ["check", "checked", "embed", "embedded"]
    service.log.clear()
    _search(service, engine, _photo())  # checked less than recheck_s ago: no check
    assert service.log == ["embed", "embedded"]


def test_a_due_check_runs_beside_the_embedding(engine: EngineRuntime, base: ColorEmbedder) -> None:
    service, first = _due(engine, base)
    again = _search(service, engine, _photo())
    # Both started before either ended, and the query was embedded once.
    assert service.log[:2] == ["embed", "check"]
    assert sorted(service.log) == ["check", "checked", "embed", "embedded"]
    assert_same_vector(again.vector, first.vector)


def test_a_swap_found_by_the_check_embeds_the_query_again(
    engine: EngineRuntime, base: ColorEmbedder, adapter: Adapter
) -> None:
    service, untuned = _due(engine, base)
    service.indexed = replace(base.info, version=adapter.version)  # the alias moved
    tuned = _search(service, engine, _photo())
    assert service.log.count("embed") == 2
    image = Image.open(io.BytesIO(_photo())).convert("RGB")
    expected = adapt(base, adapter).embed_images([image])[0]
    assert_same_vector(tuned.vector, [float(x) for x in expected], others=[untuned.vector])


def test_the_checks_verdict_wins_over_a_good_embedding(
    engine: EngineRuntime, base: ColorEmbedder
) -> None:
    service, _ = _due(engine, base)
    service.indexed = replace(base.info, embedder="other", version="other-v1")
    with pytest.raises(EmbedderMismatch, match="was written by other other-v1"):
        _search(service, engine, _photo())
    assert service.log[-2:] == ["embedded", "checked"]  # refused after the embedding ended


def test_a_bad_image_is_its_own_error_when_the_index_is_fine(
    engine: EngineRuntime, base: ColorEmbedder
) -> None:
    service, _ = _due(engine, base)
    with pytest.raises(ImgSearchError) as refused:
        _search(service, engine, b"not an image")
    assert not isinstance(refused.value, EmbedderMismatch)
    assert "checked" in service.log  # the check still finished before the answer
