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


def distillation_loss(loss: BatchClassificationLoss, f_ref: torch.Tensor, f_tar: torch.Tensor,
                      teacher_ref: torch.Tensor, teacher_tar: torch.Tensor,
                      target_ids: torch.Tensor | None = None,
                      query_groups: torch.Tensor | None = None,
                      rows: torch.Tensor | None = None, temperature: float = 1.0
                      ) -> torch.Tensor:
    """KL(teacher || student) of each query's softmax over the batch's targets, at ``loss``'s
    temperature(s) times ``temperature`` (the term scaled by its square, as Hinton et al.
    do): the student learns the teacher's whole ranking of the batch, not only where the own
    target lands; above 1 the softmax also weighs the ranks after the first. ``rows`` (a
    boolean mask over the queries) picks the queries taught; none picked gives 0."""
    if rows is not None:
        if not rows.any():
            return f_ref.new_zeros(())
        f_ref, teacher_ref = f_ref[rows], teacher_ref[rows]
        query_groups = None if query_groups is None else query_groups[rows]
        # Every target stays a column, the picked queries' own first (get_logits finds a
        # query's own target on the diagonal), then the others, then the extra negatives.
        order = torch.cat([rows.nonzero().squeeze(1), (~rows).nonzero().squeeze(1),
                           torch.arange(len(rows), len(f_tar), device=rows.device)])
        f_tar, teacher_tar = f_tar[order], teacher_tar[order]
        target_ids = None if target_ids is None else target_ids[order]
    student = loss.get_logits(f_ref, f_tar, target_ids, query_groups=query_groups)
    with torch.no_grad():
        teacher = loss.get_logits(teacher_ref, teacher_tar, target_ids, query_groups=query_groups)
    return temperature ** 2 * F.kl_div((student / temperature).log_softmax(dim=-1),
                                       (teacher / temperature).log_softmax(dim=-1),
                                       reduction="batchmean", log_target=True)
