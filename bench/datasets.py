"""The datasets the accuracy benchmarks read (bench.accuracy, bench.feedback_rows,
bench.multiturn): which ones by default, how a command line names one, and the validation
score that picks a baseline's epoch as model.train picks a checkpoint's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataprep import FashionIQSplit, dataset_paths, load_fashioniq
from model.evaluate import evaluate_split, restrict_to_bank

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
        annotations, images = dataset_paths(text)
        return cls(annotations.name, annotations, images)


@dataclass
class Data:
    spec: DatasetSpec
    train: FashionIQSplit
    val: FashionIQSplit
    kinds: dict[str, str] = field(default_factory=dict)  # id -> product type (kept@10)


def read_splits(texts: Sequence[str]) -> list[Data]:
    """The train and val splits of each dataset named 'ANNOTATIONS[:IMAGES]'."""
    out = []
    for text in texts:
        spec = DatasetSpec.parse(text)
        out.append(Data(spec, load_fashioniq(spec.annotations, spec.images, "train"),
                        load_fashioniq(spec.annotations, spec.images, "val")))
    return out


def image_paths(data: Sequence[Data]) -> dict[str, Path]:
    """id -> file of every image of both splits of ``data``, in dataset order."""
    return {i: p for d in data for split in (d.train, d.val) for i, p in split.image_paths.items()}


def restrict(data: Sequence[Data], bank) -> None:
    """Drop, in place, the triplets whose images ``bank`` (anything with ``index`` and
    ``failed``) has no features of (``model.evaluate.restrict_to_bank``)."""
    for d in data:
        d.train, d.val = restrict_to_bank(d.train, bank), restrict_to_bank(d.val, bank)


def val_score(data: list[Data], encoders, max_queries: int | None) -> float:
    """model.train.validate's score: mean over datasets of (R@10+R@50)/2; as there, a dataset
    without val triplets (a training-only folder) trains but is not scored."""
    scored = [d for d in data if d.val.triplets]
    if not scored:
        raise ValueError("no dataset has validation triplets to select a baseline's epoch on")
    return float(np.mean([evaluate_split(d.val, *encoders, max_queries)["average"]["mean"]
                          for d in scored]))


def train_record(meta: dict) -> dict:
    """The training configuration in a checkpoint's meta (a soup's: its first part's)."""
    return meta.get("train") or next((p["train"] for p in meta.get("soup", []) if "train" in p),
                                     {})
