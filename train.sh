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
cd "$(dirname "$0")"
source scripts/ensure_venv.sh requirements.txt
source scripts/env.sh
ANNOTATIONS="$1" IMAGES="$2" BATCH="$3" EPOCHS="$4"
shift 4
exec .venv/bin/python -m model.train --annotations "$ANNOTATIONS" --images "$IMAGES" \
  --batch-size "$BATCH" --epochs "$EPOCHS" "$@"
