"""The datasets the accuracy benchmarks read (bench.accuracy, bench.feedback_rows,
bench.multiturn): which ones by default, how a command line names one, and the validation
score that picks a baseline's epoch as model.train picks a checkpoint's."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataprep import FashionIQSplit
from model.evaluate import evaluate_split

DEFAULT_DATASETS = ["data/demo_catalog:data/demo_catalog/images",
                    "data/products:../shared/data/fashion-products/images",
                    "data/hm:../shared/data/hm/images"]


@dataclass
class DatasetSpec:
    name: str
    annotations: Path
    images: Path

    @classmethod
    def parse(cls, text: str) -> DatasetSpec:
        """'ANNOTATIONS[:IMAGES]'; images default to ANNOTATIONS/images."""
        annotations, _, images = text.partition(":")
        root = Path(annotations)
        return cls(root.name, root, Path(images) if images else root / "images")


@dataclass
class Data:
    spec: DatasetSpec
    train: FashionIQSplit
    val: FashionIQSplit
    kinds: dict[str, str] = field(default_factory=dict)  # id -> product type (kept@10)


def val_score(data: list[Data], encoders, max_queries: int | None) -> float:
    """model.train.validate's score: mean over datasets of (R@10+R@50)/2."""
    return float(np.mean([evaluate_split(d.val, *encoders, max_queries)["average"]["mean"]
                          for d in data]))


def train_record(meta: dict) -> dict:
    """The training configuration in a checkpoint's meta (a soup's: its first part's)."""
    return meta.get("train") or next((p["train"] for p in meta.get("soup", []) if "train" in p),
                                     {})
