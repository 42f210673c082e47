#!/usr/bin/env bash
# The whole test suite from a fresh clone: set up, start the local OpenSearch node (unless
# OPENSEARCH_URL is set), lint, type-check, JS unit tests, Python unit + integration tests
# (the browser test among them), then the cluster tests (tests/cluster) on a local three-node
# cluster started for them and stopped after (unless OPENSEARCH_CLUSTER_URL is set).
# Non-zero on any failure.
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
cluster_here=0
stop_cluster() {
  if [ "$cluster_here" = 1 ]; then OPENSEARCH_CLUSTER_URL= python3 scripts/opensearch.py stop --nodes 3 || true; fi
  cluster_here=0
}
cleanup() {
  stop_cluster
  if [ "$started_here" = 1 ]; then OPENSEARCH_URL= python3 scripts/opensearch.py stop || true; fi
}
trap cleanup EXIT
echo "[test] OpenSearch at $OPENSEARCH_URL" >&2
status=0
ruff check . || status=1
ruff format --check . || status=1
mypy || status=1
node --test --test-reporter=dot tests/js/ || status=1
python -m pytest -q -m "not cluster" "$@" || status=1
if [ -z "${OPENSEARCH_CLUSTER_URL:-}" ]; then
  if ! python3 scripts/opensearch.py status --nodes 3 >/dev/null 2>&1; then cluster_here=1; fi
  OPENSEARCH_CLUSTER_URL=$(python3 scripts/opensearch.py start --nodes 3) || status=1
  export OPENSEARCH_CLUSTER_URL
fi
echo "[test] three-node cluster at $OPENSEARCH_CLUSTER_URL" >&2
rc=0
python -m pytest -q -m cluster "$@" || rc=$?
if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then status=1; fi  # 5: the arguments chose no cluster test
stop_cluster
exit $status
