"""Ranking beside the words: "More like this" / "Less like this" clicks and items already seen.

Pure functions on vectors and ranked lists, so the page and the multi-turn benchmark
(``bench.multiturn``) share one implementation of each choice and the benchmark measures what
the page does. They use only the items' vectors (the catalog's f_tar, read from the index) and
the shopper's clicks, never the stored attribute fields.

- :func:`rocchio` moves the query towards the items the shopper liked and away from the ones
  they disliked (Rocchio relevance feedback, as in text retrieval since 1971).
- :func:`demote` ranks items the shopper has already been shown and passed over below the
  others, unless the page's "show items already seen" switch is on.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

# Default weights, chosen with bench.multiturn on its seed-1 shoppers (300 episodes) and
# reported on seed 0's: Hits@10 after turn 5 for memory + passed-over + clicks, with
# (like, dislike) = (0.75, 0.15), Rocchio's textbook values: 77.3; (0.3, 0.3): 80.7;
# (0.1, 0.1): 81.0; (0.0, 0.3): 82.0; (0.1, 0.3): 83.7 (stage 28). "More like this" is
# pressed on the shown item closest to what the shopper wants, which is still not it: a
# strong pull drags the query to that item's other attributes; "less like this" says what is
# wrong. Stage 42 again on seed 1: that row is flat (78.3-80.7 over like 0-0.4, dislike
# 0.15-0.5), and a firmer "less like this" (0.5) lifts memory + clicks without passed-over
# items demoted from 62.3 to 69.0 (docs/conversation.md).
LIKE_WEIGHT = 0.1  # beta: weight of the mean vector of the liked items
DISLIKE_WEIGHT = 0.5  # gamma: weight of the mean vector of the disliked items
# Subtracted from the score of an item already seen. Scores are cosines in [-1, 1], so 2 puts
# every seen item below every unseen one (what the issue measured: hiding items already shown
# raised Hits@10 after turn 5 from 46 to 58 %); a smaller value only nudges them down.
SEEN_PENALTY = 2.0


def rocchio(query: np.ndarray, liked: np.ndarray | Sequence[np.ndarray] = (),
            disliked: np.ndarray | Sequence[np.ndarray] = (), *,
            like_weight: float = LIKE_WEIGHT, dislike_weight: float = DISLIKE_WEIGHT
            ) -> np.ndarray:
    """``query + like_weight * mean(liked) - dislike_weight * mean(disliked)``, L2-normalised.

    ``query`` is (D,), ``liked`` and ``disliked`` are (N, D) item vectors (N may be 0). Without
    clicks the query comes back unchanged, so a search without clicks is the plain search.
    A combination that cancels out (a zero vector) also returns the query: there is no
    direction to search in."""
    q = np.asarray(query, dtype=np.float32)
    liked = np.asarray(liked, dtype=np.float32).reshape(-1, q.shape[0])
    disliked = np.asarray(disliked, dtype=np.float32).reshape(-1, q.shape[0])
    if not len(liked) and not len(disliked):
        return q
    moved = q.astype(np.float64)
    if len(liked):
        moved = moved + like_weight * liked.mean(axis=0)
    if len(disliked):
        moved = moved - dislike_weight * disliked.mean(axis=0)
    norm = float(np.linalg.norm(moved))
    if norm < 1e-12:
        return q
    return (moved / norm).astype(np.float32)


def penalised(scores: np.ndarray, seen: np.ndarray, penalty: float = SEEN_PENALTY
              ) -> np.ndarray:
    """Scores to rank by: ``scores - penalty`` where the boolean mask ``seen`` is set (for a
    benchmark that ranks a whole gallery with numpy)."""
    return np.where(seen, scores - penalty, scores)


def demote(hits: Sequence[tuple[str, float]], seen: Collection[str],
           penalty: float = SEEN_PENALTY) -> list[tuple[str, float]]:
    """``hits`` (id, cosine), best first, reordered by ``cosine - penalty`` for the ids in
    ``seen``; the cosines themselves are kept (the page shows them). Ties keep their order."""
    return sorted(hits, key=lambda hit: -(hit[1] - (penalty if hit[0] in seen else 0.0)))


def search_depth(k: int, n_seen: int, n_excluded: int = 0) -> int:
    """How many candidates to take from the index so that demotion still fills ``k`` places.

    Why ``k + n_seen`` is enough: among that many best items at most ``n_seen`` are demoted,
    so at least ``k`` are not, and any item beyond them scores at most what those ``k`` score
    (a demoted one, less). ``n_excluded`` more leave room for items dropped outright (the
    catalog reference itself)."""
    return k + n_seen + n_excluded
