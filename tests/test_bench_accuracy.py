"""bench.accuracy end to end on the tiny hand-made dataset: the model and all four baselines go
through the shared recall path, baselines train a few steps, and the JSON report is written."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from bench import accuracy
from bench.baselines import (
    BASELINES,
    BaselineConfig,
    build_baseline,
    caption_variants,
    train_baseline,
    triplet_tensors,
)
from bench.datasets import read_splits, val_score
from dataprep import Triplet
from tests.tiny_dataset import write_tiny_dataset


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def test_caption_variants_are_the_four_training_texts():
    assert caption_variants(["is red.", "has stripes"]) == [
        "Is red and has stripes", "Has stripes and is red", "Is red", "Has stripes"]
    assert caption_variants(["only one"]) == ["Only one"] * 4


@pytest.mark.slow
def test_accuracy_script_writes_every_method_and_margins(tiny_data, tiny_checkpoint, tmp_path):
    report = accuracy.main([
        "--checkpoint", str(tiny_checkpoint), "--datasets", str(tiny_data), "--cache-dir", "",
        "--text-model", "tiny-bert", "--epochs", "2", "--batch-size", "8",
        "--workers", "0", "--out-dir", str(tmp_path)])
    written = tmp_path / "accuracy" / f"{report['fingerprint']}.json"  # by checkpoint
    saved = json.loads(written.read_text())
    methods = saved["results"][tiny_data.name]
    assert set(methods) == {accuracy.MODEL, *BASELINES}
    for m in methods.values():
        assert 0 <= m["average"]["R@10"] <= m["average"]["R@50"] <= 100
    assert set(saved["margins"][tiny_data.name]) == set(BASELINES)
    assert saved["machine"]["commit"] and saved["machine"]["date"]
    assert saved["command"].startswith("python -m bench.accuracy")
    trained = saved["baseline_training"]
    assert trained["combiner"]["steps"] > 0 and not trained["image only"]["trainable"]
    assert report["fashionvlp_beats_every_baseline_on_every_metric"] in (True, False)

    # A model-only run compares against the saved baseline rows, and says when it has none.
    common = ["--checkpoint", str(tiny_checkpoint), "--datasets", str(tiny_data),
              "--cache-dir", "", "--text-model", "tiny-bert", "--workers", "0", "--baselines"]
    alone = accuracy.main([*common, "--out-dir", str(tmp_path / "alone")])
    assert alone["fashionvlp_beats_every_baseline_on_every_metric"] is None
    kept = tmp_path / "kept.json"
    written.rename(kept)
    joined = accuracy.main([*common, "--baseline-rows", str(kept), "--out-dir", str(tmp_path)])
    for name in BASELINES:
        assert joined["results"][tiny_data.name][name] == methods[name]
        assert joined["baseline_training"][name]["reused_from"] == str(kept)
    assert joined["margins"] == saved["margins"]
    assert joined["fashionvlp_beats_every_baseline_on_every_metric"] in (True, False)
    with pytest.raises(ValueError, match="not comparable"):
        accuracy.main([*common, "--baseline-rows", str(kept), "--max-queries", "2",
                       "--out-dir", str(tmp_path / "capped")])


def test_combiner_learns_a_colour_change():
    """A few hundred steps on a synthetic 'make it colour c' task beat the image-only ranking."""
    rng = np.random.default_rng(0)
    colours, shapes = 6, 4
    colour_vec = rng.standard_normal((colours, 16)).astype(np.float32)
    shape_vec = rng.standard_normal((shapes, 16)).astype(np.float32)
    base = {(c, s): torch.from_numpy(colour_vec[c] + shape_vec[s])
            for c in range(colours) for s in range(shapes)}
    ids = {k: f"{k[0]}_{k[1]}" for k in base}
    rows = {ids[k]: r for r, k in enumerate(base)}
    images = torch.stack(list(base.values()))
    triplets = [Triplet(ids[(c, s)], ids[(t, s)], [f"make it colour {t}", f"colour {t}"], "x",
                        None) for (c, s) in base for t in range(colours) if t != c]
    text_vecs = {}

    def embed(sentences):
        out = []
        for s in sentences:
            if s not in text_vecs:
                text_vecs[s] = torch.zeros(8)
                text_vecs[s][int(s.split()[-1])] = 1.0
            out.append(text_vecs[s])
        return torch.stack(out)

    data = triplet_tensors(triplets, rows, images, embed)
    cfg = BaselineConfig(embed_dim=16, proj_dim=32, hidden_dim=64, dropout=0.0, batch_size=16,
                         epochs=40, lr=3e-3)
    model = build_baseline("combiner", images.shape[1], 8, cfg)
    stats = train_baseline(model, data, cfg)
    with torch.no_grad():
        q = model.encode_query(images[data.ref], data.text_table[data.texts[:, 0]])
        g = model.encode_target(images)
    top1 = (q @ g.T).argmax(1)
    assert stats["steps"] > 0
    assert (top1 == data.tar).float().mean() > 0.8


def test_listed_negatives_join_the_batch_as_extra_targets():
    """With listed_negatives a batch's loss also scores up to that many of each triplet's
    listed hard negatives (those the image rows know), after the batch's own targets; without,
    only the batch's targets."""
    from bench.baselines import _step_loss

    rows = {f"i{k}": k for k in range(6)}
    triplets = [Triplet("i0", "i1", ["a", "b"], "x", negatives=("i2", "i3", "gone")),
                Triplet("i1", "i4", ["c", "d"], "x", negatives=("i5",)),
                Triplet("i3", "i0", ["e", "f"], "x")]
    images = torch.randn(6, 8)
    data = triplet_tensors(triplets, rows, images, lambda s: torch.randn(len(s), 4),
                           negatives=True)
    assert data.negatives.tolist() == [[2, 3], [5, -1], [-1, -1]]
    model = build_baseline("combiner", 8, 4, BaselineConfig(embed_dim=4, proj_dim=4,
                                                             hidden_dim=8))
    seen = []

    def loss(f_ref, f_tar, target_ids):
        seen.append(target_ids.tolist())
        return f_ref.sum()

    idx = torch.tensor([0, 1, 2])
    _step_loss(model, loss, data, idx, np.random.default_rng(0))
    _step_loss(model, loss, data, idx, np.random.default_rng(0), negatives=1)
    _step_loss(model, loss, data, idx, np.random.default_rng(0), negatives=5)
    assert seen[0] == [1, 4, 0]
    assert seen[1][:3] == [1, 4, 0] and seen[1][3] in (2, 3) and seen[1][4:] == [5]
    assert sorted(seen[2][3:]) == [2, 3, 5]


def test_a_shared_score_of_100_is_a_tie_not_a_win():
    avg = {"FashionVLP": {"R@10": 100.0, "R@50": 100.0}, "combiner": {"R@10": 98.9, "R@50": 100.0},
           "image only": {"R@10": 31.1, "R@50": 65.6}}
    results = {"demo": {name: {"average": a} for name, a in avg.items()}}
    assert accuracy.ceiling_ties(results) == [["demo", "combiner", "R@50"]]
    gaps = accuracy.margins(results)["demo"]
    assert gaps["combiner"]["R@50"] == 0 and gaps["combiner"]["R@10"] == pytest.approx(1.1)


def test_baseline_epoch_selection_skips_a_training_only_dataset(tiny_data):
    """A training-only folder (no val triplets, as the products training requests) trains the
    baselines and is not scored, as model.train's validation leaves it out."""
    [scored] = read_splits([str(tiny_data)])
    training_only = dataclasses.replace(scored, val=dataclasses.replace(scored.val, triplets=[]))
    rng = np.random.default_rng(0)
    vectors = {i: rng.normal(size=8) for i in scored.val.image_paths}
    encoders = (lambda refs, texts: np.stack([vectors[r] for r in refs]),
                lambda ids: np.stack([vectors[i] for i in ids]))
    alone = val_score([scored], encoders, None)
    assert val_score([scored, training_only], encoders, None) == alone
    with pytest.raises(ValueError, match="no dataset has validation triplets"):
        val_score([training_only], encoders, None)
