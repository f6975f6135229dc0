"""Token-block outputs computed once per query and per target, for ``model.train --paths-only``.

Why: the residual paths (``RESIDUAL_PATHS``: global and sentence) are a few small matrix
products, while the token fusion under them is a 4-layer transformer over about 75 tokens, the
cost of every training step. With the token blocks and the text transformer frozen, their
output for a query (reference image + words) or a target never changes, so it is computed on
the first batch that draws it and reused: later steps cost only the paths. The paths can then
see every training triplet several times, as the combiner baseline does in its few minutes, in
the time a full fine-tune spends on a fraction of one epoch.

The memo assumes the same inputs each time a row comes back: batches must come without
flips, with one fixed caption per triplet (``TripletBatches(fixed_captions=True)``), which
numbers each (reference, caption) as a row.
"""

from __future__ import annotations

import torch
from torch import nn


class TokenOutputMemo:
    """f_ref / f_tar of a batch from memoised token outputs and the live residual paths."""

    def __init__(self, net: nn.Module, queries: int, targets: int, device: torch.device):
        self.net, self.device = net, device
        self.query_out: dict[str, torch.Tensor] = {}  # name -> (queries, dim), filled lazily
        self.target_out: dict[str, torch.Tensor] = {}
        self.query_known = torch.zeros(queries, dtype=torch.bool, device=device)
        self.target_known = torch.zeros(targets, dtype=torch.bool, device=device)
        self.computed = 0  # token-block passes so far (queries + targets), for the log

    def __call__(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        rows, targets = batch["query_rows"], batch["target_ids"]
        self._fill(self.query_out, self.query_known, rows, batch["ref_whole"],
                   batch["ref_crop"], batch["input_ids"], batch["attention_mask"])
        self._fill(self.target_out, self.target_known, targets, batch["tar_whole"],
                   batch["tar_crop"])
        sentence = self.query_out.get("sentence")
        f_ref = self.net.compose_reference(self.query_out["fused"][rows], batch["ref_whole"],
                                           None if sentence is None else sentence[rows])
        f_tar = self.net.compose_target(self.target_out["target"][targets], batch["tar_whole"])
        return f_ref, f_tar

    @torch.no_grad()
    def _fill(self, store: dict[str, torch.Tensor], known: torch.Tensor, rows: torch.Tensor,
              whole: torch.Tensor, crop: torch.Tensor, *words: torch.Tensor) -> None:
        """Run the token blocks (in eval mode: no dropout, as at query time) on the rows not
        yet known; a row drawn twice in one batch is computed once."""
        missing = ~known[rows]
        if not missing.any():
            return
        rows, first = _first_of_each(rows[missing])
        picks = missing.nonzero().squeeze(1)[first]
        was_training = self.net.training
        self.net.eval()
        try:
            out = self.net.token_outputs(whole[picks], crop[picks], *(w[picks] for w in words))
        finally:
            self.net.train(was_training)
        for name, value in out.items():
            if name not in store:
                store[name] = torch.zeros(len(known), value.shape[1], device=self.device)
            store[name][rows] = value.float()
        known[rows] = True
        self.computed += len(rows)


def _first_of_each(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of ``rows`` and the position of each one's first occurrence."""
    unique, inverse = torch.unique(rows, return_inverse=True)
    first = torch.full((len(unique),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), "amin")
    return unique, first
