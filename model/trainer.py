"""The training loop: `Trainer` sets a run up from a `TrainConfig`, then steps, validates and
checkpoints epoch by epoch (`fit`).

What it composes, each from its own module: the datasets (`model.data`), the batches and extra
negatives (`model.sampling`), the loss and its auxiliary terms (`model.loss`,
`model.distillation`, `model.grounding`), the token memo of frozen blocks (`model.token_memo`),
validation (`model.validation`) and the run folder (`model.checkpointing`). New training data or
hard negatives plug in through ``Trainer(cfg, datasets=..., miners=...)`` (or a registered
`model.data` source) without a change here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from model.checkpointing import RunFolder
from model.config import RESIDUAL_PATHS, RESIDUAL_PREFIXES, ModelConfig
from model.data import Dataset, load_datasets
from model.device import autocast, resolve_device
from model.distillation import TeacherVectors, distillation_loss, ranks_own_target_first
from model.evaluate import restrict_to_bank
from model.feature_cache import FeatureBank, extract_features, extract_trunk_features
from model.grounding import GroundingTerm, grounding_texts
from model.loss import make_loss
from model.optim import adamw, warmup_cosine_schedule
from model.retriever import (
    Retriever,
    build_retriever,
    load_retriever,
    with_query_side,
    with_residual_paths,
    without_paths,
)
from model.sampling import ListedNegatives, NegativeMiner, TripletBatches
from model.token_memo import TokenOutputMemo, memo_key
from model.train_config import TrainConfig
from model.validation import validate

logger = logging.getLogger(__name__)

DISTILLED_PREFIXES = ("reference.", "sentence_path.", "phrase_path.")  # --distill: query side
TAIL_PREFIX = "backbone_tail."  # the backbone's last stage, in the optimiser's names


class Trainer:
    """One training run. ``datasets`` (default: read from ``cfg.annotations``) and ``miners``
    (extra negatives, `model.sampling.NegativeMiner`) are the extension points."""

    def __init__(self, cfg: TrainConfig, datasets: list[Dataset] | None = None,
                 miners: Sequence[NegativeMiner] = ()):
        self.cfg, self.run = cfg, RunFolder(cfg.out)
        self.out = self.run.out
        torch.manual_seed(cfg.seed)
        self.resuming = cfg.resume and self.run.has_state()
        self.retriever = self._start_model()
        # A tail at --tail-lr 0 is frozen like the rest of the backbone: its grid is cached
        # (the cache key covers the tail's weights), no trunk pass, no tail in the steps.
        tail = self.retriever.cfg.backbone_tail and cfg.tail_lr != 0
        cfg.check(tail)
        self.datasets = datasets if datasets is not None else load_datasets(
            cfg.annotations, cfg.images, cfg.categories, cfg.holdout)
        self.bank = self._cache_features(tail)
        if cfg.listed_negatives:
            miners = [*miners, ListedNegatives(cfg.listed_negatives)]
        self.batches = self._batches(tail, miners)
        self.device = resolve_device(cfg.device)
        self.retriever.to(self.device)
        self.loss = make_loss(self.retriever.cfg, init_scale=cfg.logit_scale,
                              groups=len(self.batches.names) if cfg.dataset_scales else 1
                              ).to(self.device)
        self.loss.log_scale.requires_grad_(not cfg.freeze_scale)
        self.retriever.set_trainable()
        self.teacher_paths = self._teacher_paths()
        self.memo, self.memo_file = self._memo()
        self.optimizer, self.trained = self._optimizer(tail)
        self.steps_per_epoch = min(len(self.batches), cfg.steps_per_epoch or len(self.batches))
        self.scheduler = warmup_cosine_schedule(self.optimizer, self.steps_per_epoch * cfg.epochs,
                                                cfg.warmup)
        self.grounding = self._grounding()
        self.distilled = self._dataset_codes("--distill-datasets", cfg.distill_datasets)
        self.teacher, self.taught = self._teacher_vectors()
        self.epoch, self.best = 0, -1.0
        if self.resuming:
            self._load_state()

    # ------------------------------------------------------------------ setup
    def _start_model(self) -> Retriever:
        """OUT/last when resuming, else the --init-from checkpoint (with what the config adds
        to it), else a new model; training runs the PyTorch modules (engine eager)."""
        cfg = self.cfg
        if self.resuming:
            retriever = load_retriever(self.run.last, engine="eager")
        elif cfg.init_from:
            retriever = fine_tuning_start(cfg.init_from, cfg.model, cfg.drop_paths or ())
        else:
            retriever = build_retriever(cfg.model, cfg.seed)
        if (self.resuming or cfg.init_from) and retriever.cfg != cfg.model:
            logger.warning("resuming with the architecture stored in %s, not the one asked for",
                           self.run.last if self.resuming else cfg.init_from)
        if cfg.model.backbone_tail and not retriever.cfg.backbone_tail:
            retriever.cfg = dataclasses.replace(retriever.cfg, backbone_tail=True)
            retriever.invalidate_fingerprint()
        return retriever

    def _cache_features(self, tail: bool) -> FeatureBank:
        """Backbone features of every image, computed once (the trunk's, for a trained tail);
        triplets whose images could not be read are dropped here."""
        paths = {}
        for d in self.datasets:
            paths.update(d.image_paths)
        extract = extract_trunk_features if tail else extract_features
        bank = extract(self.retriever.encoder, paths, self.cfg.cache_dir or None,
                       workers=self.cfg.workers)
        for d in self.datasets:
            d.train, d.val = restrict_to_bank(d.train, bank), restrict_to_bank(d.val, bank)
        return bank

    def _batches(self, tail: bool, miners: Sequence[NegativeMiner]) -> TripletBatches:
        cfg = self.cfg
        if tail and cfg.flip:  # a flip of the tail's input would be a different image's grid
            logger.info("training the backbone's tail: no flips of the cached trunk features")
        batches = TripletBatches(self.retriever, self.bank, self.datasets, cfg.batch_size,
                                 cfg.flip and not cfg.memoised and not tail, cfg.seed,
                                 cfg.mixed_share, cfg.dataset_weights, cfg.group_by,
                                 fixed_captions=cfg.memoised, miners=miners)
        if len(batches) == 0:
            raise ValueError(f"fewer training triplets ({len(batches.triplets)}) than one "
                             f"batch ({cfg.batch_size}): lower --batch-size")
        return batches

    def _memo(self) -> tuple[TokenOutputMemo | None, Path | None]:
        """With --paths-only or --distill: freeze all but what trains, and memoise the frozen
        blocks' outputs (paths only) or the teacher's (distill), on disk under the cache."""
        cfg = self.cfg
        if not cfg.memoised:
            return None, None
        trained = RESIDUAL_PREFIXES if cfg.paths_only else DISTILLED_PREFIXES
        for name, param in self.retriever.net.named_parameters():
            param.requires_grad_(param.requires_grad and name.startswith(trained))
        teacher = self.retriever
        if cfg.distill > 0 and not cfg.paths_only:
            teacher = load_retriever(cfg.init_from, engine="eager").to(self.device)
            teacher.net.requires_grad_(False)
            logger.info("training only the reference side, distilled from %s", cfg.init_from)
        else:
            logger.info("training only %s over frozen token blocks", ", ".join(
                n for n in RESIDUAL_PATHS if getattr(self.retriever.cfg, n)))
        memo = TokenOutputMemo(teacher.net, len(self.batches.triplets), len(self.bank.index),
                               self.device, also=self.teacher_paths)
        if not cfg.cache_dir:
            return memo, None
        key = memo_key(teacher.net, teacher.cfg, teacher.encoder.cache_key)
        memo_file = Path(cfg.cache_dir) / "token_memo" / f"{key}.pt"
        memo.load(memo_file, self.batches.query_rows, self.batches.query_keys(),
                  self.batches.target_codes)
        return memo, memo_file

    def _optimizer(self, tail: bool) -> tuple[torch.optim.Optimizer, list[torch.nn.Parameter]]:
        """AdamW with the text layers, the sentence path and the tail at their own rates (a
        rate of 0 freezes what it names); returns it and the parameters it trains."""
        cfg = self.cfg
        path_lr = cfg.lr if cfg.path_lr is None else cfg.path_lr
        rates = {"reference.text.": cfg.text_lr, "sentence_path.": path_lr,
                 "phrase_path.": path_lr}
        named = list(self.retriever.net.named_parameters())
        if tail:
            rates[TAIL_PREFIX] = cfg.lr if cfg.tail_lr is None else cfg.tail_lr
            named += [(TAIL_PREFIX + k, p)
                      for k, p in self.retriever.encoder.tail_parameters().items()]
        optimizer = adamw(named, cfg.lr, cfg.weight_decay, extra=self.loss.parameters(),
                          prefix_lrs=rates)
        return optimizer, [p for _, p in named if p.requires_grad]

    def _teacher_paths(self) -> torch.nn.Module | None:
        """With --distill and --paths-only: the --init-from network, frozen, whose residual
        paths over the shared token memo (its token blocks are the student's) teach the
        batches. From --init-from, not a copy of the model: a resumed run's model is OUT/last."""
        cfg = self.cfg
        if cfg.distill <= 0 or not cfg.paths_only:
            return None
        logger.info("the paths of %s, frozen, teach the queries of %s", cfg.init_from,
                    ", ".join(cfg.distill_datasets or self.batches.names))
        start = load_retriever(cfg.init_from, engine="eager")
        return start.net.to(self.device).requires_grad_(False)

    def _dataset_codes(self, flag: str, names: Sequence[str] | None) -> torch.Tensor | None:
        """The codes of the datasets ``names`` (None: no restriction, every query's)."""
        if not names:
            return None
        unknown = sorted(set(names) - set(self.batches.names))
        if unknown:
            raise ValueError(f"{flag} {', '.join(unknown)}: not among the "
                             f"training datasets ({', '.join(self.batches.names)})")
        return torch.tensor([self.batches.names.index(n) for n in names], device=self.device)

    def _teacher_vectors(self) -> tuple[TeacherVectors | None, torch.Tensor | None]:
        """With --teacher-vectors: the teacher and the codes of the datasets it teaches."""
        cfg = self.cfg
        if not cfg.teacher_vectors:
            return None, None
        teacher = TeacherVectors(cfg.teacher_vectors, self.batches.query_rows,
                                 self.batches.target_codes, self.device)
        names = cfg.teacher_datasets or [n for n in teacher.datasets if n in self.batches.names]
        return teacher, self._dataset_codes("--teacher-datasets", names)

    def _grounding(self) -> GroundingTerm:
        pairs: list[tuple[str, str]] = []
        if self.cfg.grounding > 0:
            train_ids = {i for d in self.datasets for t in d.train.triplets
                         for i in (t.candidate, t.target)}
            pairs = sorted(grounding_texts(self.cfg.annotations, train_ids).items())
            logger.info("grounding loss (weight %.2f) over %d described training images",
                        self.cfg.grounding, len(pairs))
        return GroundingTerm(pairs, self.cfg.batch_size, self.cfg.seed)

    def _load_state(self) -> None:
        state = self.run.load_state(self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss.load_state_dict(state["loss"])
        self.epoch, self.best = state["epoch"], state["best"]
        logger.info("resumed from %s after epoch %d (best %.2f)", self.run.last, self.epoch,
                    self.best)

    # ------------------------------------------------------------------ training
    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; returns the batch loss."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with autocast(self.device):
            f_ref, f_tar, teacher = self.forward(batch)
        loss = self.objective(batch, f_ref.float(), f_tar.float(), teacher)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trained, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[
            torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """(f_ref, f_tar, the teacher's (f_ref, f_tar) under --distill, else None)."""
        f_ref, f_tar = (self.retriever.net if self.memo is None else self.memo)(batch)
        if self.cfg.distill <= 0:
            return f_ref, f_tar, None
        if self.teacher_paths is not None:
            with torch.no_grad():
                return f_ref, f_tar, self.memo(batch, self.teacher_paths)
        student = self.retriever.net.encode_reference(  # the memo gave the teacher's f_ref
            batch["ref_whole"], batch["ref_crop"], batch["input_ids"], batch["attention_mask"])
        return student, f_tar, (f_ref, f_tar)

    def objective(self, batch: dict[str, torch.Tensor], f_ref: torch.Tensor,
                  f_tar: torch.Tensor, teacher: tuple[torch.Tensor, torch.Tensor] | None
                  ) -> torch.Tensor:
        """The batch loss (with the kind term) plus each auxiliary term that is on."""
        cfg = self.cfg
        loss = self.loss(f_ref, f_tar, batch["target_ids"],
                         (batch["ref_kinds"], batch["tar_kinds"]), cfg.kind_weight,
                         batch["query_datasets"])
        if self.grounding:
            loss = loss + cfg.grounding * self.grounding(self.retriever, self.bank, self.loss,
                                                         self.device)
        if teacher is not None:
            groups = batch["query_datasets"]
            rows = None if self.distilled is None else torch.isin(groups, self.distilled)
            loss = loss + cfg.distill * distillation_loss(
                self.loss, f_ref, f_tar, teacher[0].float(), teacher[1].float(),
                batch["target_ids"], groups, rows, cfg.distill_temperature)
        if self.teacher is not None:
            loss = loss + cfg.teacher_weight * self._teacher_term(batch, f_ref, f_tar)
        return loss

    def _teacher_term(self, batch: dict[str, torch.Tensor], f_ref: torch.Tensor,
                      f_tar: torch.Tensor) -> torch.Tensor:
        """The --teacher-vectors term: its ranking of the batch, for the queries of the
        datasets it teaches that it has vectors of, whose own target it ranks first and the
        student does not (0 for a batch it cannot rank). Why the filter: the teacher is worse
        than the student on some requests (several changes at once, "not in denim"), and
        where the student is already right its order of the rest only pulls the paths every
        dataset shares (Training, stages 62-66)."""
        groups, ids = batch["query_datasets"], batch["target_ids"]
        taught = torch.ones_like(groups, dtype=torch.bool) if self.taught is None \
            else torch.isin(groups, self.taught)
        found = self.teacher.lookup(batch["query_rows"], ids) if taught.any() else None
        if found is None:
            return f_ref.new_zeros(())
        teacher_ref, teacher_tar, rows = found
        with torch.no_grad():  # taught where the teacher is right and the student is not
            rows = rows & taught & ranks_own_target_first(teacher_ref, teacher_tar, ids) \
                & ~ranks_own_target_first(f_ref, f_tar, ids)
        return distillation_loss(self.loss, f_ref, f_tar, teacher_ref, teacher_tar, ids, groups,
                                 rows, self.cfg.distill_temperature,
                                 teacher_scale=self.teacher.scale)

    def train_epoch(self) -> dict[str, float]:
        self.retriever.net.train()
        started, losses = time.perf_counter(), []
        batches = self.batches.epoch(self.epoch)
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                   unit="batch")
        for _ in bar:
            losses.append(self.step(next(batches)))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}",
                            scale="/".join(f"{x:.1f}" for x in self.loss.scales()))
        self.retriever.net.eval()
        self.retriever.invalidate_fingerprint()
        seconds = time.perf_counter() - started
        stats = {"loss": float(np.mean(losses)), "seconds": seconds,
                 "scales": dict(zip(self.batches.names, self.loss.scales(), strict=True))
                 if self.cfg.dataset_scales else {"all": self.loss.scales()[0]},
                 "triplets_per_second": self.steps_per_epoch * self.cfg.batch_size / seconds}
        if self.memo is not None:  # how many token-block passes the memo has paid for so far
            stats["token_passes"] = self.memo.computed
        if self.teacher is not None:  # batches with queries it teaches that it could not rank
            stats["teacher_skipped"] = self.teacher.skipped
        return stats

    # ------------------------------------------------------------------ the run
    def fit(self) -> float:
        """Train until ``cfg.epochs`` (or ``cfg.stop_after``), validating and checkpointing
        after every epoch; returns the best validation score."""
        self.run.write_config(self.cfg)
        end = min(self.cfg.epochs, self.cfg.stop_after or self.cfg.epochs)
        while self.epoch < end:
            stats = self.train_epoch()
            self.epoch += 1
            if self.memo_file is not None:
                self.memo.save(self.memo_file, self.batches.query_rows, self.batches.target_codes)
            score, report = validate(self.retriever, self.bank, self.datasets,
                                     self.cfg.max_val_queries)
            metrics = {"epoch": self.epoch, "score": score, **stats, "val": report}
            self.run.append_metrics(metrics)
            logger.info("epoch %d: loss %.4f, %.0f s (%.0f triplets/s), val score %.2f",
                        self.epoch, stats["loss"], stats["seconds"],
                        stats["triplets_per_second"], score)
            self.save(metrics)
        return self.best

    def save(self, metrics: dict) -> None:
        """OUT/last always, OUT/best when the score is at least the best so far."""
        meta = {"epoch": self.epoch, "metrics": metrics, "train": dataclasses.asdict(self.cfg)}
        improved = metrics["score"] >= self.best
        self.best = max(self.best, metrics["score"])  # before the state: a resume knows it
        state = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "loss": self.loss.state_dict(),
                 "epoch": self.epoch, "best": self.best}
        self.run.save(self.retriever, meta, state, improved)


def fine_tuning_start(checkpoint: str, wanted: ModelConfig, drop: Sequence[str] = ()
                      ) -> Retriever:
    """The checkpoint to fine-tune, without the residual paths ``drop`` names, with those
    ``wanted`` adds (at zero) and the cheaper query side it asks for (``--reference-grid``,
    fewer ``--text-layers``)."""
    retriever = without_paths(load_retriever(checkpoint, engine="eager"), drop)
    retriever = with_residual_paths(retriever, wanted)
    layers = len(retriever.net.reference.text.encoder.layer)
    fewer = wanted.text_layers is not None and wanted.text_layers < layers
    if wanted.reference_grid is not None or fewer:
        retriever = with_query_side(retriever, wanted.reference_grid or
                                    retriever.cfg.reference_grid,
                                    wanted.text_layers if fewer else None)
    retriever.meta = {"init_from": {"checkpoint": checkpoint,
                                    "fingerprint": retriever.fingerprint}}
    logger.info("fine-tuning %s (fingerprint %s)", checkpoint, retriever.fingerprint)
    return retriever
