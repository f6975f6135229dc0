"""Where "same garment, other colour" misses go: what fills the top 10 when the exact
colourway is not in it, on the H&M val split.

    python -m bench.colourway_misses --checkpoints checkpoints/demo data/runs/stage3/best

Why: colourway R@10 is the H&M floor FashionVLP still misses. Whether the top 10 holds the
reference's own garment in the old colour (the words are ignored), the requested colour on
other garments (the garment is lost), or both colour and kind right on the wrong garment says
what training has to change. Each checkpoint is scored with `model.evaluate`'s encoders over
the same per-category galleries as `bench.accuracy`; writes bench/results/colourway_misses.json.
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bench._common import RESULTS, run_benchmark, table
from dataprep import eval_caption, load_fashioniq, read_metadata_column
from model import load_retriever
from model.evaluate import model_encoders, restrict_to_bank
from model.feature_cache import extract_features

logger = logging.getLogger(__name__)

SHARES = ("target colour", "reference's product type", "target colour and product type",
          "reference colour", "same product, other colourway")


@dataclass
class MissConfig:
    checkpoints: list[str] = field(default_factory=lambda: ["checkpoints/demo"])
    annotations: str = "data/hm"
    images: str = "../shared/data/hm/images"
    cache_dir: str = "data/feature_cache"
    threads: int = 2
    out_dir: Path = RESULTS


def slot_shares(top: list[str], ref: str, tar: str, colour: dict[str, str],
                kind: dict[str, str]) -> Counter:
    """How many of ``top`` fall in each of SHARES for one query (H&M ids: product code = the
    first 7 digits)."""
    out: Counter = Counter()
    for g in top:
        same_colour, same_kind = colour.get(g) == colour.get(tar), kind.get(g) == kind.get(ref)
        out["target colour"] += same_colour
        out["reference's product type"] += same_kind
        out["target colour and product type"] += same_colour and same_kind
        out["reference colour"] += colour.get(g) == colour.get(ref)
        out["same product, other colourway"] += g[:7] == ref[:7]
    return out


def misses(checkpoint: str, cfg: MissConfig) -> dict:
    retriever = load_retriever(checkpoint)
    val = load_fashioniq(cfg.annotations, cfg.images, "val")
    bank = extract_features(retriever.encoder, val.image_paths, cfg.cache_dir or None)
    val = restrict_to_bank(val, bank)
    colour = read_metadata_column(cfg.annotations, ("colour",))
    kind = read_metadata_column(cfg.annotations, ("product_type",))
    encode_queries, encode_gallery = model_encoders(retriever, bank)
    slots, queries, missed, miss_ranks = Counter(), 0, 0, []
    for category in val.categories:
        triplets = [t for t in val.triplets if t.category == category and "colourway" in t.tags]
        if not triplets:
            continue
        gallery = list(val.gallery[category])
        scores = (encode_queries([t.candidate for t in triplets],
                                 [eval_caption(t.captions) for t in triplets])
                  @ encode_gallery(gallery).T)
        for t, row in zip(triplets, scores, strict=True):
            order = [gallery[k] for k in np.argsort(-row) if gallery[k] != t.candidate]
            queries += 1
            if t.target in order[:10]:
                continue
            missed += 1
            miss_ranks.append(order.index(t.target) + 1)
            slots += slot_shares(order[:10], t.candidate, t.target, colour, kind)
    return {"checkpoint": checkpoint, "fingerprint": retriever.fingerprint,
            "queries": queries, "missed": missed,
            "median_rank_of_misses": float(np.median(miss_ranks)) if miss_ranks else None,
            "shares_of_missed_top10": {k: slots[k] / (10 * missed) if missed else None
                                       for k in SHARES}}


def run(cfg: MissConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    return {"config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(cfg).items()},
            "results": [misses(c, cfg) for c in cfg.checkpoints]}


def parse_args(argv: list[str]) -> MissConfig:
    p = argparse.ArgumentParser(prog="python -m bench.colourway_misses", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = MissConfig()
    p.add_argument("--checkpoints", nargs="+", default=d.checkpoints)
    p.add_argument("--annotations", default=d.annotations)
    p.add_argument("--images", default=d.images)
    p.add_argument("--cache-dir", default=d.cache_dir)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out-dir", type=Path, default=d.out_dir)
    a = p.parse_args(argv)
    return MissConfig(a.checkpoints, a.annotations, a.images, a.cache_dir, a.threads, a.out_dir)


def main(argv: list[str] | None = None) -> dict:
    _, report, path = run_benchmark("colourway_misses", argv, parse_args, run)
    rows = [[r["checkpoint"], r["fingerprint"], r["queries"], r["missed"],
             r["median_rank_of_misses"],
             *(f"{100 * r['shares_of_missed_top10'][k]:.0f}%" for k in SHARES)]
            for r in report["results"] if r["missed"]]
    print(table(rows, ["checkpoint", "fingerprint", "queries", "missed", "median rank",
                       *SHARES]))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
