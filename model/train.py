"""Train FashionVLP on FashionIQ-format triplets with cached backbone features.

    python -m model.train --annotations A[,A2] --images I[,I2] --batch-size 64 --epochs 10
    bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [flags]
    bash train.sh --recipe demo            # the shipped checkpoint's chain (model.recipe)

Several datasets can be trained together (comma-separated, paired by position). Every epoch
is validated with the FashionIQ protocol on each dataset's val split; the best checkpoint (mean
of (R@10+R@50)/2 over datasets) is kept in OUT/best, the latest in OUT/last with the optimiser
state, so a killed run resumes where it stopped.

The package's training parts, one job each: `model.train_config` (TrainConfig and these flags),
`model.data` (datasets, hold-out, sources), `model.sampling` (batches, negative miners),
`model.loss` / `model.distillation` / `model.grounding` (the objective), `model.trainer` (the
loop), `model.checkpointing` (the run folder), `model.validation` (the per-epoch score).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from model.data import Dataset, load_datasets
from model.sampling import NegativeMiner, TripletBatches, flip_grid
from model.train_config import REMOVED_OPTIONS, TrainConfig
from model.train_config import parse_args as _parse_args
from model.trainer import Trainer

__all__ = ["REMOVED_OPTIONS", "Dataset", "NegativeMiner", "TrainConfig", "Trainer",
           "TripletBatches", "flip_grid", "load_datasets", "main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    """The TrainConfig of a `python -m model.train` command line."""
    return _parse_args(argv, description=__doc__)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = parse_args(argv)
    best = Trainer(cfg).fit()
    print(f"best validation score (mean of (R@10+R@50)/2): {best:.2f} -> {cfg.out}/best")


if __name__ == "__main__":
    main()
