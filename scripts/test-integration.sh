#!/usr/bin/env bash
# Integration tests that need system packages: the Redis scale-out test (redis-server, 2 worker
# processes) and the web page test (Debian's chromium driven by playwright-core).
# Installs the Debian packages when missing, then runs the tests with skipping turned into failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (Debian packages) …"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The packaged redis-server may start a system service; the tests start their own on a free
# loopback port and stop it, so that one is not used.

[ -d node_modules ] || npm ci --no-audit --no-fund
IMAGEN_INTEGRATION=1 CI=true npx vitest run test/server/redis.test.ts test/server/browser.test.ts "$@"
