#!/usr/bin/env bash
# Builds the stand-in image (see Dockerfile) from what this machine can reach: a Debian
# bookworm rootfs from the Debian mirror (debootstrap, run as root) with OpenJDK 17, and the
# OpenSearch + k-NN jars scripts/opensearch.py resolves from Maven Central into .cache.
#   sudo bash docker/opensearch-standin/build.sh   # prints the image name
# STANDIN_IMAGE / STANDIN_BASE rename the image and its base; an existing base is reused.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${STANDIN_IMAGE:-imgsearch/opensearch-standin:2.19.1}
base=${STANDIN_BASE:-imgsearch/debian-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
log() { echo "[standin] $*" >&2; }

if ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { log "debootstrap is required (apt-get install debootstrap)"; exit 1; }
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  log "debootstrap bookworm (minbase + openjdk-17-jre-headless, curl) from $mirror"
  debootstrap --variant=minbase --include=openjdk-17-jre-headless,curl,ca-certificates \
    bookworm "$rootfs" "$mirror" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  # mktemp -d made the rootfs 0700; tar records that as the image's "/", which uid 1000
  # could then not enter ("stat /bin/sh: permission denied").
  chmod 755 "$rootfs"
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
fi

# The jars: the same resolution (and cache) as the local nodes.
python3 - "$root" <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/scripts")
import opensearch
opensearch.ensure_artifacts()
PY
lib="$root/.cache/opensearch/lib"
# Rebuild only when an input changed (the image carries their digest as a label).
inputs=$( (cd "$here" && cat Dockerfile entrypoint.sh ContainerNode.java;
  docker image inspect -f "{{.Id}}" "$base";
  ls -l "$lib/runner" "$lib/knn") | sha256sum | cut -c1-16)
if [ "$(docker image inspect -f '{{index .Config.Labels "imgsearch.inputs"}}' "$image" 2>/dev/null)" = "$inputs" ]; then
  echo "$image"; exit 0
fi
context=$(mktemp -d)
trap 'rm -rf "$context" ${rootfs:+"$rootfs"}' EXIT
home="$context/opensearch"
mkdir -p "$home/lib" "$home/bin" "$home/data" "$home/logs" "$home/runner" "$home/snapshots"
cp -r "$lib/runner" "$lib/knn" "$home/lib/"
cp "$here/entrypoint.sh" "$home/bin/"
cp "$here/Dockerfile" "$context/"
javac -d "$home/bin" -cp "$lib/runner/*:$lib/knn/*" "$here/ContainerNode.java"
log "building $image"
DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" --build-arg "INPUTS=$inputs" \
  -t "$image" "$context" >/dev/null
echo "$image"
