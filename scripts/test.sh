#!/usr/bin/env bash
# The whole test suite from a fresh clone: set up, start the local OpenSearch node (unless
# OPENSEARCH_URL is set), lint, type-check, JS unit tests, Python unit + integration tests
# (the browser test among them). Non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-browser.sh   # playwright-core from npm, Debian's chromium
. .venv/bin/activate
started_here=0
if [ -z "${OPENSEARCH_URL:-}" ]; then
  if ! python3 scripts/opensearch.py status >/dev/null 2>&1; then started_here=1; fi
  OPENSEARCH_URL=$(python3 scripts/opensearch.py start)
  export OPENSEARCH_URL
fi
cleanup() { if [ "$started_here" = 1 ]; then OPENSEARCH_URL= python3 scripts/opensearch.py stop || true; fi; }
trap cleanup EXIT
echo "[test] OpenSearch at $OPENSEARCH_URL" >&2
status=0
ruff check . || status=1
ruff format --check . || status=1
mypy || status=1
node --test --test-reporter=dot tests/js/ || status=1
python -m pytest -q "$@" || status=1
exit $status
