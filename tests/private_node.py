"""A test's own OpenSearch node, for tests that stop, freeze or kill their cluster.

Started by ``scripts/opensearch.py`` like the shared node, but with its own state folder
(``IMGSEARCH_CACHE``), its own fixed port and a small heap, so stopping it never touches the
node other tests use. The Maven artifacts are shared through a link to the resolved ``lib``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "opensearch.py"
SHARED_CACHE = ROOT / ".cache"


class PrivateNode:
    def __init__(self, state_dir: Path, heap: str = "512m") -> None:
        state_dir = state_dir.resolve()
        if state_dir == SHARED_CACHE.resolve():
            raise ValueError("a private node needs its own state folder")
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        node_cache = state_dir / "opensearch"
        node_cache.mkdir(parents=True, exist_ok=True)
        lib = node_cache / "lib"
        if not lib.exists():  # resolved by the shared node's start
            lib.symlink_to(SHARED_CACHE / "opensearch" / "lib", target_is_directory=True)
        env = {k: v for k, v in os.environ.items() if k != "OPENSEARCH_URL"}
        self._env = {
            **env,
            "IMGSEARCH_CACHE": str(state_dir),
            "OPENSEARCH_HEAP": heap,
            "OPENSEARCH_PORT": str(self.port),
        }

    def _script(self, command: str) -> str:
        result = subprocess.run(
            [sys.executable, str(SCRIPT), command],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"opensearch.py {command} failed:\n{result.stderr}")
        return result.stdout.strip()

    def start(self) -> str:
        """Start (or restart on the same port and data) and wait for yellow; a no-op when up."""
        url = self._script("start")
        assert url == self.url, (url, self.url)
        return url

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the node's process group)."""
        self._script("stop")

    @property
    def pid(self) -> int:
        return int((self.state_dir / "opensearch" / "node.pid").read_text().strip())

    def freeze(self) -> None:
        """SIGSTOP: the port stays open but nothing answers (a hung node)."""
        os.killpg(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)


@pytest.fixture(scope="session")
def private_node_session(
    opensearch_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateNode]:
    """One private node for the session (the shared node's start resolved the artifacts)."""
    node = PrivateNode(tmp_path_factory.mktemp("private-node"))
    node.start()
    yield node
    node.stop()


@pytest.fixture
def private_node(private_node_session: PrivateNode) -> PrivateNode:
    """The private node, up: a test that stopped it and failed does not sink the next."""
    private_node_session.start()
    return private_node_session
