"""Batches of training triplets over cached backbone features: which triplets go together, and
which extra negatives join them.

Two kinds of batch, so the model learns both fine distinctions and the garment kind:

* a *group* batch comes from one (dataset, category) group, or with ``group_by="kind"`` one
  (dataset, garment kind of the target) group: its in-batch negatives are garments of the same
  kind, the ones a gallery has to tell apart. Grouping by kind makes them harder where a
  category holds many kinds (H&M's "upper" holds T-shirts, blouses, hoodies...): the batch's
  other targets are then other T-shirts, many in the requested colour, which is what a
  colourway query's top 10 must rank below the exact garment;
* a *mixed* batch (a ``mixed_share`` of all batches) draws every triplet from any category of
  the datasets: negatives of other kinds teach the model to keep the reference's kind when a
  shopper searches all categories at once.

Extension point for hard negatives: a `NegativeMiner` is any callable that, given a batch's
triplets, names extra target images; `TripletBatches(miners=[...])` appends their features
after the batch's own targets, and `model.loss.BatchClassificationLoss` counts every extra row
as a negative for every query (a row that is a query's own target is masked for it).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from dataprep import Triplet, eval_caption, train_caption
from model.data import Dataset
from model.evaluate import item_kinds
from model.feature_cache import FeatureBank
from model.train_config import GROUP_BY

if TYPE_CHECKING:
    from model.retriever import Retriever

logger = logging.getLogger(__name__)


class NegativeMiner(Protocol):
    """Extra negative targets for one batch: image ids (ids the feature bank lacks are
    dropped). Draw randomness from ``rng`` only, so a resumed run draws the same."""

    def __call__(self, triplets: Sequence[Triplet], rng: random.Random) -> list[str]: ...


class ListedNegatives:
    """Up to ``per_triplet`` of the hard negatives each triplet's annotation names
    (`Triplet.negatives`): the data builder knows which items are wrong for the words (a
    gloved item for "without sleeves", a bag in the target's colour), the batch does not."""

    def __init__(self, per_triplet: int):
        self.per_triplet = per_triplet

    def __call__(self, triplets: Sequence[Triplet], rng: random.Random) -> list[str]:
        out: list[str] = []
        for t in triplets:
            out += rng.sample(t.negatives, min(self.per_triplet, len(t.negatives)))
        return out


def flip_grid(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror (B, side*side, C) grid tokens left-right where mask is True."""
    b, n, c = tokens.shape
    side = math.isqrt(n)
    grid = tokens.view(b, side, side, c)
    return torch.where(mask[:, None, None, None], grid.flip(2), grid).view(b, n, c)


class TripletBatches:
    """Batches of (reference features, caption, target features) drawn from a FeatureBank.

    Each batch first picks a dataset with probability ``dataset_weights`` (default: in
    proportion to its triplets), so a small, important dataset is not drowned out. Which
    triplets an epoch draws depends only on (seed, epoch), so a resumed run draws the same.
    Every batch carries the garment-kind code of each reference and target (product type
    where the triplet's own dataset's metadata has one, else the category) for
    `model.loss.kind_loss`. With ``fixed_captions`` each triplet always gets its evaluation
    caption and the batch numbers each (reference, caption) as a row (``query_rows``), for
    `model.token_memo`.
    """

    def __init__(self, retriever: Retriever, bank: FeatureBank, datasets: list[Dataset],
                 batch_size: int, flip: bool, seed: int, mixed_share: float = 0.0,
                 dataset_weights: Sequence[float] | None = None, group_by: str = "category",
                 fixed_captions: bool = False, miners: Sequence[NegativeMiner] = ()):
        if group_by not in GROUP_BY:
            raise ValueError(f"group_by must be one of {GROUP_BY}, not {group_by!r}")
        self.retriever, self.bank, self.flip = retriever, bank, flip
        self.fixed_captions, self.miners = fixed_captions, list(miners)
        self.query_rows: dict[tuple[str, str], int] = {}  # (reference, caption) -> row
        self.batch_size, self.mixed_share, self.seed = batch_size, mixed_share, seed
        self.rng = random.Random(seed)
        kinds = {d.name: item_kinds(d.root, d.train) if d.root else {} for d in datasets}
        self.groups = _groups(datasets, kinds, group_by)  # (dataset, group) -> triplets
        self.triplets = [t for group in self.groups.values() for t in group]
        self.names = list(dict.fromkeys(name for name, _ in self.groups))
        self.weights = self._dataset_weights(dataset_weights)
        # Each triplet's codes come from its own dataset: an image listed by two datasets
        # (H&M's attribute and feedback folders) keeps each one's kind and distillation there.
        self.source = {_identity(t): d.name for d in datasets for t in d.train.triplets}
        self.target_codes = {tid: k for k, tid in enumerate(bank.index)}
        self.kind_codes = _kind_codes(datasets, kinds)  # (dataset, image id) -> kind code

    def _dataset_weights(self, given: Sequence[float] | None) -> np.ndarray:
        sizes = np.array([sum(len(g) for (n, _), g in self.groups.items() if n == name)
                          for name in self.names], dtype=float)
        weights = sizes if given is None else np.asarray(given, float)
        if len(weights) != len(self.names):
            raise ValueError(f"{len(weights)} dataset weights for {len(self.names)} datasets "
                             f"with training triplets ({', '.join(self.names)})")
        return weights / weights.sum()

    def query_keys(self) -> set[tuple[str, str]]:
        """Every (reference, caption) a batch can number as a row with ``fixed_captions``."""
        return {(t.candidate, eval_caption(t.captions)) for t in self.triplets}

    def __len__(self) -> int:
        """Batches in one pass over the training triplets."""
        return len(self.triplets) // self.batch_size

    def draw(self, rng: random.Random) -> list[Triplet]:
        """The triplets of one batch (without repeats inside the batch)."""
        name = rng.choices(self.names, weights=self.weights)[0]
        groups = [g for (n, _), g in self.groups.items() if n == name]
        if rng.random() < self.mixed_share:
            pool = [t for g in groups for t in g]
        else:
            pool = rng.choices(groups, weights=[len(g) for g in groups])[0]
        return rng.sample(pool, min(self.batch_size, len(pool)))

    def epoch(self, epoch: int) -> Iterator[dict[str, torch.Tensor]]:
        rng = random.Random(f"{self.seed}-{epoch}")
        while True:
            yield self.batch(self.draw(rng))

    def batch(self, triplets: Sequence[Triplet]) -> dict[str, torch.Tensor]:
        """The training batch of ``triplets`` from cached features, plus mined negatives."""
        targets = [t.target for t in triplets] + self.mine(triplets)
        return self.assemble(triplets, *self.bank.lookup([t.candidate for t in triplets]),
                             *self.bank.lookup(targets), targets)

    def mine(self, triplets: Sequence[Triplet]) -> list[str]:
        """Every miner's extra negatives that the feature bank holds (none without miners)."""
        extra = [i for miner in self.miners for i in miner(triplets, self.rng)]
        return [i for i in extra if i in self.target_codes]

    def assemble(self, triplets: Sequence[Triplet], ref_whole: torch.Tensor,
                 ref_crop: torch.Tensor, tar_whole: torch.Tensor, tar_crop: torch.Tensor,
                 targets: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """A training batch from backbone features (cached or just computed) and captions;
        ``targets`` names the rows of the target features (default: the triplets' targets)."""
        if self.flip:
            for whole, crop in ((ref_whole, ref_crop), (tar_whole, tar_crop)):
                mask = torch.rand(len(whole)) < 0.5
                whole.copy_(flip_grid(whole, mask))
                crop.copy_(flip_grid(crop, mask))
        targets = [t.target for t in triplets] if targets is None else targets
        captions = [eval_caption(t.captions) if self.fixed_captions
                    else train_caption(t.captions, self.rng) for t in triplets]
        return {"ref_whole": ref_whole, "ref_crop": ref_crop, "tar_whole": tar_whole,
                "tar_crop": tar_crop, **self.retriever.tokenize(captions),
                **self._rows(triplets, captions),
                "target_ids": torch.tensor([self.target_codes[i] for i in targets]),
                **self._codes(triplets)}

    def _codes(self, triplets: Sequence[Triplet]) -> dict[str, torch.Tensor]:
        """Kind codes of each reference and target, and each query's dataset, all read in
        the triplet's own dataset."""
        names = [self.source[_identity(t)] for t in triplets]
        return {"ref_kinds": torch.tensor([self.kind_codes[n, t.candidate]
                                           for n, t in zip(names, triplets, strict=True)]),
                "tar_kinds": torch.tensor([self.kind_codes[n, t.target]
                                           for n, t in zip(names, triplets, strict=True)]),
                "query_datasets": torch.tensor([self.names.index(n) for n in names])}

    def _rows(self, triplets: Sequence[Triplet], captions: list[str]) -> dict[str, torch.Tensor]:
        """With ``fixed_captions``: the memo row of each (reference, caption)."""
        if not self.fixed_captions:
            return {}
        return {"query_rows": torch.tensor([
            self.query_rows.setdefault((t.candidate, c), len(self.query_rows))
            for t, c in zip(triplets, captions, strict=True)])}


def _groups(datasets: list[Dataset], kinds: dict[str, dict[str, str]], group_by: str
            ) -> dict[tuple[str, str], list[Triplet]]:
    groups: dict[tuple[str, str], list[Triplet]] = {}
    for d in datasets:
        for t in d.train.triplets:
            group = kinds[d.name].get(t.target, t.category) if group_by == "kind" \
                else t.category
            groups.setdefault((d.name, group), []).append(t)
    return groups


def _identity(t: Triplet) -> tuple:
    """A triplet by value, so a copy of it finds its dataset too (the very same triplet in two
    datasets counts as the later one's)."""
    return t.candidate, t.target, t.category, tuple(t.captions)


def _kind_codes(datasets: list[Dataset], kinds: dict[str, dict[str, str]]
                ) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    codes: dict[tuple[str, str], int] = {}
    for d in datasets:
        for t in d.train.triplets:
            for i in (t.candidate, t.target):
                kind = (d.name, kinds[d.name].get(i, t.category))
                out[d.name, i] = codes.setdefault(kind, len(codes))
    return out
