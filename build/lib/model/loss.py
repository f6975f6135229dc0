"""Batch-based classification loss (FashionVLP / CLIP4Cir style) and the factory that builds it
for the trainer and the baselines alike."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BatchClassificationLoss(nn.Module):
    """Each query's own target is its class among all targets in the batch.

    Scores are cosine similarities times a learnable inverse temperature. When two queries in
    a batch share the same target image, the duplicate is not counted as a negative.
    """

    def __init__(self, init_scale: float = 10.0, max_scale: float = 100.0):
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))
        self.max_log_scale = math.log(max_scale)

    def get_logits(self, f_ref: torch.Tensor, f_tar: torch.Tensor,
                   target_ids: torch.Tensor | None = None) -> torch.Tensor:
        scale = self.log_scale.clamp(max=self.max_log_scale).exp()
        logits = scale * f_ref @ f_tar.T  # (B, B)
        if target_ids is not None:
            same = target_ids[:, None] == target_ids[None, :]
            same.fill_diagonal_(False)
            logits = logits.masked_fill(same, torch.finfo(logits.dtype).min)
        return logits

    def forward(self, f_ref: torch.Tensor, f_tar: torch.Tensor,
                target_ids: torch.Tensor | None = None) -> torch.Tensor:
        logits = self.get_logits(f_ref, f_tar, target_ids)
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))


def make_loss(cfg=None, max_scale: float = 100.0) -> BatchClassificationLoss:
    """The training loss; ``cfg`` (a ModelConfig) sets the initial temperature, default 10."""
    return BatchClassificationLoss(getattr(cfg, "init_logit_scale", 10.0), max_scale)
