"""Batch-based classification loss (FashionVLP / CLIP4Cir style), the kind term beside it, and
the factory that builds the loss for the trainer and the baselines alike.

The auxiliary terms a run may add live beside this module: `model.distillation` (a teacher's
ranking of the batch) and `model.grounding` (images <-> their descriptions).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BatchClassificationLoss(nn.Module):
    """Each query's own target is its class among all targets in the batch.

    Scores are cosine similarities times a learnable inverse temperature. When two queries in
    a batch share the same target image, the duplicate is not counted as a negative. ``f_tar``
    may hold more rows than ``f_ref``: the first ``len(f_ref)`` are the queries' targets, the
    rest extra negatives (a `model.sampling.NegativeMiner`'s), with ``target_ids`` for all.

    With ``groups`` > 1 each group of queries (`model.train`: each dataset) learns its own
    temperature, and every call names each query's group (``query_groups``). Why: one shared
    temperature may be a compromise between a colourway query, which has one right answer, and
    a products query, whose batch holds other items that satisfy it as well (README, stages
    10-12). Measured: the per-dataset temperatures climbed together (stage 14). Ranking never
    sees the temperature, so this changes training only.
    """

    def __init__(self, init_scale: float = 10.0, max_scale: float = 100.0, groups: int = 1):
        super().__init__()
        shape = () if groups == 1 else (groups,)  # a scalar keeps older train states loading
        self.log_scale = nn.Parameter(torch.full(shape, math.log(init_scale)))
        self.max_log_scale = math.log(max_scale)

    def scales(self) -> list[float]:
        """The inverse temperature(s), one per group."""
        return self.log_scale.detach().clamp(max=self.max_log_scale).exp().reshape(-1).tolist()

    def get_logits(self, f_ref: torch.Tensor, f_tar: torch.Tensor,
                   target_ids: torch.Tensor | None = None,
                   query_groups: torch.Tensor | None = None) -> torch.Tensor:
        """Scaled similarities (B, targets); a duplicate of a query's target is masked out
        (never the query's own target on the diagonal)."""
        scale = self.log_scale.clamp(max=self.max_log_scale).exp()
        if scale.ndim:  # one per group: each query's row gets its group's
            if query_groups is None:
                raise ValueError(f"a loss with {len(scale)} temperatures needs query_groups")
            scale = scale[query_groups][:, None]
        return mask_duplicates(scale * f_ref @ f_tar.T, target_ids)  # (B, B + extra negatives)

    def forward(self, f_ref: torch.Tensor, f_tar: torch.Tensor,
                target_ids: torch.Tensor | None = None,
                kinds: tuple[torch.Tensor, torch.Tensor] | None = None,
                kind_weight: float = 0.0,
                query_groups: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy over the batch; with ``kinds`` (garment-kind codes of each query's
        reference and of each target) plus ``kind_weight`` times `kind_loss`."""
        logits = self.get_logits(f_ref, f_tar, target_ids, query_groups)
        n = len(logits)
        loss = F.cross_entropy(logits, torch.arange(n, device=logits.device))
        ids = None if target_ids is None else target_ids[:n]  # the queries' own targets only
        if kinds is not None and kind_weight > 0:
            loss = loss + kind_weight * kind_loss(logits[:, :n], *kinds, ids)
        return loss


def mask_duplicates(logits: torch.Tensor, target_ids: torch.Tensor | None) -> torch.Tensor:
    """``logits`` (B, targets) with each column that repeats a query's own target (by
    ``target_ids``) masked out, never the query's own column on the diagonal."""
    if target_ids is None:
        return logits
    same = target_ids[:len(logits), None] == target_ids[None, :]
    same.fill_diagonal_(False)
    return logits.masked_fill(same, torch.finfo(logits.dtype).min)


def kind_loss(logits: torch.Tensor, ref_kinds: torch.Tensor, tar_kinds: torch.Tensor,
              target_ids: torch.Tensor | None = None) -> torch.Tensor:
    """-log of the probability mass that a query puts on targets of its reference's garment
    kind, among the batch's *other* targets (its own target and duplicates of it, both
    masked out of the logits, left out).

    Why: the batch cross-entropy only asks that the exact target comes first; it says nothing
    about ranks 2-10, so a shopper's top 10 could fill with red items of any kind after "is
    red". Leaving the query's own target out keeps this term pushing after the target already
    ranks first (an earlier form counted the target as same-kind mass and went quiet as soon
    as the target dominated; measured in the README). Queries whose other targets are all of
    one kind, or none of the reference's kind, have nothing to rank and are left out.
    """
    n = len(logits)
    own = torch.eye(n, dtype=torch.bool, device=logits.device)
    if target_ids is not None:
        own |= target_ids[:, None] == target_ids[None, :]
    same = (ref_kinds[:, None] == tar_kinds[None, :]) & ~own
    other = ~same & ~own
    rankable = same.any(dim=1) & other.any(dim=1)
    if not rankable.any():
        return logits.new_zeros(())  # not logits.sum() * 0: masked duplicates sum to -inf
    # Only rankable rows: a row with every entry masked would give NaN gradients.
    rows = logits[rankable].masked_fill(own[rankable], float("-inf"))
    log_p = rows.log_softmax(dim=-1)
    return -log_p.masked_fill(~same[rankable], float("-inf")).logsumexp(dim=-1).mean()


def make_loss(cfg=None, max_scale: float = 100.0, init_scale: float | None = None,
              groups: int = 1) -> BatchClassificationLoss:
    """The training loss; ``init_scale``, else ``cfg`` (a ModelConfig), sets the initial
    inverse temperature (default 10) of each of its ``groups``."""
    if init_scale is None:
        init_scale = getattr(cfg, "init_logit_scale", 10.0)
    return BatchClassificationLoss(init_scale, max_scale, groups)
