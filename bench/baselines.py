"""Baselines for composed retrieval over the same frozen encoders as FashionVLP.

Every baseline sees exactly what the model sees before its trainable blocks: the frozen
EfficientNet-Lite0 features of the reference and target images (pooled to one global vector:
the mean over the 7x7 grid of the final 1280-channel map) and the frozen MiniLM sentence
embedding of the feedback (mean over real tokens). They differ only in how they combine them:

- image only: the reference's pooled feature against the targets' (no training, text ignored);
- text only: feedback embedding -> MLP, target feature -> linear map, cosine between them;
- late fusion: normalised sum of a projected reference feature and a projected feedback
  embedding, against a projected target feature (the CLIP4Cir "sum" baseline with learned
  projections, since these encoders do not share a space);
- combiner: CLIP4Cir's Combiner (Baldrati et al. 2022) over the projected image and text
  features, with its learned mixing scalar; the target side is the same linear map as the
  reference image's, so the residual image term lives in the target space.

Trained ones use FashionVLP's loss (model.loss.BatchClassificationLoss) on the same training
triplets, AdamW with warm-up and cosine decay, and keep the epoch with the best validation score
exactly as model.train does, so neither side gets a selection advantage.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from dataprep import Triplet, train_caption
from model.feature_cache import FeatureBank
from model.loss import BatchClassificationLoss, make_loss
from model.network import CombinerHead, Standardize
from model.optim import adamw, warmup_cosine_schedule

logger = logging.getLogger(__name__)

IMAGE_CHANNELS = 1280  # channels [:1280] of the cached tokens: EfficientNet-Lite0's final map


# Epochs per trained baseline: each takes about 1-2.5 minutes on one thread of this CPU with
# the 47.6k demo+products triplets, and validation showed each had plateaued by then (text
# only: best epoch ~12 of 16; late fusion: ~6 of 16; combiner: 5-7 of 8).
DEFAULT_EPOCHS = {"text only": 12, "late fusion": 8, "combiner": 8}


@dataclass
class BaselineConfig:
    embed_dim: int = 512  # size of the shared query/target space
    proj_dim: int = 512  # combiner: width of its text and image projection layers
    hidden_dim: int = 1024  # combiner: width of the combiner and mixing-scalar layers
    text_hidden: int = 1024  # text-only / late fusion: hidden width of the text MLP
    dropout: float = 0.5  # CLIP4Cir's combiner dropout; 0.1 for the projections
    batch_size: int = 256  # tried 512 with lr 2e-3: the same within 0.1 points
    lr: float = 1e-3  # tried 3e-4: 0.3-1.3 points worse at the same epochs
    weight_decay: float = 0.01
    warmup: float = 0.05  # fraction of steps
    epochs: int | None = None  # None: DEFAULT_EPOCHS of the baseline
    select_on_val: bool = True  # keep the best epoch by validation score, as model.train does
    seed: int = 0
    # Extra negatives per triplet drawn from the hard negatives its annotation names
    # (Triplet.negatives); the benchmarks' baselines train without (0), the combiner head
    # with them (bench.teacher_vectors --listed-negatives; docs/training_log.md, stage 93).
    listed_negatives: int = 0


def add_baseline_arguments(parser: argparse.ArgumentParser, defaults) -> None:
    """The flags of every benchmark that trains the baselines beside the checkpoint
    (``bench.accuracy``, ``bench.feedback_rows``): ``defaults`` is that benchmark's config,
    whose fields of the same names give the defaults."""
    b = BaselineConfig()
    add = parser.add_argument
    add("--checkpoint", default=defaults.checkpoint)
    add("--baselines", nargs="*", default=defaults.baselines, choices=list(BASELINES),
        metavar="NAME", help=f"which baselines to run (default: all of {', '.join(BASELINES)}); "
        "the flag with no name runs none (with --reuse: an earlier run's rows join)")
    add("--cache-dir", default=defaults.cache_dir, help="feature cache ('' disables)")
    add("--text-model", default=defaults.text_model, help="the baselines' frozen text encoder")
    add("--max-val-queries", type=int, default=defaults.max_val_queries,
        help="per category, for the baselines' epoch selection")
    add("--workers", type=int, default=defaults.workers)
    add("--threads", type=int, default=defaults.threads)
    add("--epochs", type=int, default=b.epochs, help="epochs of every trained baseline "
        "(default: bench.baselines.DEFAULT_EPOCHS, about 1-2.5 minutes each)")
    add("--batch-size", type=int, default=b.batch_size)
    add("--lr", type=float, default=b.lr)
    add("--embed-dim", type=int, default=b.embed_dim)
    add("--no-val-selection", action="store_true",
        help="keep the last epoch instead of the best on val")
    add("--out-dir", default=defaults.out_dir)


def baseline_config(args: argparse.Namespace) -> BaselineConfig:
    """The BaselineConfig that ``add_baseline_arguments``' flags name."""
    return BaselineConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                          embed_dim=args.embed_dim, select_on_val=not args.no_val_selection)


# ------------------------------------------------------------------------------- features


def pooled_image_features(bank: FeatureBank, channels: int = IMAGE_CHANNELS,
                          chunk: int = 2048) -> torch.Tensor:
    """(N, C) float32 global image features: mean over grid tokens of the final map."""
    c = min(channels, bank.whole.shape[-1])
    out = [bank.whole[i:i + chunk, :, :c].float().mean(dim=1)
           for i in range(0, len(bank.whole), chunk)]
    return torch.cat(out) if out else torch.zeros(0, c)


class _FixedDraw:
    """An rng whose random() always returns one value: picks one train_caption variant."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def caption_variants(captions: Sequence[str]) -> list[str]:
    """The four texts train_caption draws from (c1 and c2, c2 and c1, c1, c2), in that order."""
    return [train_caption(captions, _FixedDraw((k + 0.5) / 4)) for k in range(4)]


# ------------------------------------------------------------------------------- models


def mlp(d_in: int, hidden: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, d_out))


class Baseline(nn.Module):
    """Query and target encoders over (pooled image feature, sentence embedding)."""

    name = "baseline"
    trainable = True

    def __init__(self, image_dim: int, text_dim: int):
        super().__init__()
        self.image_norm = Standardize(image_dim)
        self.text_norm = Standardize(text_dim)

    def fit_inputs(self, images: torch.Tensor, texts: torch.Tensor) -> None:
        self.image_norm.fit(images)
        self.text_norm.fit(texts)

    def encode_query(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_target(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ImageOnly(Baseline):
    """The reference image's own global feature; the feedback is ignored."""

    name = "image only"
    trainable = False

    def encode_query(self, image, text):
        return F.normalize(image, dim=-1)

    def encode_target(self, image):
        return F.normalize(image, dim=-1)


class TextOnly(Baseline):
    """Feedback embedding -> MLP vs target feature -> linear map; the reference is ignored."""

    name = "text only"

    def __init__(self, image_dim: int, text_dim: int, cfg: BaselineConfig):
        super().__init__(image_dim, text_dim)
        self.text = mlp(text_dim, cfg.text_hidden, cfg.embed_dim, 0.1)
        self.target = nn.Linear(image_dim, cfg.embed_dim)

    def encode_query(self, image, text):
        return F.normalize(self.text(self.text_norm(text)), dim=-1)

    def encode_target(self, image):
        return F.normalize(self.target(self.image_norm(image)), dim=-1)


class LateFusion(Baseline):
    """normalise(normalise(P_ref image) + normalise(P_txt text)) vs normalise(P_tar target)."""

    name = "late fusion"

    def __init__(self, image_dim: int, text_dim: int, cfg: BaselineConfig):
        super().__init__(image_dim, text_dim)
        self.reference = nn.Linear(image_dim, cfg.embed_dim)
        self.text = mlp(text_dim, cfg.text_hidden, cfg.embed_dim, 0.1)
        self.target = nn.Linear(image_dim, cfg.embed_dim)

    def encode_query(self, image, text):
        img = F.normalize(self.reference(self.image_norm(image)), dim=-1)
        txt = F.normalize(self.text(self.text_norm(text)), dim=-1)
        return F.normalize(img + txt, dim=-1)

    def encode_target(self, image):
        return F.normalize(self.target(self.image_norm(image)), dim=-1)


class Combiner(Baseline):
    """CLIP4Cir's Combiner over linearly projected image and text features
    (model.network.CombinerHead, the module a checkpoint carries as its combiner head)."""

    name = "combiner"

    def __init__(self, image_dim: int, text_dim: int, cfg: BaselineConfig):
        super().__init__(image_dim, text_dim)
        self.head = CombinerHead(image_dim, text_dim, cfg.embed_dim, cfg.proj_dim,
                                 cfg.hidden_dim, cfg.dropout)
        # One pair of input statistics, the head's: fit_inputs fits them, the head reads them.
        self.image_norm, self.text_norm = self.head.image_norm, self.head.text_norm

    def encode_query(self, image, text):
        return self.head.query(image, text)

    def encode_target(self, image):
        return self.head.target(image)


BASELINES: dict[str, Callable[..., Baseline]] = {
    "image only": lambda i, t, cfg: ImageOnly(i, t),
    "text only": TextOnly,
    "late fusion": LateFusion,
    "combiner": Combiner,
}


def build_baseline(name: str, image_dim: int, text_dim: int, cfg: BaselineConfig) -> Baseline:
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}")
    return BASELINES[name](image_dim, text_dim, cfg)


# ------------------------------------------------------------------------------- data


@dataclass
class TripletTensors:
    """Training triplets as row indices into the pooled image matrix and the text table."""

    ref: torch.Tensor  # (T,) rows of the reference images
    tar: torch.Tensor  # (T,) rows of the target images
    texts: torch.Tensor  # (T, 4) rows of the four caption variants in `text_table`
    images: torch.Tensor  # (N, C) pooled image features
    text_table: torch.Tensor  # (S, H) sentence embeddings
    negatives: torch.Tensor | None = None  # (T, K) rows of each one's listed negatives, -1 pads

    def __len__(self) -> int:
        return len(self.ref)


def triplet_tensors(triplets: Sequence[Triplet], image_rows: dict[str, int],
                    images: torch.Tensor, embed: Callable[[Sequence[str]], torch.Tensor],
                    negatives: bool = False) -> TripletTensors:
    """The triplets as rows; with ``negatives`` also the rows of each one's listed hard
    negatives (those ``image_rows`` has)."""
    variants = [caption_variants(t.captions) for t in triplets]
    sentences = sorted({s for v in variants for s in v})
    row = {s: k for k, s in enumerate(sentences)}
    return TripletTensors(
        ref=torch.tensor([image_rows[t.candidate] for t in triplets]),
        tar=torch.tensor([image_rows[t.target] for t in triplets]),
        texts=torch.tensor([[row[s] for s in v] for v in variants]),
        images=images, text_table=embed(sentences),
        negatives=_negative_rows(triplets, image_rows) if negatives else None)


def _negative_rows(triplets: Sequence[Triplet], image_rows: dict[str, int]) -> torch.Tensor:
    listed = [[image_rows[n] for n in t.negatives if n in image_rows] for t in triplets]
    out = torch.full((len(listed), max(map(len, listed), default=0)), -1, dtype=torch.long)
    for k, rows in enumerate(listed):
        out[k, :len(rows)] = torch.tensor(rows, dtype=torch.long)
    return out


# ------------------------------------------------------------------------------- training


def _step_loss(model: Baseline, loss_fn: BatchClassificationLoss, data: TripletTensors,
               idx: torch.Tensor, rng: np.random.Generator, negatives: int = 0) -> torch.Tensor:
    """Batch loss of triplets ``idx``, each with one of its four caption variants at random
    and up to ``negatives`` of its listed hard negatives (at random) after the batch's targets."""
    variant = torch.from_numpy(rng.integers(0, 4, len(idx)))
    tar_rows = data.tar[idx]
    f_ref = model.encode_query(data.images[data.ref[idx]], data.text_table[data.texts[idx,
                                                                                      variant]])
    if negatives and data.negatives is not None and data.negatives.shape[1]:
        listed = data.negatives[idx]
        # a random order of each row's negatives, the padding last
        order = torch.from_numpy(rng.random(listed.shape)).masked_fill(listed < 0, 2.0)
        drawn = listed.gather(1, order.argsort(dim=1)[:, :negatives]).reshape(-1)
        tar_rows = torch.cat([tar_rows, drawn[drawn >= 0]])
    f_tar = model.encode_target(data.images[tar_rows])
    return loss_fn(f_ref, f_tar, tar_rows)  # the same target image twice is not a negative


def train_baseline(model: Baseline, data: TripletTensors, cfg: BaselineConfig,
                   score: Callable[[Baseline], float] | None = None) -> dict:
    """Train a fixed number of epochs; returns what was done (epochs, seconds, val scores).

    A fixed epoch count rather than a wall-clock budget: on this shared CPU the same budget
    bought 1 epoch under load and 8 when idle, which made the baselines' numbers depend on
    what else was running.
    """
    stats = {"name": model.name, "trainable": model.trainable}
    if not model.trainable:
        return stats
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model.fit_inputs(data.images[torch.unique(torch.cat([data.ref, data.tar]))],
                     data.text_table)
    loss_fn = make_loss()
    optimizer = adamw(model.named_parameters(), cfg.lr, cfg.weight_decay,
                      extra=loss_fn.parameters())
    epochs = cfg.epochs or DEFAULT_EPOCHS.get(model.name, 8)
    steps_per_epoch = max(1, len(data) // cfg.batch_size)
    total = epochs * steps_per_epoch
    scheduler = warmup_cosine_schedule(optimizer, total, cfg.warmup)
    started, step = time.perf_counter(), 0
    scores: list[float] = []
    best_state = None
    for epoch in range(epochs):
        model.train()
        order = torch.from_numpy(rng.permutation(len(data)))
        losses = []
        for b in tqdm(range(steps_per_epoch), desc=f"{model.name} {epoch + 1}/{epochs}",
                      unit="batch", leave=False, disable=steps_per_epoch < 50):
            loss = _step_loss(model, loss_fn, data,
                              order[b * cfg.batch_size:(b + 1) * cfg.batch_size], rng,
                              cfg.listed_negatives)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
        model.eval()
        if score is not None and cfg.select_on_val:
            scores.append(score(model))
            if scores[-1] >= max(scores):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        logger.info("%s epoch %d/%d: loss %.4f%s", model.name, epoch + 1, epochs,
                    float(np.mean(losses)), f", val score {scores[-1]:.2f}" if scores else "")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    stats.update(epochs=epochs, steps=step, steps_per_epoch=steps_per_epoch,
                 seconds=round(time.perf_counter() - started, 1),
                 batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
                 val_scores=[round(s, 2) for s in scores],
                 kept_epoch=int(np.argmax(scores)) + 1 if scores else epochs,
                 final_loss=float(np.mean(losses)),
                 temperature=round(float(loss_fn.log_scale.detach().exp()), 2),
                 parameters=sum(p.numel() for p in model.parameters()))
    return stats


# ------------------------------------------------------------------------------- evaluation


def baseline_encoders(model: Baseline, image_rows: dict[str, int], images: torch.Tensor,
                      embed: Callable[[Sequence[str]], torch.Tensor], batch_size: int = 1024):
    """(encode_queries, encode_gallery) for model.evaluate.evaluate_split."""

    @torch.inference_mode()
    def queries(ref_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        model.eval()
        out = []
        for i in range(0, len(ref_ids), batch_size):
            rows = torch.tensor([image_rows[r] for r in ref_ids[i:i + batch_size]])
            out.append(model.encode_query(images[rows], embed(texts[i:i + batch_size])))
        return torch.cat(out).numpy()

    @torch.inference_mode()
    def gallery(ids: Sequence[str]) -> np.ndarray:
        model.eval()
        rows = torch.tensor([image_rows[i] for i in ids])
        return torch.cat([model.encode_target(images[rows[i:i + batch_size]])
                          for i in range(0, len(rows), batch_size)]).numpy()

    return queries, gallery
