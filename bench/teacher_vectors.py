"""The combiner baseline as a teacher: its vectors for the training triplets, for
``python -m model.train --teacher-vectors FILE``.

    source scripts/env.sh && .venv/bin/python -m bench.teacher_vectors \\
        --datasets data/hm_feedback:../shared/data/hm/images --out data/teachers/combiner.pt

Why: on the feedback rows of ``bench.feedback_rows`` (relative, negated and type requests in
held-out phrasings) the CLIP4Cir combiner over the frozen pooled image and sentence features,
trained on the same triplets, ranks better than FashionVLP, which is ahead on the rest. Its
ranking of each training batch, taught beside the loss, is what it knows that the labels alone
did not give (README, issue 35; docs/training_log.md). Trained exactly as the benchmark trains
it (``bench.baselines.train_baseline``, epoch kept by validation); the file holds, in its own
space: one query vector per (reference, caption) of the training triplets, with the caption a
``--paths-only`` run trains with (``dataprep.eval_caption``), one target vector per image, its
trained temperature and the names of the datasets (annotation folders) it has queries of.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from bench.baselines import (
    BaselineConfig,
    baseline_encoders,
    build_baseline,
    train_baseline,
    triplet_tensors,
)
from bench.datasets import Data, image_paths, read_splits, restrict, val_score
from bench.feedback_rows import DEFAULT_FEEDBACK, PooledBank, pooled_bank
from bench.text_features import TextConfig, TextEmbedder
from dataprep import eval_caption
from model import load_retriever
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class TeacherConfig:
    datasets: list[str] = field(default_factory=lambda: [DEFAULT_FEEDBACK])  # ANN[:IMAGES]
    out: str = "data/teachers/combiner.pt"
    checkpoint: str = DEFAULT_CHECKPOINT  # whose backbone's features (and cache) it reads
    cache_dir: str = FEATURE_CACHE_DIR
    text_model: str = "all-MiniLM-L6-v2"
    epochs: int = 4
    max_val_queries: int = 1000  # per category, for the epoch selection
    workers: int = 1
    threads: int = 2
    baseline: BaselineConfig = field(default_factory=BaselineConfig)


def load(cfg: TeacherConfig, encoder) -> tuple[list[Data], PooledBank]:
    """The datasets (train and val splits) and the pooled image vectors of their images."""
    data = read_splits(cfg.datasets)
    bank = pooled_bank(encoder, image_paths(data), cfg.cache_dir or None, cfg.workers)
    restrict(data, bank)
    return data, bank


@torch.inference_mode()
def teacher_file(model, data: Sequence[Data], bank: PooledBank, embed, stats: dict,
                 features_key: str, text_model: str) -> dict:
    """What ``model.distillation.TeacherVectors`` reads, and the combiner itself, which
    ``python -m model.combiner_head`` attaches to a checkpoint whose backbone gave the same
    features (``features_key``) and whose phrase path is ``text_model``."""
    queries, gallery = baseline_encoders(model, bank.index, bank.pooled, embed)
    keys = list(dict.fromkeys((t.candidate, eval_caption(t.captions))
                              for d in data for t in d.train.triplets))
    images = list(bank.index)
    return {"keys": keys,
            "queries": torch.from_numpy(queries([r for r, _ in keys], [c for _, c in keys])),
            "images": images, "targets": torch.from_numpy(gallery(images)),
            "temperature": stats["temperature"],
            "datasets": [d.spec.name for d in data], "training": stats,
            "combiner": {"state": model.head.state_dict(),
                         "features_key": features_key, "text_model": text_model}}


def run(cfg: TeacherConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    encoder = load_retriever(cfg.checkpoint).encoder
    data, bank = load(cfg, encoder)
    embed = TextEmbedder(TextConfig(model=cfg.text_model, cache_dir=cfg.cache_dir or None))
    train = triplet_tensors([t for d in data for t in d.train.triplets], bank.index,
                            bank.pooled, embed, negatives=cfg.baseline.listed_negatives > 0)
    model = build_baseline("combiner", bank.pooled.shape[1], embed.dim, cfg.baseline)
    stats = train_baseline(model, train, replace(cfg.baseline, epochs=cfg.epochs),
                           lambda m: val_score(data, baseline_encoders(
                               m, bank.index, bank.pooled, embed), cfg.max_val_queries))
    out = teacher_file(model, data, bank, embed, stats | {"config": asdict(cfg)},
                       encoder.cache_key, cfg.text_model)
    Path(cfg.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(out, cfg.out)
    logger.info("wrote %s: %d queries, %d images, temperature %.1f, kept epoch %s",
                cfg.out, len(out["keys"]), len(out["images"]), out["temperature"],
                stats.get("kept_epoch"))
    return out


def parse_args(argv: Sequence[str] | None) -> TeacherConfig:
    d = TeacherConfig()
    p = argparse.ArgumentParser(prog="python -m bench.teacher_vectors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=d.datasets, metavar="ANN[:IMAGES]",
                   help="what the teacher trains on and has query vectors of")
    p.add_argument("--out", default=d.out)
    p.add_argument("--checkpoint", default=d.checkpoint)
    p.add_argument("--cache-dir", default=d.cache_dir, help="feature cache ('' disables)")
    p.add_argument("--text-model", default=d.text_model)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--embed-dim", type=int, default=d.baseline.embed_dim,
                   help="the combiner's space (its projections as wide, its hidden layers "
                        "twice): what a checkpoint stores of it as a head grows with its square")
    p.add_argument("--listed-negatives", type=int, default=d.baseline.listed_negatives,
                   help="extra negatives per triplet from the hard negatives its annotation "
                        "names (the benchmarks' combiner: 0)")
    p.add_argument("--max-val-queries", type=int, default=d.max_val_queries)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--threads", type=int, default=d.threads)
    args = vars(p.parse_args(argv))
    dim, negatives = args.pop("embed_dim"), args.pop("listed_negatives")
    return replace(d, **args, baseline=replace(d.baseline, embed_dim=dim, proj_dim=dim,
                                               hidden_dim=2 * dim, listed_negatives=negatives))


def main(argv: Sequence[str] | None = None) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(parse_args(argv))


if __name__ == "__main__":
    main()
