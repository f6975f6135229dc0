"""The distillation terms: a frozen teacher's ranking of each batch, taught beside the loss
(`python -m model.train --distill W`: the --init-from checkpoint, to a cheaper reference side or
to the paths; `--teacher-vectors FILE`: another model's vectors, `TeacherVectors`).

Why --distill: a query pays for the reference side, so a smaller one (a pooled grid, fewer text
layers; `model.retriever.with_query_side`) answers faster; trained beside the usual loss towards
the teacher's whole softmax over the batch's targets, it keeps the teacher's ranking, and the
target side (so every catalog indexed with the teacher) stays the teacher's (Training, stage
21). Why --teacher-vectors: a model of another design that ranks some requests better (the
combiner baseline on relative and type requests) teaches them without being run beside the
model at query time (Training, stages 62-66).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F

from model.loss import BatchClassificationLoss, mask_duplicates
from model.token_memo import QueryKey

logger = logging.getLogger(__name__)


def distillation_loss(loss: BatchClassificationLoss, f_ref: torch.Tensor, f_tar: torch.Tensor,
                      teacher_ref: torch.Tensor, teacher_tar: torch.Tensor,
                      target_ids: torch.Tensor | None = None,
                      query_groups: torch.Tensor | None = None,
                      rows: torch.Tensor | None = None, temperature: float = 1.0,
                      teacher_scale: float | None = None) -> torch.Tensor:
    """KL(teacher || student) of each query's softmax over the batch's targets, at ``loss``'s
    temperature(s) times ``temperature`` (the term scaled by its square, as Hinton et al.
    do): the student learns the teacher's whole ranking of the batch, not only where the own
    target lands; above 1 the softmax also weighs the ranks after the first. ``rows`` (a
    boolean mask over the queries) picks the queries taught; none picked gives 0.
    ``teacher_scale``: the teacher's own inverse temperature, for a teacher of another space
    (`TeacherVectors`); none: the student's loss temperature for both."""
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
        teacher = (loss.get_logits(teacher_ref, teacher_tar, target_ids, query_groups)
                   if teacher_scale is None else
                   mask_duplicates(teacher_scale * teacher_ref @ teacher_tar.T, target_ids))
    return temperature ** 2 * F.kl_div((student / temperature).log_softmax(dim=-1),
                                       (teacher / temperature).log_softmax(dim=-1),
                                       reduction="batchmean", log_target=True)


def ranks_own_target_first(f_ref: torch.Tensor, f_tar: torch.Tensor,
                           target_ids: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) bool: the queries whose own target (the diagonal) these vectors rank first among
    the batch's targets, duplicates of it masked out (the teacher's: a ranking whose first
    place is wrong teaches that error; the student's: it has nothing left to learn there)."""
    logits = mask_duplicates(f_ref @ f_tar.T, target_ids)
    return logits.argmax(dim=-1) == torch.arange(len(logits), device=logits.device)


class TeacherVectors:
    """Another model's query and target vectors for the training triplets, in its own space
    (a file of `python -m bench.teacher_vectors`: the combiner baseline), looked up per batch.

    Why a file of vectors and not the model: the teacher is trained and run once, outside the
    training loop, in whatever code defines it; the term needs only its ranking of each batch,
    which its cosines at its own temperature give. Queries are found by (reference, caption),
    so the batches need fixed captions (`model.token_memo`'s numbering of them).
    """

    def __init__(self, path: str | Path, query_rows: Mapping[QueryKey, int],
                 target_codes: Mapping[str, int], device: torch.device):
        data = torch.load(path, map_location="cpu", weights_only=True)
        self.scale = float(data["temperature"])
        self.datasets: list[str] = list(data.get("datasets", []))
        self._index = {(r, c): k for k, (r, c) in enumerate(data["keys"])}
        self._queries = data["queries"].float().to(device)
        targets = data["targets"].float()
        self._targets = torch.zeros(len(target_codes), targets.shape[1], device=device)
        self._has_target = torch.zeros(len(target_codes), dtype=torch.bool, device=device)
        rows = [(target_codes[i], k) for k, i in enumerate(data["images"]) if i in target_codes]
        if rows:
            at, of = map(torch.tensor, zip(*rows, strict=True))
            self._targets[at.to(device)] = targets[of].to(device)
            self._has_target[at.to(device)] = True
        self._query_rows, self._by_row = query_rows, torch.empty(0, dtype=torch.long)
        self.skipped = 0  # batches with a target the teacher has no vector of
        logger.info("teacher vectors %s: %d queries, %d of the %d images, temperature %.1f",
                    path, len(self._index), len(rows), len(target_codes), self.scale)

    def lookup(self, query_rows: torch.Tensor, target_ids: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(teacher f_ref (B, D), teacher f_tar (T, D), which queries it knows (B,)) of a
        batch, or None when a target (a column every query ranks) has no teacher vector."""
        if not bool(self._has_target[target_ids].all()):
            self.skipped += 1
            return None
        if int(query_rows.max()) >= len(self._by_row):  # rows numbered since the last lookup
            new = islice(self._query_rows, len(self._by_row), None)
            self._by_row = torch.cat([self._by_row, torch.tensor(
                [self._index.get(key, -1) for key in new], dtype=torch.long)])
        index = self._by_row[query_rows.cpu()].to(self._queries.device)
        known = index >= 0
        return self._queries[index.clamp(min=0)], self._targets[target_ids], known
