#!/usr/bin/env bash
# The one test command: creates/updates .venv, installs system packages the
# browser tests need (Debian chromium, tcmalloc), then runs pytest.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  ldconfig -p | grep -q libtcmalloc_minimal.so.4 || missing+=(libtcmalloc-minimal4)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
source scripts/ensure_venv.sh requirements-dev.txt
source scripts/env.sh
exec .venv/bin/python -m pytest "$@"
