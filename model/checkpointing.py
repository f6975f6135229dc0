"""A training run's folder: what is written after every epoch, and what a resume reads back.

    OUT/train_config.json   the run's TrainConfig
    OUT/metrics.jsonl       one line per epoch (loss, time, validation report)
    OUT/last/               the latest checkpoint + train_state.pt (optimiser, schedule, loss
                            temperature, epoch, best score): a re-run resumes from here
    OUT/best/               the checkpoint with the best validation score so far

``best`` is replaced atomically (written aside, then renamed), so a run killed at any moment
leaves a loadable best checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

TRAIN_STATE = "train_state.pt"


class RunFolder:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.last, self.best = self.out / "last", self.out / "best"

    def has_state(self) -> bool:
        """A resumable run: OUT/last holds the train state."""
        return (self.last / TRAIN_STATE).is_file()

    def completed_epochs(self) -> int:
        """Epochs OUT/last has finished (0 when there is none yet); reads JSON only."""
        config = self.last / "config.json"
        if not self.has_state() or not config.is_file():
            return 0
        return int(json.loads(config.read_text()).get("meta", {}).get("epoch", 0))

    def write_config(self, cfg: Any) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(
            json.dumps(dataclasses.asdict(cfg), indent=2))

    def append_metrics(self, metrics: dict) -> None:
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")

    def save(self, retriever, meta: dict, state: dict, improved: bool) -> None:
        """OUT/last (checkpoint and train state) and, when ``improved``, OUT/best."""
        retriever.save(self.last, meta)
        torch.save(state, self.last / TRAIN_STATE)
        if improved:
            tmp = self.out / "best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            retriever.save(tmp, meta)
            shutil.rmtree(self.best, ignore_errors=True)
            tmp.rename(self.best)
            logger.info("new best %.2f -> %s", state["best"], self.best)

    def load_state(self, device: torch.device) -> dict:
        return torch.load(self.last / TRAIN_STATE, map_location=device, weights_only=True)
