"""bench.multiturn end to end on the tiny hand-made dataset (shapes in colours), and its shopper.

The tiny dataset's items differ in type (shape) and colour, so every episode has exactly two
changes; the tiny random retriever makes the figures meaningless, but the whole path runs:
episodes, held-out sentences, memory, passed-over items, clicks, the combiner, JSON and plot.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import multiturn
from dataprep import write_metadata
from dataprep.feedback.attributes import HMItem
from dataprep.feedback.phrasing import Change
from tests.tiny_dataset import write_tiny_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = write_tiny_dataset(tmp_path_factory.mktemp("tiny_multiturn"))
    rows = []
    for path in sorted((root / "images").glob("*.png")):
        shape, colour, _ = path.stem.split("_")
        rows.append((path.stem, "shapes", path.stem, (shape, colour)))
    write_metadata(root / "metadata.csv", ("product_type", "colour"), rows)
    return root


def garment(product_type: str, **attributes: str) -> HMItem:
    return HMItem("x", "x", "full", product_type, "", attributes.get("colour"), "", "",
                  attributes)


def test_shopper_names_a_remaining_difference():
    ref = garment("Dress", colour="black", length="knee-length")
    tgt = garment("Dress", colour="navy", length="short", sleeve="long sleeves")
    assert multiturn.differences(ref, tgt) == ["length", "colour"]
    assert multiturn.agreement(ref, tgt) == 1  # the type
    rng = np.random.default_rng(0)
    said: set[str] = set()
    for _ in range(2):
        attribute, sentence = multiturn.next_request(ref, tgt, said, rng)
        assert attribute not in said and sentence
        said.add(attribute)
    assert said == {"colour", "length"}
    # both said and still different: said again
    assert multiturn.next_request(ref, tgt, said, rng)[0] in {"colour", "length"}
    # nothing left that both name: the target's attribute the reference does not name
    agreeing = garment("Dress", colour="navy", length="short")
    assert multiturn.next_request(agreeing, tgt, said, rng)[0] == "sleeve"
    # the feedback generator's rule: an ordered attribute is said relatively
    assert multiturn.change_for("length", ref, tgt, rng) == Change("length", "relative",
                                                                   "shorter")
    assert multiturn.change_for("type", ref, garment("Skirt"), rng).value == "skirt"


def test_memory_moves_away_from_earlier_references_until_the_shopper_clicks():
    from app.reranking import rocchio
    from model.conversation import away_from

    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(4, 8)).astype(np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    row, q, cfg = {"a": 0, "b": 1, "c": 2, "d": 3}, gallery[3], multiturn.MultiturnConfig()
    state = multiturn.State(multiturn.Episode("a", "d", 0), rng, "b", references=["a", "a", "b"])
    memory = multiturn.System("memory", None, gallery, str, memory=True)
    np.testing.assert_allclose(multiturn.steered(memory, state, q, row, cfg),
                               away_from(q, gallery[[0]]), atol=1e-6)  # "a" once
    np.testing.assert_array_equal(multiturn.steered(
        multiturn.System("no memory", None, gallery, str), state, q, row, cfg), q)
    state.more, state.less = [1], [2]
    clicks = multiturn.System("memory + clicks", None, gallery, str, clicks=True,
                              memory=True)
    np.testing.assert_allclose(multiturn.steered(clicks, state, q, row, cfg),
                               rocchio(q, gallery[[1]], gallery[[2]]), atol=1e-6)
    # the clicks are recorded for every system, but only a clicking one reads them
    np.testing.assert_allclose(multiturn.steered(memory, state, q, row, cfg),
                               away_from(q, gallery[[0]]), atol=1e-6)


def test_every_system_leaves_out_the_current_reference_and_memory_the_earlier_ones_too():
    state = multiturn.State(multiturn.Episode("a", "d", 0), np.random.default_rng(0), "c",
                            references=["a", "b", "a", "c"])
    plain = multiturn.System("no memory", None, np.zeros((4, 8)), str)
    memory = multiturn.System("memory", None, np.zeros((4, 8)), str, memory=True)
    assert multiturn.left_out(plain, state) == ["c"]
    assert multiturn.left_out(memory, state) == ["a", "b", "c"]


@pytest.mark.slow
def test_multiturn_bench_runs_on_the_tiny_dataset(tiny_data, tiny_checkpoint, tmp_path):
    report = multiturn.main([
        "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_data),
        "--images", str(tiny_data / "images"), "--articles", "", "--episodes", "12", "--turns", "3",
        "--cache-dir", "", "--combiner-datasets", str(tiny_data), "--combiner-epochs", "1",
        "--slot-sentences", "20", "--out-dir", str(tmp_path)])
    path = tmp_path / "multiturn" / f"{report['fingerprint']}.json"
    saved = json.loads(path.read_text())
    assert path.with_suffix(".png").stat().st_size > 0
    assert set(saved["results"]) == set(multiturn.SYSTEMS)
    assert saved["episodes"] == 12 and saved["changes"] == {"2": 12}
    for r in saved["results"].values():
        hits = r["hits@10"]
        assert len(hits) == 3
        assert all(0 <= a <= b <= 100 for a, b in zip(hits, hits[1:], strict=False))
    # turn 1 is the same query with and without memory (one turn == encode_query)
    results = saved["results"]
    assert results["memory"]["hits@10"][0] == results["no memory"]["hits@10"][0]
    assert saved["combiner_training"]["steps"] > 0
    assert set(saved["slot_accuracy"]) == {"train", "heldout"}
    assert saved["command"].startswith("python -m bench.multiturn")
