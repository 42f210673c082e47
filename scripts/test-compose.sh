#!/usr/bin/env bash
# The cluster tests (tests/cluster: pages, totals and facets equal to the brute-force reference
# on 1, 3 and 6 shards with one replica; a node SIGKILLed under search + insert load) against
# the three nodes of docker-compose.cluster.yml, for people with Docker. Not part of .ci/run
# (build machines may have no Docker daemon). Extra arguments go to pytest.
#   bash scripts/test-compose.sh
# Needs docker with `docker compose` (or docker-compose 1.29) and the project's .venv
# (scripts/setup.sh). Runs the official image, or OPENSEARCH_IMAGE if set; where the official
# image cannot be pulled it builds and runs the local stand-in instead (docker/opensearch-standin,
# the same Maven artifacts as the local nodes; building its base needs root for debootstrap)
# and says so. Heaps are 512m (OPENSEARCH_JAVA_OPTS). A test-only override turns off the disk
# watermarks (as the local nodes do: a nearly full build disk must not leave replicas
# unassigned) and, where the Docker daemon cannot grant the file's ulimits (memlock unlimited,
# nofile 65536), lowers them to what it can and turns bootstrap.memory_lock off, saying so.
# The compose project is taken down with its volumes afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[compose-test] $*" >&2; }

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  log "needs docker compose (or docker-compose)"; exit 1
fi
[ -x .venv/bin/python ] || { log "run scripts/setup.sh first (no .venv)"; exit 1; }

official=opensearchproject/opensearch:2.19.1
if [ -z "${OPENSEARCH_IMAGE:-}" ]; then
  if docker image inspect "$official" >/dev/null 2>&1 || docker pull -q "$official" >/dev/null; then
    OPENSEARCH_IMAGE=$official
  else
    log "cannot pull $official: building the local stand-in (NOT the official image; see docker/opensearch-standin/Dockerfile)"
    OPENSEARCH_IMAGE=$(bash docker/opensearch-standin/build.sh)
    SNAPSHOTS_OWNER_IMAGE=${SNAPSHOTS_OWNER_IMAGE:-$OPENSEARCH_IMAGE}
  fi
fi
export OPENSEARCH_IMAGE OPENSEARCH_JAVA_OPTS=${OPENSEARCH_JAVA_OPTS:--Xms512m -Xmx512m}
[ -z "${SNAPSHOTS_OWNER_IMAGE:-}" ] || export SNAPSHOTS_OWNER_IMAGE
log "image $OPENSEARCH_IMAGE, heap $OPENSEARCH_JAVA_OPTS"

override=$(mktemp --suffix=.yml)
limits=$(docker run --rm --entrypoint /bin/sh "$OPENSEARCH_IMAGE" -c 'ulimit -Hl; ulimit -Hn')
memlock=$(echo "$limits" | sed -n 1p)
nofile=$(echo "$limits" | sed -n 2p)
{
  echo "services:"
  echo "  opensearch1: &test"
  echo "    environment:"
  echo "      cluster.routing.allocation.disk.threshold_enabled: \"false\""
  if [ "$memlock" != unlimited ]; then
    log "the Docker daemon grants memlock ${memlock} KiB at most: bootstrap.memory_lock off for this run"
    echo "      bootstrap.memory_lock: \"false\""
  fi
  low_nofile=$([ "$nofile" != unlimited ] && [ "$nofile" -lt 65536 ] && echo 1 || true)
  if [ "$memlock" != unlimited ] || [ -n "$low_nofile" ]; then echo "    ulimits:"; fi
  if [ "$memlock" != unlimited ]; then
    echo "      memlock: {soft: $((memlock * 1024)), hard: $((memlock * 1024))}"
  fi
  if [ -n "$low_nofile" ]; then
    log "the Docker daemon grants nofile $nofile at most: lowered for this run"
    echo "      nofile: {soft: $nofile, hard: $nofile}"
  fi
  echo "  opensearch2: *test"
  echo "  opensearch3: *test"
} >"$override"
project=(-p "${COMPOSE_TEST_PROJECT:-imgsearch-compose-test}" -f docker-compose.cluster.yml -f "$override")
cleanup() {
  "${compose[@]}" "${project[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
  rm -f "$override"
}
trap cleanup EXIT

began=$SECONDS
"${compose[@]}" "${project[@]}" up -d opensearch1 opensearch2 opensearch3
urls=http://127.0.0.1:9200,http://127.0.0.1:9201,http://127.0.0.1:9202
until curl -fs "http://127.0.0.1:9200/_cluster/health?wait_for_nodes=3&wait_for_status=green&timeout=5s" >/dev/null 2>&1; do
  if [ $((SECONDS - began)) -gt 300 ]; then
    "${compose[@]}" "${project[@]}" logs --tail 40 >&2 || true
    log "the three nodes did not form a green cluster in 300 s"; exit 1
  fi
  sleep 2
done
log "three nodes green after $((SECONDS - began)) s at $urls"

OPENSEARCH_CLUSTER_URL=$urls OPENSEARCH_CLUSTER_COMPOSE="$(printf '%q ' "${compose[@]}" "${project[@]}")" \
  .venv/bin/python -m pytest -q -m cluster tests/cluster "$@"
