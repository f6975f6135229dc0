"""Push a checkpoint's queries from their reference photo: its own weights, read another way.

    python -m model.reference_push --checkpoint CKPT --out OUT --weight 0.2

A query becomes its unit vector minus ``weight`` times the fused-space block of the reference
photo's own catalog vector (model.network.FashionVLP.compose_reference), so every item's score
loses ``weight`` times its fused-space likeness to the photo.

Why: feedback asks for a change, so the photo itself and its nearest look-alikes are what it
rules out first; yet the fused query of a short change stays nearest to the photo, which fills
the top 10 of most misses (docs/training_log.md, stage 95). The push needs no training and no
weights: the reference photo's target vector comes from the backbone tokens the query already
computed (one pass of the small target block).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from model.retriever import Retriever, in_architecture, load_retriever

logger = logging.getLogger(__name__)


def with_reference_push(retriever: Retriever, weight: float) -> Retriever:
    """``retriever``'s weights, every one, with its queries pushed from their reference photo
    by ``weight`` (0: not pushed)."""
    if weight < 0:
        raise ValueError(f"a push from the reference is a weight >= 0, not {weight}")
    cfg = dataclasses.replace(retriever.cfg, reference_push=float(weight))
    pushed = in_architecture(retriever, cfg, "push queries from their reference")
    pushed.net.eval()
    pushed.meta["reference_push"] = {"weight": cfg.reference_push,
                                     "from_checkpoint": retriever.fingerprint}
    return pushed


def main(argv: Sequence[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m model.reference_push", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint whose queries to push")
    p.add_argument("--out", required=True, help="the new checkpoint's directory")
    p.add_argument("--weight", type=float, required=True,
                   help="how far each query moves from its reference photo's own vector")
    args = p.parse_args(argv)
    if args.weight < 0:
        p.error(f"--weight must be >= 0, not {args.weight}")
    retriever = load_retriever(args.checkpoint, engine="eager")
    pushed = with_reference_push(retriever, args.weight)
    path = pushed.save(args.out)
    logger.info("wrote %s (fingerprint %s): %s with its queries pushed from their reference "
                "by %g", args.out, pushed.fingerprint, args.checkpoint, args.weight)
    return path


if __name__ == "__main__":
    main()
