"""Hard negatives that an annotation lists (data/hm_feedback writes them) reach the batch."""

from __future__ import annotations

import json
import random

from dataprep import Triplet
from model.config import ModelConfig
from model.sampling import ListedNegatives
from model.train import TrainConfig, Trainer
from tests.tiny_dataset import write_tiny_dataset


def test_the_miner_draws_only_from_each_triplets_own_list():
    triplets = [Triplet("a", "b", ["x"], "c", negatives=("n1", "n2", "n3")),
                Triplet("d", "e", ["y"], "c", negatives=("m1",)),
                Triplet("f", "g", ["z"], "c")]
    drawn = ListedNegatives(2)(triplets, random.Random(0))
    assert len(drawn) == 3 and set(drawn[:2]) <= {"n1", "n2", "n3"} and drawn[2] == "m1"


def test_listed_negatives_in_the_annotation_join_the_batch(tmp_path):
    root = write_tiny_dataset(tmp_path / "data")
    entries = json.loads((root / "train.json").read_text())
    for e in entries:  # every other-shape item of the target's colour is a hard negative
        colour = e["target"].split("_")[1]
        e["negatives"] = [f"{s}_{colour}_0" for s in ("square", "circle", "triangle")
                          if not e["target"].startswith(s)] + ["not-in-the-data"]
    (root / "train.json").write_text(json.dumps(entries))
    cfg = TrainConfig(annotations=[str(root)], images=[str(root / "images")], batch_size=8,
                      epochs=1, out=str(tmp_path / "run"), cache_dir=str(tmp_path / "cache"),
                      workers=0, model=ModelConfig.tiny(), warmup=0.0, listed_negatives=1)
    trainer = Trainer(cfg)
    triplets = trainer.batches.triplets[:8]
    assert all(len(t.negatives) == 3 for t in triplets)
    batch = trainer.batches.batch(triplets)
    # 8 targets + one listed negative per triplet, unless the draw named the missing id
    assert 8 < len(batch["target_ids"]) <= 16
    assert 0 < trainer.step(batch) < float("inf")
