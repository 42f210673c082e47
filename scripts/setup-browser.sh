#!/usr/bin/env bash
# Install what the storefront browser test needs; safe to run again.
#   - playwright-core (pinned in package.json, locked in package-lock.json) via npm
#   - Debian's chromium at /usr/bin/chromium (Playwright's own browser download is not used)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-browser: node and npm are required (Node >= 20)" >&2
  exit 1
fi

if [ -f package-lock.json ]; then
  if [ -d node_modules/playwright-core ] && node -e '
      const want = require("./package-lock.json").packages["node_modules/playwright-core"].version;
      const have = require("./node_modules/playwright-core/package.json").version;
      process.exit(want === have ? 0 : 1);' 2>/dev/null; then
    echo "setup-browser: playwright-core already installed"
  else
    npm ci --no-audit --no-fund
  fi
else
  npm install --no-audit --no-fund
fi

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
  echo "setup-browser: chromium present at $CHROMIUM"
else
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends chromium
  [ -x /usr/bin/chromium ] || { echo "setup-browser: chromium install failed" >&2; exit 1; }
fi
"${CHROMIUM}" --version 2>/dev/null || true
