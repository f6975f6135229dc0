"""The distillation term (`python -m model.train --distill W`): a frozen teacher's ranking of each
batch, taught to a cheaper reference side.

Why: a query pays for the reference side, so a smaller one (a pooled grid, fewer text layers;
`model.retriever.with_query_side`) answers faster; trained beside the usual loss towards the
teacher's whole softmax over the batch's targets, it keeps the teacher's ranking, and the
target side (so every catalog indexed with the teacher) stays the teacher's (README stage 21).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.loss import BatchClassificationLoss


def distillation_loss(loss: BatchClassificationLoss, f_ref: torch.Tensor,
                      teacher_ref: torch.Tensor, f_tar: torch.Tensor,
                      target_ids: torch.Tensor | None = None,
                      query_groups: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) of each query's softmax over the batch's targets, at ``loss``'s
    temperature(s): the student learns the teacher's whole ranking of the batch, not only
    where the own target lands."""
    student = loss.get_logits(f_ref, f_tar, target_ids, query_groups=query_groups)
    with torch.no_grad():
        teacher = loss.get_logits(teacher_ref, f_tar, target_ids, query_groups=query_groups)
    return F.kl_div(student.log_softmax(dim=-1), teacher.log_softmax(dim=-1),
                    reduction="batchmean", log_target=True)
