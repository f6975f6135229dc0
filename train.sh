#!/usr/bin/env bash
# Train FashionVLP:
#   bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [extra python -m model.train flags]
#   bash train.sh --recipe NAME [python -m model.recipe flags]   # e.g. --recipe demo: the
#       shipped checkpoint's chain of stages (recipes/NAME.json), resumable; --dry-run shows it
# ANNOTATIONS / IMAGES may be comma-separated lists (paired by position) to train on several
# datasets at once, e.g. the demo catalog plus the real-photo triplets.
set -euo pipefail
usage() {
  echo "usage: bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [--out DIR] [--categories ...] [--lr X] ..." >&2
  echo "       bash train.sh --recipe NAME [--dry-run] [--stages ...] [--install DIR] ..." >&2
  exit 2
}
if [ "${1:-}" = "--recipe" ]; then
  [ $# -ge 2 ] || usage
  RECIPE="$2"
  shift 2
  cd "$(dirname "$0")"
  source scripts/ensure_venv.sh requirements.txt
  source scripts/env.sh
  exec .venv/bin/python -m model.recipe "$RECIPE" "$@"
fi
[ $# -ge 4 ] || usage
# ANNOTATIONS and IMAGES are taken from where the command was typed (each entry of a comma
# list); flags' paths (--out, --init-from, --cache-dir) from the repository root.
CALLER_DIR="$PWD"
from_caller() {
  local out="" entry
  IFS=',' read -ra entries <<< "$1"
  for entry in "${entries[@]}"; do
    case "$entry" in
      /*|[a-z]*:/*) ;;  # absolute, or a registered source's PREFIX:/absolute/path
      [a-z]*:*) entry="${entry%%:*}:$CALLER_DIR/${entry#*:}" ;;
      *) entry="$CALLER_DIR/$entry" ;;
    esac
    out="${out:+$out,}$entry"
  done
  printf '%s' "$out"
}
ANNOTATIONS="$(from_caller "$1")" IMAGES="$(from_caller "$2")" BATCH="$3" EPOCHS="$4"
cd "$(dirname "$0")"
source scripts/ensure_venv.sh requirements.txt
source scripts/env.sh
shift 4
exec .venv/bin/python -m model.train --annotations "$ANNOTATIONS" --images "$IMAGES" \
  --batch-size "$BATCH" --epochs "$EPOCHS" "$@"
