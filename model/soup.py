"""Average the weights of checkpoints fine-tuned from one start: a "model soup".

Why: one training run is one draw. Seeds of one recipe differ by one to two points on the val
metrics (README, Training, stages 11 and 16), so picking the best-looking run partly picks its
noise. Runs fine-tuned from one checkpoint stay in one basin of the loss, so the mean of their
weights is itself a working model (Wortsman et al., "Model soups", ICML 2022) that lands near
the mean of the runs: one checkpoint in the usual format, encoding exactly as fast as any part.
The demo checkpoint is the soup of three seeds. Mixes of two different recipes (stages 11 and
14) landed between their two ends: a soup averages what its parts do, it adds nothing new.

    python -m model.soup --checkpoints RUN_A/best RUN_B/best [--weights 1 2] --out DIR

``--weights`` mixes unevenly: WiSE-FT's interpolation between a checkpoint and one fine-tuned
from it. It lost once (stage 1 into a later checkpoint, training log stage 17) and won for
stage 35b, the demo checkpoint before stage 41 (a third of stage 28, two thirds of stage 35,
where the uniform mean kept stage 28's figures and lost the fine-tune's gains).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from typing import Any

import torch

from model.checkpoint import (
    CheckpointError,
    pack_weights,
    read_checkpoint,
    unpack_weights,
    write_checkpoint,
)
from model.config import ModelConfig

logger = logging.getLogger(__name__)


@dataclass
class SoupConfig:
    checkpoints: list[str]
    out: str
    weights: list[float] = field(default_factory=list)  # empty: uniform


def soup_weights(count: int, weights: list[float] | None = None) -> list[float]:
    """The mixing weights of ``count`` checkpoints, normalised to sum 1 (uniform when none
    are given)."""
    if count < 2:
        raise ValueError("a soup needs at least two checkpoints")
    if not weights:
        return [1.0 / count] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} checkpoints")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative and not all zero")
    return [w / sum(weights) for w in weights]


def average_states(states: list[dict[str, torch.Tensor]], weights: list[float]
                   ) -> dict[str, torch.Tensor]:
    """Weighted mean of float tensors (accumulated in float32, stored in the first state's
    dtype); every other tensor must be equal across the states."""
    names = set(states[0])
    for i, state in enumerate(states[1:], start=1):
        if set(state) != names:
            diff = sorted(names ^ set(state))
            raise CheckpointError(f"checkpoint {i} holds other weights (e.g. {diff[:3]})")
    mixed: dict[str, torch.Tensor] = {}
    for name in sorted(names):
        tensors = [state[name] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise CheckpointError(f"weight {name} has different shapes across checkpoints")
        if not tensors[0].is_floating_point():
            if any(not torch.equal(t, tensors[0]) for t in tensors):
                raise CheckpointError(f"non-float weight {name} differs across checkpoints")
            mixed[name] = tensors[0]
            continue
        total = sum(w * t.float() for w, t in zip(weights, tensors, strict=True))
        mixed[name] = total.to(tensors[0].dtype)
    return mixed


def make_soup(cfg: SoupConfig) -> str:
    """Write the soup of `cfg.checkpoints` to `cfg.out`; return its fingerprint."""
    weights = soup_weights(len(cfg.checkpoints), cfg.weights)
    read = [read_checkpoint(path) for path in cfg.checkpoints]
    model_cfg: ModelConfig = read[0][0]
    for path, (other, _, _) in zip(cfg.checkpoints[1:], read[1:], strict=True):
        if other != model_cfg:
            raise CheckpointError(f"{path} has another architecture than {cfg.checkpoints[0]}")
    states = [unpack_weights(state) for _, state, _ in read]
    metas = [record.get("meta") or {} for _, _, record in read]
    starts = {(meta.get("init_from") or {}).get("fingerprint") for meta in metas}
    common_start = len(starts) == 1 and None not in starts
    if not common_start:
        logger.warning("the checkpoints do not name one common start (init_from: %s); a soup "
                       "of unrelated runs is rarely a working model", sorted(map(str, starts)))
    state = average_states(states, weights)
    meta: dict[str, Any] = {"soup": [  # each part keeps how it was trained (its epoch, its run)
        {"checkpoint": path, "fingerprint": record.get("fingerprint"), "weight": w,
         **{k: part[k] for k in ("epoch", "train") if k in part}}
        for path, (_, _, record), part, w in zip(cfg.checkpoints, read, metas, weights,
                                                 strict=True)]}
    if common_start:
        meta["init_from"] = metas[0]["init_from"]
    digest = write_checkpoint(cfg.out, model_cfg, pack_weights(state, model_cfg.save_dtype),
                              meta)
    logger.info("soup of %d checkpoints (weights %s) -> %s (fingerprint %s)",
                len(read), ", ".join(f"{w:.3f}" for w in weights), cfg.out, digest)
    return digest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m model.soup", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--checkpoints", nargs="+", required=True,
                        help="checkpoint directories fine-tuned from one start")
    parser.add_argument("--weights", nargs="*", type=float, default=[],
                        help="one mixing weight per checkpoint, normalised to sum 1 "
                        "(default: uniform)")
    parser.add_argument("--out", required=True, help="directory for the soup checkpoint")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        make_soup(SoupConfig(checkpoints=args.checkpoints, out=args.out, weights=args.weights))
    except (CheckpointError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
