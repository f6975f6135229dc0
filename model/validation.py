"""The per-epoch validation score of a training run (the FashionIQ protocol on each val split)."""

from __future__ import annotations

import logging

import numpy as np

from model.data import Dataset
from model.evaluate import (
    evaluate_kept,
    evaluate_split,
    format_table,
    item_kinds,
    model_encoders,
    remembered_encoders,
)
from model.feature_cache import FeatureBank

logger = logging.getLogger(__name__)


def validate(retriever, bank: FeatureBank, datasets: list[Dataset],
             max_queries: int | None) -> tuple[float, dict]:
    """Score = mean over datasets of (R@10+R@50)/2 on their val splits (a dataset without
    val triplets trains but is not scored).

    kept@10 (every category in one gallery) is logged and stored in "average" beside it, but
    not scored: recall and kept@10 trade against each other (README, stages 4-5), and which
    epoch to keep is then a choice to make from metrics.jsonl, not one to hide in a sum.
    """
    report, scores = {}, []
    for d in datasets:
        if not d.val.triplets:
            continue
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
    if not scores:
        raise ValueError("no dataset has validation triplets to select a checkpoint on")
    return float(np.mean(scores)), report
