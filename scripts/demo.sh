#!/usr/bin/env bash
# The one-command demo: set up, start the local OpenSearch node (unless OPENSEARCH_URL is
# set), index the sample catalog (incremental: a re-run re-indexes nothing), serve the
# gateway and print the demo URL. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8000}
bash scripts/setup.sh
. .venv/bin/activate
started_node=0
if [ -z "${OPENSEARCH_URL:-}" ]; then
  python3 scripts/opensearch.py status >/dev/null 2>&1 || started_node=1
  OPENSEARCH_URL=$(python3 scripts/opensearch.py start)
  export OPENSEARCH_URL
fi
cleanup() {
  if [ "$started_node" = 1 ]; then OPENSEARCH_URL= python3 scripts/opensearch.py stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if python3 scripts/clip_weights_available.py demo/engines/clip/demo.yaml 2>/dev/null; then
  engines=demo/engines/clip
  echo "[demo] using the pretrained CLIP model (ViT-B-32, laion2b_s34b_b79k)"
else
  engines=demo/engines/lite
  echo "[demo] CLIP weights not found locally: using the weight-free colour + perceptual-hash"
  echo "[demo] embedders (similar colours, near-duplicates). For semantic search put the"
  echo "[demo] ViT-B-32 laion2b_s34b_b79k weights in the Hugging Face cache; see docs/indexer.md."
fi
mkdir -p .cache/demo
index_demo() {
  imgsearch index demo/catalog/catalog.jsonl --engine "$engines/demo.yaml" \
    --report .cache/demo/index-report.jsonl "$@"
}
status=0
index_demo || status=$?
if [ "$status" = 2 ]; then  # e.g. written by other embedders before an upgrade: rebuild it
  echo "[demo] rebuilding the index"
  index_demo --rebuild
elif [ "$status" != 0 ]; then
  exit "$status"
fi
echo "[demo] OpenSearch:  $OPENSEARCH_URL"
echo "[demo] demo shop:   http://127.0.0.1:$PORT/demo/demo"
echo "[demo] API docs:    http://127.0.0.1:$PORT/docs"
echo "[demo] Ctrl-C to stop"
imgsearch serve --engines "$engines" --port "$PORT" --demo-assets demo/catalog
