"""The demo shop in real headless Chromium against a real gateway on loopback and the real node.

Indexes the committed demo catalog with the indexer (weight-free engine), serves the gateway
with uvicorn, and runs ``tests/browser/demo.spec.mjs`` (playwright-core + Debian chromium):
upload a validation photo, see results, tick a facet, page forward, click "similar". The
screenshots land in ``test-artifacts/``. Missing node/chromium is a failure, not a skip
(``scripts/setup-browser.sh`` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from opensearchpy import OpenSearch

from gateway.app import create_app
from gateway.settings import GatewaySettings
from imgsearch.engine_config import load_engine_config
from indexer.runner import IndexOptions, index_feed
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
ALIAS = "it-demo-browser"


@pytest.fixture(scope="module")
def demo_gateway(os_client: OpenSearch, opensearch_url: str) -> Iterator[str]:
    config = load_engine_config(ROOT / "demo/engines/lite/demo.yaml").model_copy(
        update={"alias": ALIAS}
    )
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)
    summary = index_feed(ROOT / "demo/catalog/catalog.jsonl", config, os_client, IndexOptions())
    assert summary.failed == 0 and summary.indexed > 200, summary
    settings = GatewaySettings(
        opensearch_url=opensearch_url, demo_assets_dir=ROOT / "demo" / "catalog"
    )
    app = create_app(settings, {config.hashid: config})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "gateway did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    os_client.indices.delete(index=f"{ALIAS}_v*", ignore_unavailable=True)


def test_demo_shop_in_chromium(demo_gateway: str, clothing_dataset: Path) -> None:
    node = shutil.which("node")
    assert node, "node not found: run scripts/setup-browser.sh (scripts/test.sh does)"
    assert (ROOT / "node_modules/playwright-core").is_dir(), "run scripts/setup-browser.sh"
    photo = sorted((clothing_dataset / "validation" / "dress").glob("*.jpg"))[0]
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("demo*.png"):
        old.unlink()
    env = {
        **os.environ,
        "GATEWAY_URL": demo_gateway,
        "HASHID": "demo",
        "UPLOAD_IMAGE": str(photo),
        "ARTIFACT_DIR": str(ARTIFACTS),
    }
    result = subprocess.run(
        [node, "tests/browser/demo.spec.mjs"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"browser test failed:\n{result.stdout}\n{result.stderr}"
    assert (ARTIFACTS / "demo.png").stat().st_size > 10_000
