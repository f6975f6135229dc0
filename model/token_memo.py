"""Token-block outputs computed once per query and per target, for ``model.train --paths-only``.

Why: the residual paths (``RESIDUAL_PATHS``: global, sentence and phrase) are a few small matrix
products, while the token fusion under them is a 4-layer transformer over about 75 tokens, the
cost of every training step. With the token blocks and the text transformer frozen, their
output for a query (reference image + words) or a target never changes, so it is computed on
the first batch that draws it and reused: later steps cost only the paths. The paths can then
see every training triplet several times, as the combiner baseline does in its few minutes, in
the time a full fine-tune spends on a fraction of one epoch.

The memo assumes the same inputs each time a row comes back: batches must come without
flips, with one fixed caption per triplet (``TripletBatches(fixed_captions=True)``), which
numbers each (reference, caption) as a row.

The filled outputs are also written to disk after every epoch (``save``), named by what they
depend on (``memo_key``: the frozen weights and the backbone features), so a resumed run or the
next experiment from the same checkpoint starts with them instead of paying the first epoch's
token-block passes again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Collection
from pathlib import Path

import torch
from torch import nn

from model.checkpoint import fingerprint
from model.config import HEAD_PREFIXES, RESIDUAL_PREFIXES, ModelConfig

logger = logging.getLogger(__name__)

QueryKey = tuple[str, str]  # (reference id, caption)


def memo_key(net: nn.Module, cfg: ModelConfig, features_key: str) -> str:
    """16 hex digits naming the token outputs ``net`` gives: the checkpoint fingerprint of its
    architecture and every weight outside the trained residual paths, and the backbone
    features it reads (``features_key``). The phrase path's frozen encoder is the package's
    text model that the architecture names, so the architecture covers it. The heads
    (HEAD_PREFIXES) read what the memo holds, as the paths do: neither they nor their config
    count (with a head off, its weight and width are not hashed either)."""
    frozen = token_block_state(net)
    cfg = dataclasses.replace(cfg, **{prefix.rstrip("."): 0 for prefix in HEAD_PREFIXES})
    return hashlib.sha256(f"{fingerprint(cfg, frozen)} {features_key}".encode()).hexdigest()[:16]


def token_block_state(net: nn.Module) -> dict[str, torch.Tensor]:
    """The weights that make the memoised outputs: all but the residual paths and the head."""
    return {name: tensor.detach().cpu() for name, tensor in net.state_dict().items()
            if not name.startswith((*RESIDUAL_PREFIXES, *HEAD_PREFIXES))}


class TokenOutputMemo:
    """f_ref / f_tar of a batch from memoised token outputs and the live residual paths."""

    def __init__(self, net: nn.Module, queries: int, targets: int, device: torch.device,
                 also: nn.Module | None = None):
        """``also``: a network with the same frozen blocks whose paths read outputs ``net``
        does not give (a distillation teacher with a path the student dropped); the memo
        holds those too."""
        self.net, self.also, self.device = net, also, device
        self.query_names = net.query_outputs() | (also.query_outputs() if also else set())
        self.query_out: dict[str, torch.Tensor] = {}  # name -> (queries, dim), filled lazily
        self.target_out: dict[str, torch.Tensor] = {}
        self.query_known = torch.zeros(queries, dtype=torch.bool, device=device)
        self.target_known = torch.zeros(targets, dtype=torch.bool, device=device)
        self.computed = 0  # token-block passes so far (queries + targets), for the log
        self.saved_at = 0  # ``computed`` when the memo last matched its file (saved or loaded)

    def __call__(self, batch: dict[str, torch.Tensor], paths: nn.Module | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(f_ref, f_tar) of the batch through ``paths``' residual paths (a network of the
        same architecture, e.g. a frozen copy of the start; default: the memo's own)."""
        paths = self.net if paths is None else paths
        rows, targets = batch["query_rows"], batch["target_ids"]
        self._fill(self.query_out, self.query_known, rows, batch["ref_whole"],
                   batch["ref_crop"], batch["input_ids"], batch["attention_mask"])
        self._fill(self.target_out, self.target_known, targets, batch["tar_whole"],
                   batch["tar_crop"])
        words = {name: self.query_out[name][rows] for name in ("sentence", "phrase")
                 if name in self.query_out}
        f_ref = paths.compose_reference(self.query_out["fused"][rows], batch["ref_whole"],
                                        **words)
        f_tar = paths.compose_target(self.target_out["target"][targets], batch["tar_whole"])
        return f_ref, f_tar

    def save(self, path: str | Path, query_rows: dict[QueryKey, int],
             target_rows: dict[str, int]) -> None:
        """Write every known output, named by (reference, caption) and by target id rather
        than by row (rows are numbered in the order batches first drew them), atomically;
        nothing to do when no pass ran since the memo last matched its file."""
        if self.computed == self.saved_at:
            return
        queries = [(key, row) for key, row in query_rows.items() if self.query_known[row]]
        picks = torch.tensor([row for _, row in queries], dtype=torch.long, device=self.device)
        targets = [(i, row) for i, row in target_rows.items() if self.target_known[row]]
        rows = torch.tensor([row for _, row in targets], dtype=torch.long, device=self.device)
        record = {"queries": [key for key, _ in queries],
                  "query_out": {n: v[picks].cpu() for n, v in self.query_out.items()},
                  "targets": [i for i, _ in targets],
                  "target_out": {n: v[rows].cpu() for n, v in self.target_out.items()}}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(record, tmp)
        tmp.replace(path)
        self.saved_at = self.computed

    def load(self, path: str | Path, query_rows: dict[QueryKey, int],
             wanted: Collection[QueryKey], target_rows: dict[str, int]) -> None:
        """Fill in the outputs a ``save`` wrote for these token blocks: saved queries among
        ``wanted`` get the next free rows in ``query_rows`` (the batches' numbering), saved
        targets their row in ``target_rows``. A missing or unreadable file is skipped."""
        try:
            record = torch.load(path, map_location=self.device, weights_only=True)
        except FileNotFoundError:
            return
        except Exception as exc:  # a cache: whatever cannot be read is computed again
            logger.warning("token memo %s unreadable (%s): computing it again", path, exc)
            return
        missing = self.query_names - set(record["query_out"])
        if missing:
            logger.warning("token memo %s has no %s: computing it again", path,
                           ", ".join(sorted(missing)))
            return
        queries = [(k, query_rows.setdefault(key, len(query_rows)))
                   for k, key in enumerate(map(tuple, record["queries"])) if key in wanted]
        targets = [(k, target_rows[i]) for k, i in enumerate(record["targets"])
                   if i in target_rows]
        for store, known, saved, pairs in ((self.query_out, self.query_known, "query_out",
                                            queries),
                                           (self.target_out, self.target_known, "target_out",
                                            targets)):
            self._put(store, known, record[saved], [k for k, _ in pairs], [r for _, r in pairs])
        logger.info("token memo %s: %d queries and %d targets already computed", path,
                    int(self.query_known.sum()), int(self.target_known.sum()))

    def _put(self, store: dict[str, torch.Tensor], known: torch.Tensor,
             saved: dict[str, torch.Tensor], picks: list[int], rows: list[int]) -> None:
        if not rows:
            return
        rows_t = torch.tensor(rows, dtype=torch.long, device=self.device)
        for name, value in saved.items():
            if name not in store:
                store[name] = torch.zeros(len(known), value.shape[1], device=self.device)
            store[name][rows_t] = value[picks].float()
        known[rows_t] = True

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
            picked = [w[picks] for w in words]
            out = self.net.token_outputs(whole[picks], crop[picks], *picked)
            if words and self.also is not None and set(out) != self.query_names:
                out = {**self.also.word_outputs(*picked), **out}  # words only: no image pass
        finally:
            self.net.train(was_training)
        self._put(store, known, out, list(range(len(rows))), rows.tolist())
        self.computed += len(rows)


def _first_of_each(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct values of ``rows`` and the position of each one's first occurrence."""
    unique, inverse = torch.unique(rows, return_inverse=True)
    first = torch.full((len(unique),), len(rows), dtype=torch.long, device=rows.device)
    first.scatter_reduce_(0, inverse, torch.arange(len(rows), device=rows.device), "amin")
    return unique, first
