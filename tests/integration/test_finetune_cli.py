"""``imgsearch finetune`` on a file-defined engine, on the real node: the alias swaps, a
gateway serving the unchanged engine file queries through the adapter, and ``imgsearch
index`` afterwards keeps the fine-tuning instead of refusing the index."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from opensearchpy import OpenSearch

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.cli import main
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.engine_config import load_engine_config
from imgsearch.finetune.adapter import split_version
from imgsearch.finetune.store import AdapterStore
from imgsearch.images import decode_image
from imgsearch.mapping import vector_meta
from tests.integration.test_finetune_api import LABELS, photo
from tests.tolerance import SCORE_ATOL, cosine


def live_meta(os_client: OpenSearch, alias: str) -> tuple[str, str]:
    index = next(iter(os_client.indices.get_alias(name=alias)))
    meta = os_client.indices.get_mapping(index=index)[index]["mappings"]["_meta"]
    return index, vector_meta(meta)["color"].version


def test_finetune_a_file_engine_then_serve_and_reindex_it(
    tmp_path: Path, index_name: Callable[[str], str], opensearch_url: str,
    os_client: OpenSearch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    rng = np.random.default_rng(1)
    folder = tmp_path / "catalog"
    for label in LABELS:
        (folder / label).mkdir(parents=True)
        for i in range(25):
            photo(label, rng).save(folder / label / f"{i:03d}.png")
    alias = index_name("finetune-cli")
    engine = tmp_path / "engine.json"
    engine.write_text(json.dumps({
        "hashid": "swatches", "alias": alias,
        "fields": {"category": {"type": "keyword", "facet": True}},
        "vectors": {"color": {"embedder": "color"}},
    }))  # fmt: skip
    common = ["--engine", str(engine), "--opensearch-url", opensearch_url]
    assert main(["index", str(folder), *common]) == 0
    first, version = live_meta(os_client, alias)
    assert split_version(version)[1] is None
    capsys.readouterr()

    assert main(["finetune", *common, "--label-field", "category"]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["outcome"] == "tuned", outcome
    tuned, version = live_meta(os_client, alias)
    assert tuned != first and split_version(version)[1] == outcome["adapter"]

    # a gateway serving the same (unchanged) engine file embeds queries through the adapter
    adapter = AdapterStore(os_client).load(outcome["adapter"])
    query = folder / "red" / "000.png"
    expected = adapter.apply(ColorEmbedder().embed_images([decode_image(query.read_bytes())]))
    app = create_app(GatewaySettings(opensearch_url=opensearch_url),
                     engines={"swatches": load_engine_config(engine)})  # fmt: skip
    with TestClient(app) as api:
        found = api.post("/6/swatches/_image_search?rpp=5",
                         json={"image": base64.b64encode(query.read_bytes()).decode()})  # fmt: skip
        assert found.status_code == 200, found.text
        hits = found.json()["results"]
    stored = os_client.search(index=alias, body={"size": 200, "_source": ["id", "color"]})
    vectors = {h["_source"]["id"]: h["_source"]["color"] for h in stored["hits"]["hits"]}
    for hit in hits:
        assert abs(hit["score"] - (1 + cosine(expected[0], vectors[hit["id"]])) / 2) <= SCORE_ATOL

    # indexing again keeps the adapter: nothing to re-embed under another model
    assert main(["index", str(folder), *common]) == 0
    assert live_meta(os_client, alias) == (tuned, version)

    # augmented copies of the folder's photos (stored as paths relative to it), on top
    assert main(["finetune", *common, "--augment", "--images", str(folder)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["training"]["metric"] == "copy recall@1", again
    assert again["training"]["items"] == 100


def test_finetune_without_labels_or_pairs_is_refused(
    tmp_path: Path, index_name: Callable[[str], str], opensearch_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    engine = tmp_path / "engine.json"
    engine.write_text(json.dumps({"hashid": "nothing", "alias": index_name("finetune-none"),
                                  "vectors": {"color": {"embedder": "color"}}}))  # fmt: skip
    common = ["--engine", str(engine), "--opensearch-url", opensearch_url]
    assert main(["finetune", *common]) == 2
    assert "label field or augmentation pairs" in capsys.readouterr().err
    assert main(["finetune", *common, "--label-field", "category"]) == 2
    assert "not a field" in capsys.readouterr().err
