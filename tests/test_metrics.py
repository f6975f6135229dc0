"""The recall computation on a case worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model.metrics import retrieval_metrics, summarise, top_k

# Gallery on the unit circle; the ranking of each query is easy to read off.
GALLERY = np.array([[1, 0], [0, 1], [0.6, 0.8], [-1, 0]], dtype=np.float32)
IDS = ["g0", "g1", "g2", "g3"]
QUERIES = np.array([[1, 0], [0, 1], [-1, 0]], dtype=np.float32)
# q0 ranks g0, g2, g1, g3 (target g2 at rank 2); q1 ranks g1, g2, g0, g3 (target g1 at rank 1);
# q2 ranks g3, g1, g2, g0 (target g0 at rank 4).
TARGETS = ["g2", "g1", "g0"]


def test_top_k_order():
    assert top_k(QUERIES, GALLERY, 4).tolist() == [[0, 2, 1, 3], [1, 2, 0, 3], [3, 1, 2, 0]]
    assert top_k(QUERIES, GALLERY, 10).shape == (3, 4)  # k larger than the gallery


def test_recall_at_k_by_hand():
    m = retrieval_metrics(QUERIES, GALLERY, IDS, TARGETS, ks=(1, 2, 3, 4))
    assert m["R@1"] == pytest.approx(100 / 3)
    assert m["R@2"] == pytest.approx(200 / 3)
    assert m["R@3"] == pytest.approx(200 / 3)
    assert m["R@4"] == pytest.approx(100.0)


def test_attribute_match_by_hand():
    relevant = [["g2", "g0"], ["g1"], ["g0"]]
    m = retrieval_metrics(QUERIES, GALLERY, IDS, TARGETS, relevant, ks=(1,), precision_k=2)
    # top-2: q0 [g0, g2] -> 2 relevant; q1 [g1, g2] -> 1; q2 [g3, g1] -> 0.
    assert m["hit@2"] == pytest.approx(200 / 3)
    assert m["P@2"] == pytest.approx(100 * (1 + 0.5 + 0) / 3)


def test_target_outside_the_gallery_is_an_error_not_a_miss():
    with pytest.raises(ValueError, match="not in the gallery"):
        retrieval_metrics(QUERIES, GALLERY, IDS, ["g2", "g1", "nope"])
    with pytest.raises(ValueError, match="not unique"):
        retrieval_metrics(QUERIES, GALLERY, ["a", "a", "b", "c"], ["a", "a", "b"])


def test_summary_is_the_unweighted_category_mean():
    avg = summarise({"dress": {"R@10": 20.0, "R@50": 40.0}, "shirt": {"R@10": 30.0,
                                                                     "R@50": 60.0}})
    assert avg == {"R@10": 25.0, "R@50": 50.0, "mean": 37.5}


def test_kept_and_tag_groups_over_one_gallery():
    """kept@k counts the reference's kind in its top k, the reference itself left out; tag
    groups pool the queries that carry any of their tags."""
    import numpy as np

    from dataprep import FashionIQSplit, Triplet
    from model.evaluate import evaluate_kept, evaluate_tags

    vec = {"a1": [1, 0], "a2": [0.9, 0.1], "b1": [0, 1], "b2": [0.1, 0.9]}
    kinds = {"a1": "dress", "a2": "dress", "b1": "shirt", "b2": "shirt"}
    split = FashionIQSplit("val", [
        Triplet("a1", "a2", ["is the same"], "x", ["a2"], ("colourway", "colour")),
        Triplet("b1", "b2", ["is the same"], "y", ["b2"], ("attribute", "sleeve")),
    ], {"x": ["a1", "a2"], "y": ["b1", "b2"]}, {})

    def unit(ids):
        v = np.array([vec[i] for i in ids], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    queries = lambda refs, texts: unit(refs)  # noqa: E731 -- the reference image alone
    kept = evaluate_kept(split, queries, unit, kinds, k=1)
    assert kept == {"kept@1": 100.0, "queries": 2}
    swapped = {"a1": "dress", "a2": "shirt", "b1": "shirt", "b2": "dress"}
    assert evaluate_kept(split, queries, unit, swapped, k=1)["kept@1"] == 0.0
    groups = evaluate_tags(split, queries, unit, {"colourway": ["colourway"],
                                                  "sleeve": ["sleeve"], "hood": ["hood"]})
    assert set(groups) == {"colourway", "sleeve"}
    assert groups["colourway"]["queries"] == 1 and groups["colourway"]["R@10"] == 100.0


def test_remembered_encoders_encode_each_query_and_item_once():
    """Validation and bench.accuracy score the same queries and gallery for R@K, kept@10 and
    the tag groups: the second ranking must reuse the vectors, unchanged."""
    from model.evaluate import remembered_encoders

    calls = {"queries": [], "gallery": []}

    def queries(refs, texts):
        calls["queries"].append(list(refs))
        return np.array([[len(r), len(t)] for r, t in zip(refs, texts, strict=True)],
                        dtype=np.float32)

    def gallery(ids):
        calls["gallery"].append(list(ids))
        return np.array([[len(i), 1.0] for i in ids], dtype=np.float32)

    q, g = remembered_encoders(queries, gallery)
    first = q(["a", "bb"], ["x", "yy"]), g(["a", "bb"])
    again = q(["bb", "a", "ccc"], ["yy", "x", "z"]), g(["bb", "ccc", "ccc"])
    assert calls == {"queries": [["a", "bb"], ["ccc"]], "gallery": [["a", "bb"], ["ccc"]]}
    np.testing.assert_array_equal(again[0][:2], first[0][::-1])
    np.testing.assert_array_equal(again[1], [[2, 1], [3, 1], [3, 1]])
