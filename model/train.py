"""Train FashionVLP on FashionIQ-format triplets with cached backbone features.

    python -m model.train --annotations A[,A2] --images I[,I2] --batch-size 64 --epochs 10
    bash train.sh ANNOTATIONS IMAGES BATCH EPOCHS [flags]

Several datasets can be trained together (comma-separated, paired by position). Every epoch
is validated with the FashionIQ protocol on each dataset's val split; the best checkpoint (mean
of (R@10+R@50)/2 over datasets) is kept in OUT/best, the latest in OUT/last with the optimiser
state, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dataprep import (
    FashionIQSplit,
    eval_caption,
    load_fashioniq,
    read_metadata_column,
    train_caption,
)
from model.config import RESIDUAL_PATHS, RESIDUAL_PREFIXES, ModelConfig
from model.device import DEVICE_CHOICES, autocast, resolve_device
from model.evaluate import (
    evaluate_kept,
    evaluate_split,
    format_table,
    item_kinds,
    model_encoders,
    remembered_encoders,
    restrict_to_bank,
)
from model.feature_cache import FeatureBank, extract_features, extract_trunk_features
from model.loss import make_loss
from model.optim import adamw, warmup_cosine_schedule
from model.retriever import (
    Retriever,
    build_retriever,
    load_retriever,
    with_query_side,
    with_residual_paths,
)
from model.token_memo import TokenOutputMemo, memo_key
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

GROUP_BY = ("category", "kind")
DISTILLED_PREFIXES = ("reference.", "sentence_path.")  # what --distill trains: the query side
TAIL_PREFIX = "backbone_tail."  # the backbone's last stage, in the optimiser's names
# Options of experiments that did not win (README, Training: stages 7, 10g, 13, 15, 17), removed
# from the code; git tag experiments-before-cleanup has them. A stored train config naming one
# (checkpoints/demo's parts do) still loads: each maps to the value that meant "off".
REMOVED_OPTIONS = {"global_lr": None, "group_balance": 1.0, "colourway_negatives": 0,
                   "mask_lookalikes": False, "look_weight": 0.0}


@dataclass
class TrainConfig:
    annotations: list[str]  # FashionIQ-format annotation roots
    images: list[str]  # matching image folders
    batch_size: int = 64
    epochs: int = 10
    categories: list[str] | None = None  # default: every category present
    lr: float = 3e-4  # new layers (image tokens, target block, heads)
    text_lr: float = 3e-5  # fine-tuned pretrained text layers
    path_lr: float | None = None  # the sentence path (None: lr); it starts at zero
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps spent warming up
    seed: int = 0
    out: str = "checkpoints/run"
    cache_dir: str = FEATURE_CACHE_DIR
    workers: int = 2  # image decoding processes for feature extraction
    max_val_queries: int | None = 1000  # per category, to keep per-epoch validation short
    steps_per_epoch: int | None = None  # cap (for quick runs); default: one pass over the data
    flip: bool = True  # random horizontal flips of the cached grids
    resume: bool = True
    mixed_share: float = 0.5  # share of batches mixing every category of a dataset
    dataset_weights: list[float] | None = None  # batch share per dataset (default: by size)
    init_from: str | None = None  # start from this checkpoint's weights (fine-tuning)
    holdout: float = 0.1  # val share of a lone flat annotation file (by reference image)
    device: str = "auto"  # auto (CUDA when present), cpu or cuda
    grounding: float = 0.0  # weight of the auxiliary image <-> description loss (0: off)
    kind_weight: float = 0.5  # weight of the keep-the-garment-kind loss (model.loss.kind_loss)
    group_by: str = "category"  # what a one-group batch shares: "category" or garment "kind"
    # Initial inverse temperature of the loss (default: the model config's, 10). It is
    # learnable, but AdamW at these learning rates moved it by at most 10% in a run, so the
    # initial value is in effect the one trained with; higher sharpens the softmax onto hard
    # negatives.
    logit_scale: float | None = None
    # Keep the temperature at its start: in a long --paths-only run (7,000 steps) it climbed
    # from 10 to 19, far beyond the at most 10% it moved in full fine-tunes.
    freeze_scale: bool = False
    # Train only the residual paths (global, sentence) over frozen token blocks whose outputs
    # are computed once per query and target (model.token_memo): a step then costs a few small
    # matrix products, so the paths see every triplet several times. Batches come without
    # flips and with one fixed caption per triplet (the evaluation form, both captions joined).
    paths_only: bool = False
    # One learned temperature per dataset instead of one for all (model.loss): colourway
    # queries gained and products lost as the one shared temperature climbed (stages 10-12);
    # the demo checkpoint's run (stage 14) has it, though its three temperatures rose together.
    dataset_scales: bool = False
    # Weight of the distillation term (0: off). The checkpoint at --init-from, frozen, is the
    # teacher; the model trains only its reference side (reference block and sentence path)
    # towards the teacher's ranking of the batch's targets (KL of the two softmaxes) beside the
    # usual loss. Targets, shared image tokens and the global path stay the teacher's, so a
    # catalog indexed with the teacher keeps its vectors. Why: a cheaper reference block
    # (model.reference_grid) for faster queries without re-indexing; batches come as with
    # --paths-only, whose token memo holds the teacher's outputs.
    distill: float = 0.0
    # Learning rate of the backbone's last stage when the model config's backbone_tail is on
    # (--train-backbone-tail; None: lr). The frozen trunk's output is cached instead of the
    # grid, and a step runs the tail on it, so the image tokens of both sides can adapt.
    tail_lr: float | None = None
    model: ModelConfig = field(default_factory=ModelConfig)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """A stored config (OUT/train_config.json, a checkpoint's meta["train"]); a removed
        option at its "off" value is dropped with a debug line, at any other with a warning
        (that run used code this version no longer has)."""
        data = dict(data)
        for name, off in REMOVED_OPTIONS.items():
            if name in data:
                value = data.pop(name)
                log = logger.debug if value == off else logger.warning
                log("train config option %s=%r was removed (git tag experiments-before-cleanup)",
                    name, value)
        model = ModelConfig.from_dict(data.pop("model", {}))
        return cls(**data, model=model)


@dataclass
class Dataset:
    name: str
    train: FashionIQSplit
    val: FashionIQSplit
    root: str = ""  # the annotation root (folder or flat file) it was read from


def load_datasets(cfg: TrainConfig) -> list[Dataset]:
    if len(cfg.annotations) != len(cfg.images):
        raise ValueError(f"{len(cfg.annotations)} annotation roots but {len(cfg.images)} image "
                         "folders: give one image folder per annotation root")
    out = []
    for a, i in zip(cfg.annotations, cfg.images, strict=True):
        path = Path(a)
        if path.is_file():  # the seed's form: one flat JSON file of training triplets
            out.append(_flat_file_dataset(path, i, cfg))
        else:
            out.append(Dataset(path.name, load_fashioniq(a, i, "train", cfg.categories),
                               load_fashioniq(a, i, "val", cfg.categories), a))
    return out


def _flat_file_dataset(path: Path, images: str, cfg: TrainConfig) -> Dataset:
    """Train on a flat annotation file; never select checkpoints on its own triplets.

    Validation uses the sibling ``val.json`` when there is one; otherwise a fixed share of the
    triplets, chosen by a hash of the reference image (so no reference is on both sides), is
    held out and logged.
    """
    train = load_fashioniq(path, images, "train", cfg.categories)
    sibling = path.with_name("val.json")
    if sibling.is_file() and sibling.resolve() != path.resolve():
        logger.info("%s: validating on the sibling %s", path, sibling)
        return Dataset(path.stem, train, load_fashioniq(sibling, images, "val", cfg.categories),
                       str(path))
    held = {t.candidate for t in train.triplets if _hash_share(t.candidate) < cfg.holdout}
    val_triplets = [t for t in train.triplets if t.candidate in held]
    train_triplets = [t for t in train.triplets if t.candidate not in held]
    logger.warning("%s has no sibling val.json: holding out %d of %d triplets (%.0f%% of "
                   "reference images, fixed by a hash of the image id) for validation",
                   path, len(val_triplets), len(train.triplets), 100 * cfg.holdout)
    if not val_triplets or not train_triplets:
        raise ValueError(f"{path}: too few triplets to hold out a validation share; add a "
                         "val.json beside it")
    val_ids = {i for t in val_triplets for i in (t.candidate, t.target)}
    gallery = {c: [i for i in ids if i in val_ids] for c, ids in train.gallery.items()}
    val = dataclasses.replace(train, split="val", triplets=val_triplets,
                              gallery={c: ids for c, ids in gallery.items() if ids})
    return Dataset(path.stem, dataclasses.replace(train, triplets=train_triplets), val,
                   str(path))


def _hash_share(image_id: str) -> float:
    return int(hashlib.sha256(f"holdout-{image_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def flip_grid(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror (B, side*side, C) grid tokens left-right where mask is True."""
    b, n, c = tokens.shape
    side = math.isqrt(n)
    grid = tokens.view(b, side, side, c)
    return torch.where(mask[:, None, None, None], grid.flip(2), grid).view(b, n, c)


class TripletBatches:
    """Batches of (reference features, caption, target features) drawn from a FeatureBank.

    Two kinds of batch, so the model learns both fine distinctions and the garment kind:

    * a *group* batch comes from one (dataset, category) group, or with ``group_by="kind"``
      one (dataset, garment kind of the target) group: its in-batch negatives are garments of
      the same kind, the ones a gallery has to tell apart. Grouping by kind makes them harder
      where a category holds many kinds (H&M's "upper" holds T-shirts, blouses, hoodies...):
      the batch's other targets are then other T-shirts, many in the requested colour, which
      is what a colourway query's top 10 must rank below the exact garment;
    * a *mixed* batch (a ``mixed_share`` of all batches) draws every triplet from any
      category of the datasets: negatives of other kinds teach the model to keep the
      reference's kind when a shopper searches all categories at once.

    Each batch first picks a dataset with probability ``dataset_weights`` (default: in
    proportion to its triplets), so a small, important dataset is not drowned out. Which
    triplets an epoch draws depends only on (seed, epoch), so a resumed run draws the same.
    Every batch carries the garment-kind code of each reference and target (product type
    where the dataset's metadata has one, else the category) for `model.loss.kind_loss`. With
    ``fixed_captions``
    each triplet always gets its evaluation caption and the batch numbers each (reference,
    caption) as a row (``query_rows``), for `model.token_memo`.
    """

    def __init__(self, retriever: Retriever, bank: FeatureBank, datasets: list[Dataset],
                 batch_size: int, flip: bool, seed: int, mixed_share: float = 0.0,
                 dataset_weights: Sequence[float] | None = None, group_by: str = "category",
                 fixed_captions: bool = False):
        if group_by not in GROUP_BY:
            raise ValueError(f"group_by must be one of {GROUP_BY}, not {group_by!r}")
        self.retriever, self.bank, self.flip = retriever, bank, flip
        self.fixed_captions = fixed_captions
        self.query_rows: dict[tuple[str, str], int] = {}  # (reference, caption) -> row
        kinds = {d.name: item_kinds(d.root, d.train) if d.root else {} for d in datasets}
        self.groups: dict[tuple[str, str], list] = {}
        for d in datasets:
            for t in d.train.triplets:
                group = kinds[d.name].get(t.target, t.category) if group_by == "kind" \
                    else t.category
                self.groups.setdefault((d.name, group), []).append(t)
        self.triplets = [t for group in self.groups.values() for t in group]
        self.names = list(dict.fromkeys(name for name, _ in self.groups))
        sizes = np.array([sum(len(g) for (n, _), g in self.groups.items() if n == name)
                          for name in self.names], dtype=float)
        weights = sizes if dataset_weights is None else np.asarray(dataset_weights, float)
        if len(weights) != len(self.names):
            raise ValueError(f"{len(weights)} dataset weights for {len(self.names)} datasets "
                             f"with training triplets ({', '.join(self.names)})")
        self.weights = weights / weights.sum()
        self.dataset_codes = {t.candidate: self.names.index(d.name)  # reference -> dataset
                              for d in datasets for t in d.train.triplets}
        self.batch_size, self.mixed_share, self.seed = batch_size, mixed_share, seed
        self.rng = random.Random(seed)
        self.target_codes = {tid: k for k, tid in enumerate(bank.index)}
        self.kind_codes: dict[str, int] = {}  # image id -> code of (dataset, garment kind)
        codes: dict[tuple[str, str], int] = {}
        for d in datasets:
            for t in d.train.triplets:
                for i in (t.candidate, t.target):
                    kind = (d.name, kinds[d.name].get(i, t.category))
                    self.kind_codes[i] = codes.setdefault(kind, len(codes))
    def query_keys(self) -> set[tuple[str, str]]:
        """Every (reference, caption) a batch can number as a row with ``fixed_captions``."""
        return {(t.candidate, eval_caption(t.captions)) for t in self.triplets}

    def __len__(self) -> int:
        """Batches in one pass over the training triplets."""
        return len(self.triplets) // self.batch_size

    def draw(self, rng: random.Random) -> list:
        """The triplets of one batch (without repeats inside the batch)."""
        name = rng.choices(self.names, weights=self.weights)[0]
        groups = [g for (n, _), g in self.groups.items() if n == name]
        if rng.random() < self.mixed_share:
            pool = [t for g in groups for t in g]
        else:
            pool = rng.choices(groups, weights=[len(g) for g in groups])[0]
        return rng.sample(pool, min(self.batch_size, len(pool)))

    def epoch(self, epoch: int):
        rng = random.Random(f"{self.seed}-{epoch}")
        while True:
            yield self.batch(self.draw(rng))

    def batch(self, triplets) -> dict[str, torch.Tensor]:
        targets = [t.target for t in triplets]
        return self.assemble(triplets, *self.bank.lookup([t.candidate for t in triplets]),
                             *self.bank.lookup(targets), targets)

    def assemble(self, triplets, ref_whole: torch.Tensor, ref_crop: torch.Tensor,
                 tar_whole: torch.Tensor, tar_crop: torch.Tensor,
                 targets: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """A training batch from backbone features (cached or just computed) and captions;
        ``targets`` names the rows of the target features (default: the triplets' targets)."""
        if self.flip:
            for whole, crop in ((ref_whole, ref_crop), (tar_whole, tar_crop)):
                mask = torch.rand(len(whole)) < 0.5
                whole.copy_(flip_grid(whole, mask))
                crop.copy_(flip_grid(crop, mask))
        targets = [t.target for t in triplets] if targets is None else targets
        captions = [eval_caption(t.captions) if self.fixed_captions
                    else train_caption(t.captions, self.rng) for t in triplets]
        rows = {}
        if self.fixed_captions:
            rows["query_rows"] = torch.tensor([
                self.query_rows.setdefault((t.candidate, c), len(self.query_rows))
                for t, c in zip(triplets, captions, strict=True)])
        return {"ref_whole": ref_whole, "ref_crop": ref_crop, "tar_whole": tar_whole,
                "tar_crop": tar_crop, **self.retriever.tokenize(captions), **rows,
                "target_ids": torch.tensor([self.target_codes[i] for i in targets]),
                "ref_kinds": torch.tensor([self.kind_codes[t.candidate] for t in triplets]),
                "tar_kinds": torch.tensor([self.kind_codes[t.target] for t in triplets]),
                "query_datasets": torch.tensor([self.dataset_codes[t.candidate]
                                                for t in triplets])}

def grounding_texts(annotations: Sequence[str], ids: set[str]) -> dict[str, str]:
    """id -> words describing the item (metadata.csv's ``description``, else its ``title``) for
    the training images of every annotation root that has a metadata.csv."""
    out: dict[str, str] = {}
    for root in annotations:
        texts = read_metadata_column(root, ("description", "title"))
        out.update({i: t for i, t in texts.items() if i in ids and t})
    return out


def validate(retriever: Retriever, bank: FeatureBank, datasets: list[Dataset],
             max_queries: int | None) -> tuple[float, dict]:
    """Score = mean over datasets of (R@10+R@50)/2 on their val splits.

    kept@10 (every category in one gallery) is logged and stored in "average" beside it, but
    not scored: recall and kept@10 trade against each other (README, stages 4-5), and which
    epoch to keep is then a choice to make from metrics.jsonl, not one to hide in a sum.
    """
    report, scores = {}, []
    for d in datasets:
        encoders = remembered_encoders(*model_encoders(retriever, bank))
        results = evaluate_split(d.val, *encoders, max_queries)
        if d.root:
            kept = evaluate_kept(d.val, *encoders, item_kinds(d.root, d.val), 10, max_queries)
            results["average"].update({k: v for k, v in kept.items() if k != "queries"})
        report[d.name] = results
        scores.append(results["average"]["mean"])
        logger.info("val %s\n%s%s", d.name, format_table(results),
                    f"\nkept@10 {results['average']['kept@10']:.2f}"
                    if "kept@10" in results["average"] else "")
    return float(np.mean(scores)), report


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        last = self.out / "last"
        self.resuming = cfg.resume and (last / "train_state.pt").is_file()
        if self.resuming:
            self.retriever = load_retriever(last, engine="eager")  # training runs the modules
        elif cfg.init_from:
            self.retriever = load_retriever(cfg.init_from, engine="eager")
            self.retriever = with_residual_paths(self.retriever, cfg.model)
            self.retriever = self._cheaper_query_side(self.retriever, cfg.model)
            self.retriever.meta = {"init_from": {"checkpoint": cfg.init_from,
                                                 "fingerprint": self.retriever.fingerprint}}
            logger.info("fine-tuning %s (fingerprint %s)", cfg.init_from,
                        self.retriever.fingerprint)
        else:
            self.retriever = build_retriever(cfg.model, cfg.seed)
        if (self.resuming or cfg.init_from) and self.retriever.cfg != cfg.model:
            logger.warning("resuming with the architecture stored in %s, not the one asked for",
                           last if self.resuming else cfg.init_from)
        if cfg.model.backbone_tail and not self.retriever.cfg.backbone_tail:
            self.retriever.cfg = dataclasses.replace(self.retriever.cfg, backbone_tail=True)
            self.retriever.invalidate_fingerprint()
        tail = self.retriever.cfg.backbone_tail
        self.datasets = load_datasets(cfg)
        paths = {}
        for d in self.datasets:
            paths.update(d.train.image_paths)
            paths.update(d.val.image_paths)
        extract = extract_trunk_features if tail else extract_features
        self.bank = extract(self.retriever.encoder, paths, cfg.cache_dir or None,
                            workers=cfg.workers)
        for d in self.datasets:
            d.train, d.val = restrict_to_bank(d.train, self.bank), restrict_to_bank(d.val,
                                                                                     self.bank)
        if cfg.paths_only and cfg.grounding > 0:
            raise ValueError("--grounding trains the token blocks, which --paths-only freezes")
        if cfg.distill > 0 and (cfg.paths_only or cfg.grounding > 0 or not cfg.init_from):
            raise ValueError("--distill needs --init-from (the teacher) and trains the reference "
                             "side alone: not with --paths-only or --grounding")
        if cfg.dataset_scales and cfg.grounding > 0:
            raise ValueError("--grounding's image <-> text pairs belong to no dataset, so "
                             "they have no temperature under --dataset-scales")
        memoised = cfg.paths_only or cfg.distill > 0
        if tail and memoised:
            raise ValueError("--train-backbone-tail changes every token, so it cannot train "
                             "over memoised outputs (--paths-only, --distill)")
        if tail and cfg.flip:  # a flip of the tail's input would be a different image's grid
            logger.info("training the backbone's tail: no flips of the cached trunk features")
        self.batches = TripletBatches(self.retriever, self.bank, self.datasets, cfg.batch_size,
                                      cfg.flip and not memoised and not tail, cfg.seed,
                                      cfg.mixed_share, cfg.dataset_weights, cfg.group_by,
                                      fixed_captions=memoised)
        if len(self.batches) == 0:
            raise ValueError(f"fewer training triplets ({len(self.batches.triplets)}) than one "
                             f"batch ({cfg.batch_size}): lower --batch-size")
        self.device = resolve_device(cfg.device)
        self.retriever.to(self.device)
        self.loss = make_loss(self.retriever.cfg, init_scale=cfg.logit_scale,
                              groups=len(self.batches.names) if cfg.dataset_scales else 1
                              ).to(self.device)
        self.loss.log_scale.requires_grad_(not cfg.freeze_scale)
        self.retriever.set_trainable()
        self.memo, self.memo_file = None, None
        if memoised:
            trained = RESIDUAL_PREFIXES if cfg.paths_only else DISTILLED_PREFIXES
            for name, param in self.retriever.net.named_parameters():
                param.requires_grad_(param.requires_grad and name.startswith(trained))
            # The memo holds the frozen blocks' outputs (paths only) or the teacher's (distill)
            teacher = self.retriever
            if cfg.distill > 0:
                teacher = load_retriever(cfg.init_from, engine="eager").to(self.device)
                teacher.net.requires_grad_(False)
            self.memo = TokenOutputMemo(teacher.net, len(self.batches.triplets),
                                        len(self.bank.index), self.device)
            if cfg.cache_dir:
                key = memo_key(teacher.net, teacher.cfg, teacher.encoder.cache_key)
                self.memo_file = Path(cfg.cache_dir) / "token_memo" / f"{key}.pt"
                self.memo.load(self.memo_file, self.batches.query_rows,
                               self.batches.query_keys(), self.batches.target_codes)
            if cfg.distill > 0:
                logger.info("training only the reference side, distilled from %s",
                            cfg.init_from)
            else:
                logger.info("training only %s over frozen token blocks", ", ".join(
                    n for n in RESIDUAL_PATHS if getattr(self.retriever.cfg, n)))
        rates = {"reference.text.": cfg.text_lr,  # 0 freezes a path
                 "sentence_path.": cfg.lr if cfg.path_lr is None else cfg.path_lr}
        named = list(self.retriever.net.named_parameters())
        if tail:
            rates[TAIL_PREFIX] = cfg.lr if cfg.tail_lr is None else cfg.tail_lr
            named += [(TAIL_PREFIX + k, p)
                      for k, p in self.retriever.encoder.tail_parameters().items()]
        self.optimizer = adamw(named, cfg.lr, cfg.weight_decay, extra=self.loss.parameters(),
                               prefix_lrs=rates)  # a rate of 0 freezes what it names
        self.trained = [p for _, p in named if p.requires_grad]
        self.steps_per_epoch = min(len(self.batches), cfg.steps_per_epoch or len(self.batches))
        self.scheduler = warmup_cosine_schedule(self.optimizer, self.steps_per_epoch * cfg.epochs,
                                                cfg.warmup)
        self.grounding: list[tuple[str, str]] = []
        if cfg.grounding > 0:
            train_ids = {i for d in self.datasets for t in d.train.triplets
                         for i in (t.candidate, t.target)}
            self.grounding = sorted(grounding_texts(cfg.annotations, train_ids).items())
            logger.info("grounding loss (weight %.2f) over %d described training images",
                        cfg.grounding, len(self.grounding))
        self.grounding_rng = random.Random(f"grounding-{cfg.seed}")
        self.epoch, self.best = 0, -1.0
        if self.resuming:
            self._load_state(last / "train_state.pt")

    @staticmethod
    def _cheaper_query_side(retriever: Retriever, wanted: ModelConfig) -> Retriever:
        """The checkpoint with the pooled grid and the fewer text layers ``wanted`` asks for
        (``--reference-grid``, ``--text-layers`` below the checkpoint's); as it is else."""
        layers = len(retriever.net.reference.text.encoder.layer)
        fewer = wanted.text_layers is not None and wanted.text_layers < layers
        if wanted.reference_grid is None and not fewer:
            return retriever
        return with_query_side(retriever, wanted.reference_grid or retriever.cfg.reference_grid,
                               wanted.text_layers if fewer else None)

    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss.load_state_dict(state["loss"])
        self.epoch, self.best = state["epoch"], state["best"]
        logger.info("resumed from %s after epoch %d (best %.2f)", path, self.epoch, self.best)

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; returns the batch loss."""
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        with autocast(self.device):
            forward = self.retriever.net if self.memo is None else self.memo
            f_ref, f_tar = forward(batch)
            if self.cfg.distill > 0:  # the memo gave the teacher's f_ref: the student's now
                teacher_ref, f_ref = f_ref, self.retriever.net.encode_reference(
                    batch["ref_whole"], batch["ref_crop"], batch["input_ids"],
                    batch["attention_mask"])
        loss = self.loss(f_ref.float(), f_tar.float(), batch["target_ids"],
                         (batch["ref_kinds"], batch["tar_kinds"]), self.cfg.kind_weight,
                         batch["query_datasets"])
        if self.grounding:
            loss = loss + self.cfg.grounding * self.grounding_loss()
        if self.cfg.distill > 0:
            loss = loss + self.cfg.distill * self.loss.distillation(
                f_ref.float(), teacher_ref.float(), f_tar.float(), batch["target_ids"],
                batch["query_datasets"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trained, 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def grounding_loss(self) -> torch.Tensor:
        """Image <-> its own description, both ways: ties image tokens to the words shoppers
        use (sleeves, necklines, materials), through the same text transformer as f_ref."""
        pairs = self.grounding_rng.sample(self.grounding,
                                          min(self.cfg.batch_size, len(self.grounding)))
        whole, crop = self.bank.lookup([i for i, _ in pairs])
        texts = [t for _, t in pairs]
        codes = {t: k for k, t in enumerate(texts)}  # one text twice: not a negative
        same = torch.tensor([codes[t] for t in texts], device=self.device)
        tokens = {k: v.to(self.device) for k, v in self.retriever.tokenize(texts).items()}
        with autocast(self.device):
            f_img = self.retriever.net.encode_target(whole.to(self.device), crop.to(self.device))
            f_txt = self.retriever.net.encode_text(**tokens)
        f_img, f_txt = f_img.float(), f_txt.float()
        return 0.5 * (self.loss(f_txt, f_img, same) + self.loss(f_img, f_txt, same))

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
        return stats

    def save(self, metrics: dict) -> None:
        meta = {"epoch": self.epoch, "metrics": metrics, "train": dataclasses.asdict(self.cfg)}
        last = self.out / "last"
        improved = metrics["score"] >= self.best
        self.best = max(self.best, metrics["score"])  # before the state: a resume knows it
        self.retriever.save(last, meta)
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "loss": self.loss.state_dict(),
                    "epoch": self.epoch, "best": self.best}, last / "train_state.pt")
        if improved:
            best = self.out / "best"
            tmp = self.out / "best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            self.retriever.save(tmp, meta)
            shutil.rmtree(best, ignore_errors=True)
            tmp.rename(best)
            logger.info("new best %.2f -> %s", self.best, best)

    def fit(self) -> float:
        self.out.mkdir(parents=True, exist_ok=True)
        config = json.dumps(dataclasses.asdict(self.cfg), indent=2)
        (self.out / "train_config.json").write_text(config)
        while self.epoch < self.cfg.epochs:
            stats = self.train_epoch()
            self.epoch += 1
            if self.memo_file is not None:
                self.memo.save(self.memo_file, self.batches.query_rows, self.batches.target_codes)
            score, report = validate(self.retriever, self.bank, self.datasets,
                                     self.cfg.max_val_queries)
            metrics = {"epoch": self.epoch, "score": score, **stats, "val": report}
            with open(self.out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(metrics) + "\n")
            logger.info("epoch %d: loss %.4f, %.0f s (%.0f triplets/s), val score %.2f",
                        self.epoch, stats["loss"], stats["seconds"],
                        stats["triplets_per_second"], score)
            self.save(metrics)
        return self.best


def parse_args(argv: Sequence[str] | None = None) -> TrainConfig:
    defaults = TrainConfig(annotations=[], images=[])
    mdefaults = ModelConfig()
    p = argparse.ArgumentParser(prog="python -m model.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--annotations", required=True, help="comma-separated annotation roots")
    p.add_argument("--images", required=True, help="comma-separated image folders (paired)")
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--categories", nargs="*")
    p.add_argument("--lr", type=float, default=defaults.lr)
    p.add_argument("--text-lr", type=float, default=defaults.text_lr)
    p.add_argument("--path-lr", type=float, default=defaults.path_lr,
                   help="learning rate of the sentence path (default: --lr)")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--out", default=defaults.out)
    p.add_argument("--cache-dir", default=defaults.cache_dir)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--max-val-queries", type=int, default=defaults.max_val_queries)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--mixed-share", type=float, default=defaults.mixed_share,
                   help="share of batches that mix every category of a dataset")
    p.add_argument("--dataset-weights", help="comma-separated batch share per dataset "
                   "(default: in proportion to its training triplets)")
    p.add_argument("--init-from", help="fine-tune from this checkpoint's weights")
    p.add_argument("--holdout", type=float, default=defaults.holdout,
                   help="val share of a flat annotation file without a sibling val.json")
    p.add_argument("--device", default=defaults.device, choices=DEVICE_CHOICES)
    p.add_argument("--grounding", type=float, default=defaults.grounding,
                   help="weight of an auxiliary image <-> description loss (0: off)")
    p.add_argument("--kind-weight", type=float, default=defaults.kind_weight,
                   help="weight of the loss that ranks the reference's garment kind first")
    p.add_argument("--group-by", default=defaults.group_by, choices=GROUP_BY,
                   help="what the triplets of a one-group (not mixed) batch share: the "
                   "category, or the target's garment kind (product type where known)")
    p.add_argument("--logit-scale", type=float, default=defaults.logit_scale,
                   help="initial inverse temperature of the loss (default: the model's, 10)")
    p.add_argument("--freeze-scale", action="store_true",
                   help="keep the loss temperature at its start instead of learning it")
    p.add_argument("--no-global-path", action="store_true",
                   help="no residual pooled-feature term (the architecture before it)")
    p.add_argument("--sentence-path", action="store_true",
                   help="add a residual combiner of the pooled reference image and the "
                   "feedback's sentence embedding to f_ref (zero-initialised)")
    p.add_argument("--dataset-scales", action="store_true",
                   help="learn one loss temperature per dataset instead of one for all")
    p.add_argument("--paths-only", action="store_true",
                   help="train only the residual paths over frozen token blocks, whose outputs "
                   "are computed once per triplet (no flips, one fixed caption per triplet)")
    p.add_argument("--distill", type=float, default=defaults.distill,
                   help="weight of a distillation term: train only the reference side towards "
                   "the --init-from checkpoint's ranking of each batch (default 0: off)")
    p.add_argument("--train-backbone-tail", action="store_true",
                   help="fine-tune the backbone's last stage too, from cached features of the "
                   "stages before it (no flips)")
    p.add_argument("--tail-lr", type=float, default=defaults.tail_lr,
                   help="learning rate of the backbone's last stage (default: --lr)")
    p.add_argument("--reference-grid", type=int, default=mdefaults.reference_grid,
                   help="side of the pooled whole-image grid the reference block reads "
                   "(default: the backbone's full grid)")
    p.add_argument("--sentence-hidden", type=int, default=mdefaults.sentence_hidden,
                   help="width of the sentence path's MLP")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT/last exists")
    p.add_argument("--backbone", default=mdefaults.backbone)
    p.add_argument("--backbone-weights", default=mdefaults.backbone_weights)
    p.add_argument("--text-model", default=mdefaults.text_model)
    p.add_argument("--text-layers", type=int, default=mdefaults.text_layers,
                   help="first N text-model layers to keep (0: all)")
    p.add_argument("--train-text-layers", type=int, default=mdefaults.train_text_layers)
    p.add_argument("--tiny", action="store_true", help="tiny random model (smoke tests)")
    a = p.parse_args(argv)
    model = ModelConfig.tiny() if a.tiny else ModelConfig(
        backbone=a.backbone, backbone_weights=a.backbone_weights, text_model=a.text_model,
        text_layers=a.text_layers or None, train_text_layers=a.train_text_layers)
    model.global_path = not a.no_global_path
    model.sentence_path = a.sentence_path
    model.sentence_hidden = a.sentence_hidden
    model.reference_grid = a.reference_grid
    model.backbone_tail = a.train_backbone_tail
    return TrainConfig(
        annotations=a.annotations.split(","), images=a.images.split(","),
        batch_size=a.batch_size, epochs=a.epochs, categories=a.categories, lr=a.lr,
        text_lr=a.text_lr, path_lr=a.path_lr,
        weight_decay=a.weight_decay, seed=a.seed, out=a.out,
        cache_dir=a.cache_dir, workers=a.workers, max_val_queries=a.max_val_queries,
        steps_per_epoch=a.steps_per_epoch, flip=not a.no_flip, resume=not a.no_resume,
        mixed_share=a.mixed_share, grounding=a.grounding, init_from=a.init_from,
        holdout=a.holdout, device=a.device, kind_weight=a.kind_weight, group_by=a.group_by,
        logit_scale=a.logit_scale, dataset_scales=a.dataset_scales,
        paths_only=a.paths_only, freeze_scale=a.freeze_scale, distill=a.distill,
        tail_lr=a.tail_lr,
        dataset_weights=[float(w) for w in a.dataset_weights.split(",")]
        if a.dataset_weights else None, model=model)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = parse_args(argv)
    best = Trainer(cfg).fit()
    print(f"best validation score (mean of (R@10+R@50)/2): {best:.2f} -> {cfg.out}/best")


if __name__ == "__main__":
    main()
