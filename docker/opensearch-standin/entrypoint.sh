#!/bin/bash
# Like the official image's entrypoint: settings come from environment variables named like
# settings (read by ContainerNode), the heap from OPENSEARCH_JAVA_OPTS. There is no security
# plugin in this image, so DISABLE_SECURITY_PLUGIN / DISABLE_INSTALL_DEMO_CONFIG change nothing.
# Any other command (e.g. the compose file's chown) runs as given. bash, not sh: dash drops
# environment variables whose names have dots.
set -e
if [ "$#" -gt 0 ] && [ "$1" != "opensearch" ]; then exec "$@"; fi
# shellcheck disable=SC2086  # OPENSEARCH_JAVA_OPTS is a list of JVM flags
exec java ${OPENSEARCH_JAVA_OPTS:--Xms1g -Xmx1g} -XX:+UseG1GC -Djava.awt.headless=true \
  -Dlog4j2.formatMsgNoLookups=true -cp "/usr/share/opensearch/lib/runner/*:/usr/share/opensearch/lib/knn/*:/usr/share/opensearch/bin" \
  ContainerNode
