"""Attach a trained combiner to a checkpoint: its vectors are appended to f_ref and f_tar, so
the catalog's one inner product scores FashionVLP's cosine plus ``weight`` times the combiner's.

    python -m bench.teacher_vectors --checkpoint CKPT --datasets ANN:IMAGES --out COMBINER.pt
    python -m model.combiner_head --checkpoint CKPT --combiner COMBINER.pt --out OUT

Why: the CLIP4Cir combiner over the same pooled backbone feature and frozen MiniLM sentence
embedding that FashionVLP's phrase path reads ranks relative, negated and type requests that
FashionVLP misses, and the two rankings disagree where each is right: their sum beats both
(docs/training_log.md, stages 62 and 67-72). Teaching one model the other's ranking kept a
fraction of that (stages 62-66); carrying both costs a few small matrix products per query,
since both read what the query already computed. The combiner is trained apart, on the
checkpoint's own features (``bench.teacher_vectors``, the benchmark's combiner training), and
never by ``model.train``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from model.retriever import Retriever, load_retriever, with_new_head

logger = logging.getLogger(__name__)


def with_combiner_head(retriever: Retriever, combiner: dict, weight: float = 1.0) -> Retriever:
    """``retriever`` with the combiner ``combiner`` (the "combiner" entry of a
    ``bench.teacher_vectors`` file) as its head at ``weight``; refuses a combiner trained on
    another backbone's features or another sentence encoder."""
    if not retriever.cfg.phrase_path:
        raise ValueError("a combiner head reads the phrase path's sentence embedding: this "
                         "checkpoint has no phrase path")
    if combiner["features_key"] != retriever.encoder.cache_key:
        raise ValueError(f"the combiner was trained on features {combiner['features_key']}, "
                         f"this checkpoint's backbone gives {retriever.encoder.cache_key}")
    if combiner["text_model"] != retriever.cfg.text_model:
        raise ValueError(f"the combiner read {combiner['text_model']} sentence embeddings, "
                         f"the phrase path is {retriever.cfg.text_model}")
    state = combiner["state"]
    dim = state["image_in.weight"].shape[0]
    cfg = dataclasses.replace(retriever.cfg, combiner_head=dim, combiner_weight=weight)
    headed = with_new_head(retriever, cfg, "combiner_head.", state)
    headed.meta["combiner_head"] = {"weight": weight}
    return headed


def attach(checkpoint: str, combiner_file: str, out: str, weight: float = 1.0) -> Path:
    """Write ``checkpoint`` with the combiner of ``combiner_file`` attached to ``out``."""
    retriever = load_retriever(checkpoint, engine="eager")
    combiner = torch.load(combiner_file, map_location="cpu", weights_only=True)
    if "combiner" not in combiner:
        raise ValueError(f"{combiner_file} holds no combiner (written before "
                         "bench.teacher_vectors stored it): make it again")
    headed = with_combiner_head(retriever, combiner["combiner"], weight)
    headed.meta["combiner_head"].update(file=combiner_file,
                                        datasets=combiner.get("datasets", []),
                                        from_checkpoint=retriever.fingerprint)
    path = headed.save(out)
    logger.info("wrote %s (fingerprint %s): %s with a %d-d combiner head at weight %g",
                out, headed.fingerprint, checkpoint, headed.cfg.combiner_head, weight)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m model.combiner_head", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint to attach the head to")
    p.add_argument("--combiner", required=True,
                   help="a file written by python -m bench.teacher_vectors")
    p.add_argument("--out", required=True, help="the new checkpoint's directory")
    p.add_argument("--weight", type=float, default=1.0,
                   help="weight of the combiner's cosine beside FashionVLP's")
    args = p.parse_args(argv)
    return attach(args.checkpoint, args.combiner, args.out, args.weight)


if __name__ == "__main__":
    main()
