"""What a training run does: `TrainConfig`, and the `python -m model.train` flags derived from it.

Every field with help metadata is a flag (`model.dataclass_cli`), so a default and its help are
written once, here; the architecture flags come the same way from `ModelConfig`'s fields. The
config is written into every run's folder (OUT/train_config.json) and into each checkpoint's
meta, and `TrainConfig.from_dict` reads such a record back, also one from before an option
was removed.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model.config import ModelConfig, cli
from model.dataclass_cli import add_fields, field_values
from model.device import DEVICE_CHOICES
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

GROUP_BY = ("category", "kind")  # what a one-group batch shares (model.sampling)
# Options of experiments that did not win (README, Training: stages 7, 10g, 13, 15, 17), removed
# from the code; git tag experiments-before-cleanup has them. A stored train config naming one
# (checkpoints/demo's parts do) still loads: each maps to the value that meant "off".
REMOVED_OPTIONS = {"global_lr": None, "group_balance": 1.0, "colourway_negatives": 0,
                   "mask_lookalikes": False, "look_weight": 0.0}


@dataclass
class TrainConfig:
    annotations: list[str] = cli(dataclasses.MISSING, "comma-separated annotation roots: "
                                 "FashionIQ folders, or flat JSON files of triplets")
    images: list[str] = cli(dataclasses.MISSING, "comma-separated image folders, paired with "
                            "--annotations by position")
    batch_size: int = cli(64, "triplets per batch")
    epochs: int = cli(10, "epochs of the learning-rate schedule")
    categories: list[str] | None = cli(None, "categories to train on (default: every one "
                                       "present)", nargs="*")
    lr: float = cli(3e-4, "learning rate of the new layers (image tokens, target block, heads)")
    text_lr: float = cli(3e-5, "learning rate of the fine-tuned pretrained text layers")
    path_lr: float | None = cli(None, "learning rate of the sentence and phrase paths (none: "
                                "--lr)")
    weight_decay: float = cli(0.01, "AdamW weight decay (never on norms, biases, temperature)")
    warmup: float = cli(0.05, "share of all steps spent warming the learning rate up")
    seed: int = cli(0, "seed of the model's new layers and of the batches")
    out: str = cli("checkpoints/run", "run folder: OUT/best, OUT/last, metrics.jsonl")
    cache_dir: str = cli(FEATURE_CACHE_DIR, "backbone feature cache ('' disables it)")
    workers: int = cli(2, "image-decoding processes of the one-time feature extraction")
    max_val_queries: int | None = cli(1000, "validation queries per category and epoch")
    steps_per_epoch: int | None = cli(None, "batches per epoch (none: one pass over the data)")
    flip: bool = cli(True, "no random horizontal flips of the cached grids")
    resume: bool = cli(True, "start over even if OUT/last exists")
    stop_after: int | None = cli(None, "stop after this epoch; the schedule stays laid out "
                                 "over --epochs, and the same command resumes (e.g. to "
                                 "re-weight the datasets mid-schedule, README stage 2)")
    mixed_share: float = cli(0.5, "share of batches that mix every category of a dataset")
    dataset_weights: list[float] | None = cli(None, "batch share per dataset (default: in "
                                              "proportion to its training triplets)")
    init_from: str | None = cli(None, "fine-tune from this checkpoint's weights")
    drop_paths: list[str] | None = cli(None, "residual paths of the --init-from checkpoint to "
                                       "remove (e.g. sentence_path)")
    holdout: float = cli(0.1, "validation share of a flat annotation file without a sibling "
                         "val.json (by reference image)")
    device: str = cli("auto", "auto (CUDA when present), cpu or cuda", choices=DEVICE_CHOICES)
    grounding: float = cli(0.0, "weight of the auxiliary image <-> description loss (0: off; "
                           "model.grounding)")
    kind_weight: float = cli(0.5, "weight of the loss that ranks the reference's garment kind "
                             "first (model.loss.kind_loss)")
    group_by: str = cli("category", "what the triplets of a one-group batch share: the "
                        "category, or the target's garment kind (product type where known)",
                        choices=GROUP_BY)
    # The temperature is learnable, but AdamW at these rates moved it by at most 10% in a run,
    # so the initial value is in effect the one trained with; higher sharpens the softmax onto
    # hard negatives. In a long --paths-only run it climbed from 10 to 19: --freeze-scale.
    logit_scale: float | None = cli(None, "initial inverse temperature of the loss (none: the "
                                    "model config's, 10)")
    freeze_scale: bool = cli(False, "keep the loss temperature at its start")
    # The paths are a few small matrix products over frozen token blocks whose outputs are
    # computed once per query and target (model.token_memo), so they see every triplet often.
    paths_only: bool = cli(False, "train only the residual paths over frozen token blocks "
                           "(no flips, one fixed caption per triplet)")
    # Colourway queries gained and products lost as one shared temperature climbed (stages
    # 10-12); the demo checkpoint's runs since stage 14 have one per dataset.
    dataset_scales: bool = cli(False, "learn one loss temperature per dataset")
    # The --init-from checkpoint, frozen, is the teacher; targets, shared image tokens and the
    # global path stay the teacher's, so a catalog indexed with it keeps its vectors. With
    # --paths-only the teacher is the paths the run starts from, and both sides train.
    distill: float = cli(0.0, "weight of a distillation term towards the --init-from "
                         "checkpoint's ranking of each batch: trains only the reference side "
                         "(with --paths-only: the paths) (0: off; model.distillation)")
    distill_datasets: list[str] | None = cli(None, "the datasets (annotation folder names) "
                                             "whose queries the distillation term teaches "
                                             "(default: all)")
    distill_temperature: float = cli(1.0, "the distillation softmax's temperature, in units "
                                     "of the loss's (above 1: the teacher's ranks after the "
                                     "first weigh more)")
    # Another model's ranking of the batches: a file of its query vectors per (reference,
    # caption) and target vectors per image (`python -m bench.teacher_vectors`: the combiner
    # baseline, which ranks relative, negated and type requests better; README, issue 35).
    teacher_vectors: str | None = cli(None, "a teacher's vectors for the training triplets "
                                      "(bench.teacher_vectors); its ranking of each batch is "
                                      "taught beside the loss, at --teacher-weight, to the "
                                      "queries it ranks right and the model does not")
    teacher_weight: float = cli(1.0, "weight of the --teacher-vectors term")
    teacher_datasets: list[str] | None = cli(None, "the datasets whose queries the "
                                             "--teacher-vectors term teaches (default: those "
                                             "the file has vectors for)")
    # data/hm_feedback names them: items that still have what "without sleeves" removes
    # (gloves among them), other kinds in the target's colour (model.sampling.ListedNegatives).
    listed_negatives: int = cli(0, "extra negatives per triplet, drawn from the hard negatives "
                                "its annotation lists (0: off)")
    tail_lr: float | None = cli(None, "learning rate of the backbone's last stage with "
                                "--train-backbone-tail (none: --lr)")
    model: ModelConfig = field(default_factory=ModelConfig)

    @property
    def memoised(self) -> bool:
        """Batches go through `model.token_memo` (fixed captions, no flips)."""
        return self.paths_only or self.distill > 0

    def check(self, backbone_tail: bool) -> None:
        """Refuse combinations that cannot train (``backbone_tail``: the model to train has
        its tail on, from the flag or from the checkpoint it starts from)."""
        if self.paths_only and self.grounding > 0:
            raise ValueError("--grounding trains the token blocks, which --paths-only freezes")
        if self.distill > 0 and (self.grounding > 0 or not self.init_from):
            raise ValueError("--distill needs --init-from (the teacher) and trains over "
                             "memoised outputs: not with --grounding")
        if self.drop_paths and not self.init_from:
            raise ValueError("--drop-paths removes paths of the --init-from checkpoint")
        if self.distill_datasets and self.distill <= 0:
            raise ValueError("--distill-datasets names whom --distill teaches: set --distill")
        if self.teacher_vectors and not self.memoised:
            raise ValueError("--teacher-vectors looks its queries up by (reference, caption): "
                             "it needs the fixed captions of --paths-only or --distill")
        if self.teacher_vectors and not Path(self.teacher_vectors).is_file():
            raise FileNotFoundError(f"--teacher-vectors {self.teacher_vectors}: no such file "
                                    "(python -m bench.teacher_vectors writes one)")
        if self.teacher_datasets and not self.teacher_vectors:
            raise ValueError("--teacher-datasets names whom --teacher-vectors teaches")
        if self.dataset_scales and self.grounding > 0:
            raise ValueError("--grounding's image <-> text pairs belong to no dataset, so "
                             "they have no temperature under --dataset-scales")
        if backbone_tail and self.memoised:
            raise ValueError("--train-backbone-tail changes every token, so it cannot train "
                             "over memoised outputs (--paths-only, --distill)")
        if len(self.annotations) != len(self.images):
            raise ValueError(f"{len(self.annotations)} annotation roots but {len(self.images)} "
                             "image folders: give one image folder per annotation root")

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


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The `python -m model.train` parser: TrainConfig's fields, then ModelConfig's."""
    parser = argparse.ArgumentParser(prog="python -m model.train", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_fields(parser, TrainConfig)
    group = parser.add_argument_group(
        "architecture", "of a new run, or what --init-from adds to its checkpoint")
    add_fields(group, ModelConfig, prefix="model.", suppress=True)
    group.add_argument("--tiny", action="store_true", help="tiny random model (smoke tests)")
    return parser


def parse_args(argv: Sequence[str] | None = None, description: str | None = None
               ) -> TrainConfig:
    """The TrainConfig a command line asks for; architecture flags apply on top of the default
    ModelConfig (or ``ModelConfig.tiny()`` with --tiny)."""
    namespace = build_parser(description).parse_args(argv)
    base = ModelConfig.tiny() if namespace.tiny else ModelConfig()
    model = dataclasses.replace(base, **field_values(namespace, ModelConfig, "model."))
    return TrainConfig(**field_values(namespace, TrainConfig), model=model)
