"""Training data: each annotation root becomes a `Dataset` (train and val splits of triplets).

The seed's command names one flat JSON file of triplets: it validates on a sibling ``val.json``
when there is one, else on a fixed, logged share of its own triplets held out by reference image,
so checkpoints are never selected on the triplets they trained on.

Extension point: a new kind of training data (e.g. generated feedback triplets) is a *source*,
a function registered under a prefix, ``register_source("feedback", load)``; an annotation root
written ``feedback:PATH`` is then read by it. Whatever it returns is a `Dataset` like any other
(its triplets' ``tags`` say what kind of change each asks for): it gets a batch share
(``--dataset-weights``), its own temperature under ``--dataset-scales``, and its val split (if
any) is scored every epoch. The training loop never sees where triplets came from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from dataprep import FashionIQSplit, load_fashioniq

logger = logging.getLogger(__name__)


@dataclass
class Dataset:
    name: str
    train: FashionIQSplit
    val: FashionIQSplit  # may hold no triplets: then the dataset trains but is not scored
    root: str = ""  # the annotation root (folder or flat file) it was read from

    @property
    def image_paths(self) -> dict[str, Path]:
        """Every image of both splits (what the feature cache must hold)."""
        return {**self.train.image_paths, **self.val.image_paths}


# (annotation path, image folder, categories or None, hold-out share) -> Dataset
SourceLoader = Callable[[str, str, Sequence[str] | None, float], Dataset]
SOURCES: dict[str, SourceLoader] = {}


def register_source(prefix: str, loader: SourceLoader) -> None:
    """Read annotation roots written ``PREFIX:PATH`` with ``loader``."""
    SOURCES[prefix] = loader


def load_datasets(annotations: Sequence[str], images: Sequence[str],
                  categories: Sequence[str] | None = None, holdout: float = 0.1
                  ) -> list[Dataset]:
    """One Dataset per (annotation root, image folder) pair."""
    if len(annotations) != len(images):
        raise ValueError(f"{len(annotations)} annotation roots but {len(images)} image "
                         "folders: give one image folder per annotation root")
    return [load_dataset(a, i, categories, holdout)
            for a, i in zip(annotations, images, strict=True)]


def load_dataset(annotation: str, images: str, categories: Sequence[str] | None = None,
                 holdout: float = 0.1) -> Dataset:
    """A registered source (``PREFIX:PATH``), a flat file, or a FashionIQ folder."""
    prefix, sep, rest = annotation.partition(":")
    if sep and prefix in SOURCES:
        return SOURCES[prefix](rest, images, categories, holdout)
    path = Path(annotation)
    if path.is_file():  # the seed's form: one flat JSON file of training triplets
        return flat_file_dataset(path, images, categories, holdout)
    return Dataset(path.name, load_fashioniq(annotation, images, "train", categories),
                   load_fashioniq(annotation, images, "val", categories), annotation)


def flat_file_dataset(path: Path, images: str, categories: Sequence[str] | None = None,
                      holdout: float = 0.1) -> Dataset:
    """Train on a flat annotation file; never select checkpoints on its own triplets.

    Validation uses the sibling ``val.json`` when there is one; otherwise a fixed share of the
    triplets, chosen by a hash of the reference image (so no reference is on both sides), is
    held out and logged.
    """
    train = load_fashioniq(path, images, "train", categories)
    sibling = path.with_name("val.json")
    if sibling.is_file() and sibling.resolve() != path.resolve():
        logger.info("%s: validating on the sibling %s", path, sibling)
        return Dataset(path.stem, train, load_fashioniq(sibling, images, "val", categories),
                       str(path))
    train, val = hold_out(train, holdout)
    logger.warning("%s has no sibling val.json: holding out %d of %d triplets (%.0f%% of "
                   "reference images, fixed by a hash of the image id) for validation",
                   path, len(val.triplets), len(train.triplets) + len(val.triplets),
                   100 * holdout)
    if not val.triplets or not train.triplets:
        raise ValueError(f"{path}: too few triplets to hold out a validation share; add a "
                         "val.json beside it")
    return Dataset(path.stem, train, val, str(path))


def hold_out(split: FashionIQSplit, share: float) -> tuple[FashionIQSplit, FashionIQSplit]:
    """(train, val): the triplets of about ``share`` of the reference images, chosen by a
    hash of their ids, become a val split whose gallery holds only their images."""
    held = {t.candidate for t in split.triplets if _hash_share(t.candidate) < share}
    val_triplets = [t for t in split.triplets if t.candidate in held]
    train_triplets = [t for t in split.triplets if t.candidate not in held]
    val_ids = {i for t in val_triplets for i in (t.candidate, t.target)}
    gallery = {c: [i for i in ids if i in val_ids] for c, ids in split.gallery.items()}
    val = dataclasses.replace(split, split="val", triplets=val_triplets,
                              gallery={c: ids for c, ids in gallery.items() if ids})
    return dataclasses.replace(split, triplets=train_triplets), val


def _hash_share(image_id: str) -> float:
    return int(hashlib.sha256(f"holdout-{image_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
