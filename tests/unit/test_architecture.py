"""The layers point one way (DESIGN.md principles 1, 2 and 6), checked on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.app import DIALECTS, create_app
from gateway.settings import GatewaySettings
from imgsearch.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PURE_MODULES = [
    "gateway.search.model",
    "gateway.search.dsl",
    "gateway.search.results",
    "gateway.search.records",
    "gateway.search.fusion",
    "gateway.search.distances",
    "gateway.search.hamming_pairs",
    "gateway.search.dupe_pairs",
    "gateway.search.mongo_filter",
    "gateway.search.solr_filter",
    "gateway.dialects.similarix.response",
    "gateway.dialects.param_tree",
    "gateway.dialects.ximilar.params",
    "gateway.dialects.ximilar.response",
    "gateway.dialects.doofinder.params",
    "gateway.dialects.doofinder.response",
    "gateway.search.color_query",
    "gateway.dialects.flow.params",
    "gateway.dialects.flow.response",
]
# What a dialect may not reach for: it speaks to the neutral service, nothing below it.
DIALECT_FORBIDDEN = (
    "opensearchpy",
    "torch",
    "open_clip",
    "indexer",
    "imgsearch.search_client",
    "gateway.search.dsl",
    "gateway.search.results",
    "gateway.service.catalog",
)


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_core_imports_neither_gateway_nor_indexer() -> None:
    for path in sorted((ROOT / "imgsearch").rglob("*.py")):
        bad = {n for n in imports(path) if under(n, "gateway") or under(n, "indexer")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_indexer_does_not_import_the_gateway() -> None:
    for path in sorted((ROOT / "indexer").rglob("*.py")):
        bad = {n for n in imports(path) if under(n, "gateway")}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_pure_modules_load_no_client_and_no_model() -> None:
    code = (
        f"import sys; import {', '.join(PURE_MODULES)}; "
        "print(' '.join(m for m in ('opensearchpy', 'torch', 'open_clip', 'httpx', 'anyio') "
        "if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.split()
    assert loaded == [], f"pure translation code pulled in {loaded}"


def dialect_folders() -> list[Path]:
    return sorted(p for p in (ROOT / "gateway" / "dialects").iterdir() if p.is_dir() and
                  (p / "__init__.py").exists())  # fmt: skip


def test_dialects_reach_only_the_neutral_service() -> None:
    folders = dialect_folders()
    assert folders, "no dialect folders found"
    for folder in folders:
        others = [f"gateway.dialects.{f.name}" for f in folders if f != folder]
        for path in sorted(folder.rglob("*.py")):
            names = imports(path)
            bad = {n for n in names for p in (*DIALECT_FORBIDDEN, *others) if under(n, p)}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_every_dialect_folder_is_mounted_under_its_prefix() -> None:
    assert {d.name for d in DIALECTS} == {f.name for f in dialect_folders()}
    app = create_app(GatewaySettings(opensearch_url="http://127.0.0.1:1"), engines={})
    for dialect in DIALECTS:
        paths = [getattr(route, "path", "") for route in dialect.router.routes]
        assert paths and all(dialect.prefix_of(p) for p in paths), dialect.name
        documented = {p for p in paths if p in app.openapi()["paths"]}
        assert documented, f"{dialect.name}: no route in the OpenAPI schema"


@pytest.mark.parametrize(
    "command",
    [
        "index",
        "versions",
        "finetune",
        "rollback",
        "duplicates",
        "serve",
        "insert",
        "export-onnx",
        "keys",
        "csv",
        "cluster",
        "snapshot",
        "restore",
    ],
)
def test_imgsearch_keeps_its_subcommands(command: str) -> None:
    args = {"index": ["feed.jsonl", "--engine", "e.yaml"], "serve": []}.get(
        command, ["--engine", "e.yaml"]
    )
    if command == "duplicates":
        args = ["photo.jpg", *args]
    if command == "insert":
        args = ["photo.jpg", *args, "--id", "x"]
    if command == "keys":
        args = ["create", "--access", "write"]
    if command == "csv":
        args = ["export", *args, "out.csv"]
    if command == "restore":
        args = [*args, "--snapshot", "s1"]
    parsed = build_parser().parse_args([command, *args])
    assert callable(parsed.handler) and parsed.command == command
