#!/usr/bin/env bash
# Train FashionVLP: bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [extra python -m model.train flags]
# ANNOTATIONS / IMAGES may be comma-separated lists (paired by position) to train on several
# datasets at once, e.g. the demo catalog plus the real-photo triplets.
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [--out DIR] [--categories ...] [--lr X] ..." >&2
  exit 2
fi
cd "$(dirname "$0")"
source scripts/ensure_venv.sh requirements.txt
source scripts/env.sh
ANNOTATIONS="$1" IMAGES="$2" BATCH="$3" EPOCHS="$4"
shift 4
exec .venv/bin/python -m model.train --annotations "$ANNOTATIONS" --images "$IMAGES" \
  --batch-size "$BATCH" --epochs "$EPOCHS" "$@"
