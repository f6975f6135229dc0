"""The kind classification term (`python -m model.train --kind-class-weight W`, with a kind
path): the kind vector of each query and of each target is classified into the target's product
group (the category of its triplets: H&M's upper / lower / full body / shoes / accessories ...,
the other datasets' categories) against one learned prototype per group.

Why: the kind loss (model.loss.kind_loss) only compares kinds inside a batch, and half the
batches hold one kind; a prototype per group gives every batch the whole catalog's groups to be
told apart from, which is what a gallery of garments, shoes, bags and accessories asks of a
query. Groups, not H&M's product types: a request for buttons or another neckline often asks
for another type (a sweater becomes a cardigan), and classes that fine cost those changes
(Training, stage 48). The prototypes only train: a checkpoint stores the kind path, not them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class KindTerm(nn.Module):
    """Cosine classifier over ``kinds`` prototypes at a fixed inverse temperature."""

    def __init__(self, kinds: int, dim: int, scale: float = 16.0, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.prototypes = nn.Parameter(torch.randn(kinds, dim, generator=generator)
                                       / math.sqrt(dim))
        self.scale = scale

    def forward(self, kind_vectors: torch.Tensor, kinds: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of unit kind vectors (N, dim) against their kinds' prototypes."""
        logits = self.scale * kind_vectors @ F.normalize(self.prototypes, dim=-1).T
        return F.cross_entropy(logits, kinds)
