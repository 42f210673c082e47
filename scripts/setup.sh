#!/usr/bin/env bash
# Create .venv and install the project (torch + torchvision from PyPI as a matching pair).
# Idempotent: a second run only checks that the installed set still matches pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ required"'
  "$PY" -m venv .venv
fi
stamp=.venv/.imgsearch-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing Python packages (first run downloads torch, ~2-5 min)" >&2
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
