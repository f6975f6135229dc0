"""The one recall computation shared by the model and every baseline (the CLIP4Cir lesson).

Queries and gallery are L2-normalised vectors; ranking is by cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k(queries: np.ndarray, gallery: np.ndarray, k: int) -> np.ndarray:
    """(Q, D) x (N, D) -> (Q, min(k, N)) gallery rows, best first, by inner product."""
    scores = queries @ gallery.T  # (Q, N)
    k = min(k, gallery.shape[0])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def retrieval_metrics(queries: np.ndarray, gallery: np.ndarray, gallery_ids: Sequence[str],
                      targets: Sequence[str], relevant: Sequence[Sequence[str]] | None = None,
                      ks: Sequence[int] = (10, 50), precision_k: int = 10) -> dict[str, float]:
    """Percentages: R@K (exact target in top K) and, with relevant sets, hit@k and P@k.

    Every target must be in the gallery exactly once: a query whose target is absent would
    silently count as a miss, so it is an error instead.
    """
    if len(queries) != len(targets):
        raise ValueError(f"{len(queries)} query vectors but {len(targets)} targets")
    position = {gid: row for row, gid in enumerate(gallery_ids)}
    if len(position) != len(gallery_ids):
        raise ValueError("gallery ids are not unique")
    absent = [t for t in targets if t not in position]
    if absent:
        raise ValueError(f"{len(absent)} targets are not in the gallery (e.g. {absent[:3]})")
    if len(targets) == 0:
        return {f"R@{k}": 0.0 for k in ks}
    ranked = top_k(queries, gallery, max(max(ks), precision_k))
    target_rows = np.array([position[t] for t in targets])[:, None]
    hit_rank = ranked == target_rows  # (Q, K)
    out = {f"R@{k}": 100.0 * float(hit_rank[:, :k].any(axis=1).mean()) for k in ks}
    if relevant is not None:
        hits, precisions = [], []
        for row, rel in zip(ranked[:, :precision_k], relevant, strict=True):
            rel_rows = {position[r] for r in rel if r in position}
            n_rel = sum(int(r) in rel_rows for r in row)
            hits.append(n_rel > 0)
            precisions.append(n_rel / precision_k)
        out[f"hit@{precision_k}"] = 100.0 * float(np.mean(hits))
        out[f"P@{precision_k}"] = 100.0 * float(np.mean(precisions))
    return out


def summarise(per_category: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over categories (as FashionIQ papers report), plus (R@10+R@50)/2."""
    keys = sorted({k for m in per_category.values() for k in m})
    average = {k: float(np.mean([m[k] for m in per_category.values() if k in m])) for k in keys}
    if "R@10" in average and "R@50" in average:
        average["mean"] = (average["R@10"] + average["R@50"]) / 2
    return average
