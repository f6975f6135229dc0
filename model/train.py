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

from dataprep import FashionIQSplit, load_fashioniq, train_caption
from model.config import ModelConfig
from model.evaluate import evaluate_split, format_table, model_encoders, restrict_to_bank
from model.feature_cache import FeatureBank, extract_features
from model.loss import BatchClassificationLoss
from model.retriever import Retriever, build_retriever, load_retriever

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    annotations: list[str]  # FashionIQ-format annotation roots
    images: list[str]  # matching image folders
    batch_size: int = 64
    epochs: int = 10
    categories: list[str] | None = None  # default: every category present
    lr: float = 3e-4  # new layers (image tokens, target block, heads)
    text_lr: float = 3e-5  # fine-tuned pretrained text layers
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of all steps spent warming up
    seed: int = 0
    out: str = "checkpoints/run"
    cache_dir: str = "data/feature_cache"
    workers: int = 2  # image decoding processes for feature extraction
    max_val_queries: int | None = 1000  # per category, to keep per-epoch validation short
    steps_per_epoch: int | None = None  # cap (for quick runs); default: one pass over the data
    flip: bool = True  # random horizontal flips of the cached grids
    resume: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)


@dataclass
class Dataset:
    name: str
    train: FashionIQSplit
    val: FashionIQSplit


def load_datasets(cfg: TrainConfig) -> list[Dataset]:
    if len(cfg.annotations) != len(cfg.images):
        raise ValueError(f"{len(cfg.annotations)} annotation roots but {len(cfg.images)} image "
                         "folders: give one image folder per annotation root")
    return [Dataset(Path(a).name, load_fashioniq(a, i, "train", cfg.categories),
                    load_fashioniq(a, i, "val", cfg.categories))
            for a, i in zip(cfg.annotations, cfg.images, strict=True)]


def flip_grid(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mirror (B, side*side, C) grid tokens left-right where mask is True."""
    b, n, c = tokens.shape
    side = math.isqrt(n)
    grid = tokens.view(b, side, side, c)
    return torch.where(mask[:, None, None, None], grid.flip(2), grid).view(b, n, c)


class TripletBatches:
    """Shuffled batches of (reference features, caption, target features) from a FeatureBank.

    Each batch comes from one (dataset, category) group, so its in-batch negatives are garments
    of the same kind -- the ones retrieval has to tell apart in that category's gallery.
    """

    def __init__(self, retriever: Retriever, bank: FeatureBank, datasets: list[Dataset],
                 batch_size: int, flip: bool, seed: int):
        self.retriever, self.bank, self.flip = retriever, bank, flip
        self.groups: dict[tuple[str, str], list] = {}
        for d in datasets:
            for t in d.train.triplets:
                self.groups.setdefault((d.name, t.category), []).append(t)
        self.triplets = [t for group in self.groups.values() for t in group]
        self.batch_size = batch_size
        self.rng = random.Random(seed)
        self.target_codes = {tid: k for k, tid in enumerate(bank.index)}

    def __len__(self) -> int:
        return sum(len(g) // self.batch_size for g in self.groups.values())

    def epoch(self, epoch: int):
        shuffler = random.Random(f"{self.rng.random()}-{epoch}")
        batches = []
        for group in self.groups.values():
            order = list(group)
            shuffler.shuffle(order)
            batches += [order[i:i + self.batch_size]
                        for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        shuffler.shuffle(batches)
        for triplets in batches:
            yield self.batch(triplets)

    def batch(self, triplets) -> dict[str, torch.Tensor]:
        return self.assemble(triplets, *self.bank.lookup([t.candidate for t in triplets]),
                             *self.bank.lookup([t.target for t in triplets]))

    def assemble(self, triplets, ref_whole: torch.Tensor, ref_crop: torch.Tensor,
                 tar_whole: torch.Tensor, tar_crop: torch.Tensor) -> dict[str, torch.Tensor]:
        """A training batch from backbone features (cached or just computed) and captions."""
        if self.flip:
            for whole, crop in ((ref_whole, ref_crop), (tar_whole, tar_crop)):
                mask = torch.rand(len(triplets)) < 0.5
                whole.copy_(flip_grid(whole, mask))
                crop.copy_(flip_grid(crop, mask))
        text = self.retriever.tokenize([train_caption(t.captions, self.rng) for t in triplets])
        return {"ref_whole": ref_whole, "ref_crop": ref_crop, "tar_whole": tar_whole,
                "tar_crop": tar_crop, **text,
                "target_ids": torch.tensor([self.target_codes[t.target] for t in triplets])}


def make_optimizer(retriever: Retriever, loss: BatchClassificationLoss, cfg: TrainConfig
                   ) -> torch.optim.Optimizer:
    """AdamW; the pretrained text layers learn 10x slower; no decay on norms and biases."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in retriever.net.named_parameters():
        if param.requires_grad:
            key = (name.startswith("reference.text."), param.ndim < 2)
            groups.setdefault(key, []).append(param)
    param_groups = [{"params": params, "lr": cfg.text_lr if is_text else cfg.lr,
                     "weight_decay": 0.0 if no_decay else cfg.weight_decay}
                    for (is_text, no_decay), params in sorted(groups.items())]
    param_groups.append({"params": list(loss.parameters()), "lr": cfg.lr, "weight_decay": 0.0})
    return torch.optim.AdamW(param_groups)


def warmup_cosine(total_steps: int, warmup: float):
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def validate(retriever: Retriever, bank: FeatureBank, datasets: list[Dataset],
             max_queries: int | None) -> tuple[float, dict]:
    """Score = mean over datasets of (R@10+R@50)/2 on their val splits."""
    report, scores = {}, []
    for d in datasets:
        results = evaluate_split(d.val, *model_encoders(retriever, bank), max_queries)
        report[d.name] = results
        scores.append(results["average"]["mean"])
        logger.info("val %s\n%s", d.name, format_table(results))
    return float(np.mean(scores)), report


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        torch.manual_seed(cfg.seed)
        last = self.out / "last"
        self.resuming = cfg.resume and (last / "train_state.pt").is_file()
        self.retriever = load_retriever(last) if self.resuming else build_retriever(
            cfg.model, cfg.seed)
        if self.resuming and self.retriever.cfg != cfg.model:
            logger.warning("resuming with the architecture stored in %s, not the one asked for",
                           last)
        self.datasets = load_datasets(cfg)
        paths = {}
        for d in self.datasets:
            paths.update(d.train.image_paths)
            paths.update(d.val.image_paths)
        self.bank = extract_features(self.retriever.encoder, paths, cfg.cache_dir or None,
                                     workers=cfg.workers)
        for d in self.datasets:
            d.train, d.val = restrict_to_bank(d.train, self.bank), restrict_to_bank(d.val,
                                                                                     self.bank)
        self.batches = TripletBatches(self.retriever, self.bank, self.datasets, cfg.batch_size,
                                      cfg.flip, cfg.seed)
        if len(self.batches) == 0:
            raise ValueError(f"fewer training triplets ({len(self.batches.triplets)}) than one "
                             f"batch ({cfg.batch_size}): lower --batch-size")
        self.loss = BatchClassificationLoss(self.retriever.cfg.init_logit_scale)
        self.retriever.set_trainable()
        self.optimizer = make_optimizer(self.retriever, self.loss, cfg)
        self.steps_per_epoch = min(len(self.batches), cfg.steps_per_epoch or len(self.batches))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, warmup_cosine(self.steps_per_epoch * cfg.epochs, cfg.warmup))
        self.epoch, self.best = 0, -1.0
        if self.resuming:
            self._load_state(last / "train_state.pt")

    def _load_state(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.loss.load_state_dict(state["loss"])
        self.epoch, self.best = state["epoch"], state["best"]
        logger.info("resumed from %s after epoch %d (best %.2f)", path, self.epoch, self.best)

    def step(self, batch: dict[str, torch.Tensor]) -> float:
        """One optimisation step; returns the batch loss."""
        f_ref, f_tar = self.retriever.net(batch)
        loss = self.loss(f_ref, f_tar, batch["target_ids"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.retriever.net.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        return loss.item()

    def train_epoch(self) -> dict[str, float]:
        self.retriever.net.train()
        started, losses = time.perf_counter(), []
        batches = self.batches.epoch(self.epoch)
        bar = tqdm(range(self.steps_per_epoch), desc=f"epoch {self.epoch + 1}/{self.cfg.epochs}",
                   unit="batch")
        for _ in bar:
            losses.append(self.step(next(batches)))
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}",
                            scale=f"{self.loss.log_scale.exp().item():.1f}")
        self.retriever.net.eval()
        self.retriever.invalidate_fingerprint()
        seconds = time.perf_counter() - started
        return {"loss": float(np.mean(losses)), "seconds": seconds,
                "triplets_per_second": self.steps_per_epoch * self.cfg.batch_size / seconds}

    def save(self, metrics: dict) -> None:
        meta = {"epoch": self.epoch, "metrics": metrics, "train": dataclasses.asdict(self.cfg)}
        last = self.out / "last"
        self.retriever.save(last, meta)
        torch.save({"optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(), "loss": self.loss.state_dict(),
                    "epoch": self.epoch, "best": self.best}, last / "train_state.pt")
        if metrics["score"] >= self.best:
            self.best = metrics["score"]
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
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--out", default=defaults.out)
    p.add_argument("--cache-dir", default=defaults.cache_dir)
    p.add_argument("--workers", type=int, default=defaults.workers)
    p.add_argument("--max-val-queries", type=int, default=defaults.max_val_queries)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--no-flip", action="store_true")
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
    return TrainConfig(
        annotations=a.annotations.split(","), images=a.images.split(","),
        batch_size=a.batch_size, epochs=a.epochs, categories=a.categories, lr=a.lr,
        text_lr=a.text_lr, weight_decay=a.weight_decay, seed=a.seed, out=a.out,
        cache_dir=a.cache_dir, workers=a.workers, max_val_queries=a.max_val_queries,
        steps_per_epoch=a.steps_per_epoch, flip=not a.no_flip, resume=not a.no_resume,
        model=model)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = parse_args(argv)
    best = Trainer(cfg).fit()
    print(f"best validation score (mean of (R@10+R@50)/2): {best:.2f} -> {cfg.out}/best")


if __name__ == "__main__":
    main()
