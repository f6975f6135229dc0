#!/usr/bin/env bash
# Serve the demo app (Streamlit) on localhost.
#
#   bash run_app.sh [--port N] [--catalog DIR] [--metadata FILE] [--checkpoint DIR]
#                   [--seed S] [--per-category N] [--reindex]
#
# --catalog takes a store's catalog as it is: a plain or nested folder of photos (id and title
# from the file name), or images/ + metadata.csv; --metadata FILE names a metadata CSV of
# another name or place. Relative paths are taken from the current directory.
# First run: creates the virtual environment, starts the embedded database (when MONGO_URI is
# unset), generates the demo catalog and indexes it (progress in this terminal), then serves.
# Later runs reuse all of that and start in seconds. Flags win over the settings, read from
# the environment, then .env (project_settings.VARIABLES):
#   APP_PORT (8501)  APP_ADDRESS (127.0.0.1)  APP_TOP_K (12)  APP_MAX_UPLOAD_MB (10)
#   APP_TORCH_THREADS (1)  APP_DB_WAIT_S (15)
#   CATALOG_DIR (data/demo_catalog)  CHECKPOINT (checkpoints/demo)  MONGO_URI DB_NAME
#   COLLECTION_NAME (see .env.example)
# --seed/--per-category shape the generated demo catalog (0/200); --reindex runs the
# (idempotent) indexer even when the collection is not empty. Stop with Ctrl+C; the database
# keeps running for the next start (`python -m indexer.db stop` stops it).
set -euo pipefail
CALLER_DIR="$PWD"
cd "$(dirname "$0")"
# A path given on the command line is relative to where the command was typed.
from_caller() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$CALLER_DIR" "$1" ;; esac; }
check_port() { case "$1" in ''|*[!0-9]*) echo "run_app.sh: port must be a number, got '$1'" >&2; exit 2 ;; esac; }

PORT=""  # --port, else APP_PORT (environment or .env, read below), else 8501
BOOT_ARGS=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --catalog) export CATALOG_DIR="$(from_caller "$2")"; shift 2 ;;
    --metadata) BOOT_ARGS+=("--metadata" "$(from_caller "$2")"); shift 2 ;;
    --checkpoint) export CHECKPOINT="$(from_caller "$2")"; shift 2 ;;
    --seed|--per-category) BOOT_ARGS+=("$1" "$2"); shift 2 ;;
    --reindex) BOOT_ARGS+=("$1"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run_app.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
  esac
done
[ -z "$PORT" ] || check_port "$PORT"
# The dev requirements include the runtime ones: when run_tests.sh has already installed them
# for the current requirements files, there is nothing to do (and no pip run inside tests).
DEV_STAMP=.venv/.requirements-requirements-dev.txt.sha256
if [ -x .venv/bin/python ] && [ -f "$DEV_STAMP" ] && \
   [ "$(cat "$DEV_STAMP")" = "$(cat requirements*.txt | sha256sum | cut -d' ' -f1)" ]; then
  :
else
  source scripts/ensure_venv.sh requirements.txt
fi
source scripts/env.sh
PY=.venv/bin/python
# APP_PORT / APP_ADDRESS as every setting is read: the environment, then .env (project_settings)
[ -n "$PORT" ] || PORT="$("$PY" -m project_settings APP_PORT 8501)"
ADDRESS="$("$PY" -m project_settings APP_ADDRESS 127.0.0.1)"
check_port "$PORT"

"$PY" -m app.bootstrap "${BOOT_ARGS[@]}"

if "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('$ADDRESS', $PORT)) != 0)"; then
  echo "run_app.sh: port $PORT is already in use; set APP_PORT or pass --port" >&2
  exit 1
fi

# `streamlit run` puts app/ on sys.path, not the repository root that holds the packages.
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m streamlit run app/streamlit_app.py \
  --server.address "$ADDRESS" --server.port "$PORT" --server.headless true \
  --server.fileWatcherType none --server.maxUploadSize 64 \
  --browser.gatherUsageStats false --client.toolbarMode minimal --theme.base light &
APP_PID=$!
trap 'kill "$APP_PID" 2>/dev/null || true; wait "$APP_PID" 2>/dev/null || true' INT TERM
for _ in $(seq 1 120); do
  if "$PY" -c "import urllib.request,sys; urllib.request.urlopen('http://$ADDRESS:$PORT/_stcore/health', timeout=1)" 2>/dev/null; then
    echo "[app] serving at http://localhost:$PORT  (Ctrl+C to stop)"
    break
  fi
  kill -0 "$APP_PID" 2>/dev/null || break
  sleep 0.5
done
wait "$APP_PID"
