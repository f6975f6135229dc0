"""The grounding term (`python -m model.train --grounding W`): each training image against its
own description, both ways, through the same text transformer as f_ref.

Why: it ties image tokens to the words shoppers use (sleeves, necklines, materials) where the
relative captions alone name them rarely; it won the products split in both of its runs (README
stages 8 and 18, on the shipped chain).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence

import torch

from dataprep import read_metadata_column
from model.device import autocast
from model.feature_cache import FeatureBank
from model.loss import BatchClassificationLoss

logger = logging.getLogger(__name__)


def grounding_texts(annotations: Sequence[str], ids: set[str]) -> dict[str, str]:
    """id -> words describing the item (metadata.csv's ``description``, else its ``title``) for
    the training images of every annotation root that has a metadata.csv."""
    out: dict[str, str] = {}
    for root in annotations:
        texts = read_metadata_column(root, ("description", "title"))
        out.update({i: t for i, t in texts.items() if i in ids and t})
    return out


class GroundingTerm:
    """Image <-> description cross-entropy over ``batch_size`` described images at a time."""

    def __init__(self, pairs: list[tuple[str, str]], batch_size: int, seed: int):
        self.pairs = pairs  # (image id, description), sorted
        self.batch_size = batch_size
        self.rng = random.Random(f"grounding-{seed}")

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def __call__(self, retriever, bank: FeatureBank, loss: BatchClassificationLoss,
                 device: torch.device) -> torch.Tensor:
        pairs = self.rng.sample(self.pairs, min(self.batch_size, len(self.pairs)))
        whole, crop = bank.lookup([i for i, _ in pairs])
        texts = [t for _, t in pairs]
        codes = {t: k for k, t in enumerate(texts)}  # one text twice: not a negative
        same = torch.tensor([codes[t] for t in texts], device=device)
        tokens = {k: v.to(device) for k, v in retriever.tokenize(texts).items()}
        with autocast(device):
            f_img = retriever.net.encode_target(whole.to(device), crop.to(device))
            f_txt = retriever.net.encode_text(**tokens)
        f_img, f_txt = f_img.float(), f_txt.float()
        return 0.5 * (loss(f_txt, f_img, same) + loss(f_img, f_txt, same))
