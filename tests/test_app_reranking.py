"""Ranking beside the words: Rocchio over clicked items' vectors, items already seen lower."""

from __future__ import annotations

import numpy as np
import pytest

from app.reranking import (
    DISLIKE_WEIGHT,
    LIKE_WEIGHT,
    SEEN_PENALTY,
    demote,
    penalised,
    rocchio,
    search_depth,
)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_without_clicks_the_query_is_unchanged():
    q = unit(1, 2, 3)
    assert np.array_equal(rocchio(q), q)
    assert np.array_equal(rocchio(q, np.zeros((0, 3)), np.zeros((0, 3))), q)


def test_the_moved_query_is_the_rocchio_formula_renormalised():
    q, liked, disliked = unit(1, 0, 0), np.stack([unit(0, 1, 0), unit(0, 0, 1)]), [unit(1, 1, 0)]
    expected = q + LIKE_WEIGHT * liked.mean(0) - DISLIKE_WEIGHT * disliked[0]
    moved = rocchio(q, liked, disliked)
    assert moved.dtype == np.float32 and np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(moved, expected / np.linalg.norm(expected), atol=1e-6)


def test_a_like_pulls_towards_the_item_and_a_dislike_pushes_away():
    rng = np.random.default_rng(0)
    q, item = unit(*rng.normal(size=16)), unit(*rng.normal(size=16))
    assert rocchio(q, [item]) @ item > q @ item
    assert rocchio(q, disliked=[item]) @ item < q @ item
    stronger = rocchio(q, [item], like_weight=2 * LIKE_WEIGHT)
    assert stronger @ item > rocchio(q, [item]) @ item


def test_a_combination_that_cancels_out_keeps_the_query():
    q = unit(1, 0)
    assert np.array_equal(rocchio(q, disliked=[q], dislike_weight=1.0), q)


def test_seen_items_go_below_every_unseen_one_and_keep_their_scores():
    hits = [("a", 0.9), ("b", 0.8), ("c", 0.1), ("d", -0.95)]
    assert demote(hits, {"a", "b"}) == [("c", 0.1), ("d", -0.95), ("a", 0.9), ("b", 0.8)]
    assert demote(hits, set()) == hits


def test_a_small_penalty_only_nudges():
    hits = [("a", 0.9), ("b", 0.8), ("c", 0.75)]
    assert [i for i, _ in demote(hits, {"a"}, penalty=0.12)] == ["b", "a", "c"]
    scores, seen = np.array([0.9, 0.8, 0.75]), np.array([True, False, False])
    np.testing.assert_allclose(penalised(scores, seen, 0.12), [0.78, 0.8, 0.75])
    assert np.argmax(penalised(scores, seen)) == 1 and SEEN_PENALTY >= 2


def test_search_depth_leaves_room_for_every_demoted_and_excluded_item():
    rng = np.random.default_rng(1)
    scores = rng.uniform(-1, 1, size=50)
    ids = [f"i{n}" for n in range(50)]
    ranked = sorted(zip(ids, scores, strict=True), key=lambda h: -h[1])
    seen = set(rng.choice(ids, size=12, replace=False))
    k = 5
    full = demote(ranked, seen)[:k]
    assert demote(ranked[:search_depth(k, len(seen))], seen)[:k] == full
    assert search_depth(k, 12, 1) == 18
