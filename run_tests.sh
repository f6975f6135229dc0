#!/usr/bin/env bash
# The one test command: creates/updates .venv, installs system packages the
# browser tests need (Debian chromium, tcmalloc), then runs pytest: the full suite, as CI runs it
# (system tests included: kill loop, load under faults, browsers).
#   bash run_tests.sh                 # everything
#   bash run_tests.sh --quick         # the inner loop: no test marked slow or browser (< 2 min)
#   bash run_tests.sh [--quick] ARGS  # ARGS go to pytest (e.g. tests/test_indexer_build.py -x)
set -euo pipefail
cd "$(dirname "$0")"
QUICK=()
if [ "${1:-}" = "--quick" ]; then
  shift
  QUICK=(-m "not slow and not browser")
fi
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
exec .venv/bin/python -m pytest ${QUICK[@]+"${QUICK[@]}"} "$@"
