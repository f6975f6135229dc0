#!/usr/bin/env bash
# Create or update .venv from a requirements file, skipping pip when nothing changed.
# Usage: source scripts/ensure_venv.sh [requirements-file]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="${1:-$ROOT/requirements.txt}"
VENV="$ROOT/.venv"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating virtual environment in $VENV"
  "$PYTHON_BIN" -m venv "$VENV"
fi
# Hash every requirements file that REQ pulls in so a change to any of them reinstalls.
STAMP="$VENV/.requirements-$(basename "$REQ").sha256"
HASH="$(cat "$ROOT"/requirements*.txt | sha256sum | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "[setup] installing $(basename "$REQ") (first run downloads PyTorch: several minutes)"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$REQ"
  echo "$HASH" > "$STAMP"
fi
