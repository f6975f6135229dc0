"""Shapes and invariants of the FashionVLP network, loss and checkpoints (tiny random model)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model import CheckpointError, ModelConfig, build_retriever, load_retriever
from model.checkpoint import fingerprint, read_checkpoint
from model.loss import BatchClassificationLoss, kind_loss
from model.network import pooling_matrix
from model.retriever import stored_as, with_query_side, with_residual_paths
from tests.tiny_dataset import draw


@pytest.fixture(scope="module")
def tiny():
    return build_retriever(ModelConfig.tiny(), seed=0)


def test_encode_api_shapes_and_norms(tiny):
    images = [draw("red", "square"), draw("blue", "circle", size=80)]
    q = tiny.encode_queries(images, ["is blue", "is red and has long sleeves"])
    t = tiny.encode_targets(images)
    assert q.shape == t.shape == (2, tiny.dim) and q.dtype == t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(tiny.encode_query(images[0], "is blue"), q[0], atol=1e-5)
    assert tiny.encode_targets([]).shape == (0, tiny.dim)


def test_image_tokens_shapes(tiny):
    x = torch.stack([tiny.preprocess(draw("red", "square"))])
    whole, crop = tiny.encoder(x)
    grid = tiny.cfg.image_size // 32
    assert whole.shape == (1, grid * grid, tiny.encoder.channels)
    assert crop.shape == (1, tiny.cfg.crop_grid ** 2, tiny.encoder.channels)
    tokens = tiny.net.tokens(whole, crop)
    hidden = tiny.net.reference.text.config.hidden_size
    assert tokens["landmark"].shape == (1, tiny.cfg.num_landmarks, hidden)
    assert tokens["landmark_pos"].shape == tokens["landmark"].shape


def test_padding_does_not_change_the_query(tiny):
    """Attention must ignore padding: a text alone and padded in a longer batch agree."""
    image = draw("green", "circle")
    alone = tiny.encode_queries([image], ["is red"])[0]
    padded = tiny.encode_queries([image, image],
                                 ["is red", "is a much longer caption with many extra words"])[0]
    np.testing.assert_allclose(alone, padded, atol=1e-5)


def test_text_and_image_both_matter(tiny):
    image = draw("green", "circle")
    a = tiny.encode_query(image, "is red")
    assert not np.allclose(a, tiny.encode_query(image, "is blue"), atol=1e-4)
    assert not np.allclose(a, tiny.encode_query(draw("black", "square"), "is red"), atol=1e-4)


def test_long_text_is_truncated_not_an_error(tiny):
    q = tiny.encode_query(draw("red", "square"), "much longer " * 500)
    assert q.shape == (tiny.dim,)


def test_loss_prefers_matching_pairs_and_ignores_duplicate_targets():
    loss = BatchClassificationLoss(init_scale=10.0)
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    aligned = loss(f, f)
    shuffled = loss(f, f[[1, 2, 3, 0]])
    assert aligned < shuffled
    # Queries 0 and 1 share a target: the copy must not count as a negative for either.
    tar = f.clone()
    tar[1] = tar[0]
    ids = torch.tensor([7, 7, 8, 9])
    logits = loss.get_logits(f, tar, ids)
    assert logits[0, 1] < -1e30 and logits[1, 0] < -1e30 and logits[0, 0] > -1e30
    assert torch.isfinite(loss(f, tar, ids))


def test_extra_negative_targets_count_only_as_negatives():
    loss = BatchClassificationLoss(init_scale=10.0)
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    far = -f[:2]  # two extra targets, each far from every query
    near = f[:2] + 0.05 * torch.randn(2, 8)  # copies of queries 0 and 1's targets, nearly
    ids = torch.tensor([0, 1, 2, 3, 4, 5])
    assert loss(f, torch.cat([f, far]), ids) < loss(f, torch.cat([f, near]), ids)
    # An extra row that *is* a query's target is a duplicate, not a negative, for that query.
    logits = loss.get_logits(f, torch.cat([f, f[:1]]), torch.tensor([0, 1, 2, 3, 0]))
    assert logits.shape == (4, 5) and logits[0, 4] < -1e30 and logits[1, 4] > -1e30
    kinds = (torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1]))
    assert torch.isfinite(loss(f, torch.cat([f, near]), ids, kinds, kind_weight=0.5))


def test_save_load_round_trip_is_exact_in_float32(tiny, tmp_path):
    tiny.save(tmp_path / "ck")
    again = load_retriever(tmp_path / "ck", engine="eager")  # the weights, bit for bit (the
    # faster engines are compared with eager within a tolerance in test_engines.py)
    assert again.fingerprint == tiny.fingerprint
    image = draw("yellow", "triangle")
    np.testing.assert_array_equal(again.encode_query(image, "is red"),
                                  tiny.encode_query(image, "is red"))
    np.testing.assert_array_equal(again.encode_targets([image]), tiny.encode_targets([image]))


def test_saved_weights_are_readable_by_other_users(tiny, tmp_path):
    tiny.save(tmp_path / "ck")  # safetensors alone writes 0600: an app container could not read it
    assert (tmp_path / "ck" / "weights.safetensors").stat().st_mode & 0o777 == 0o644


def test_float16_checkpoint_is_close_and_smaller(tmp_path):
    r32 = build_retriever(ModelConfig.tiny(), seed=1)
    cfg16 = ModelConfig.tiny()
    cfg16.save_dtype = "float16"
    r16 = build_retriever(cfg16, seed=1)
    r32.save(tmp_path / "a")
    r16.save(tmp_path / "b")
    size = lambda d: (d / "weights.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "b") < 0.6 * size(tmp_path / "a")
    image = draw("red", "circle")
    np.testing.assert_allclose(load_retriever(tmp_path / "b").encode_query(image, "is blue"),
                               r16.encode_query(image, "is blue"), atol=5e-3)


def test_int8_checkpoint_is_close_smaller_and_loads_as_saved(tmp_path):
    cfg8 = ModelConfig.tiny()
    cfg8.save_dtype = "int8"
    r16, r8 = build_retriever(ModelConfig.tiny(), seed=1), build_retriever(cfg8, seed=1)
    r16.save(tmp_path / "a")
    r8.save(tmp_path / "b")
    size = lambda d: (d / "weights.safetensors").stat().st_size  # noqa: E731
    assert size(tmp_path / "b") < 0.45 * size(tmp_path / "a")  # float32 -> mostly int8
    loaded = load_retriever(tmp_path / "b", engine="eager")
    assert loaded.fingerprint == r8.fingerprint
    assert loaded.trained_state().keys() == r8.trained_state().keys()  # saved again: the same
    image = draw("red", "circle")
    np.testing.assert_allclose(loaded.encode_query(image, "is blue"),
                               r16.encode_query(image, "is blue"), atol=2e-2)
    matrices = [v for v in r8.trained_state().values() if v.dtype == torch.int8 and v.any()]
    assert matrices and all(v.abs().max() == 127 for v in matrices)  # each uses its range


def test_a_model_stored_as_int8_in_memory_is_the_one_its_checkpoint_loads(tmp_path):
    """What a head is trained on before it is attached to a model stored in int8
    (model.kind_head --save-dtype): the weights of that checkpoint, not the ones before it."""
    r = build_retriever(ModelConfig.tiny(), seed=1)
    eight = stored_as(r, "int8")
    assert eight.cfg.save_dtype == "int8" and r.cfg.save_dtype == "float32"
    loaded = load_retriever(eight.save(tmp_path / "ck"), engine="eager")
    image = draw("red", "circle")
    assert np.array_equal(eight.encode_query(image, "is blue"),
                          loaded.encode_query(image, "is blue"))
    assert not np.array_equal(eight.encode_query(image, "is blue"),
                              r.encode_query(image, "is blue"))  # rounded, not the float32


def test_unknown_save_dtype_is_refused(tmp_path):
    cfg = ModelConfig.tiny()
    cfg.save_dtype = "int4"
    with pytest.raises(ValueError, match="save_dtype"):
        build_retriever(cfg, seed=1).save(tmp_path / "c")


def test_fingerprint_follows_the_weights(tmp_path):
    a = build_retriever(ModelConfig.tiny(), seed=0)
    b = build_retriever(ModelConfig.tiny(), seed=1)
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == build_retriever(ModelConfig.tiny(), seed=0).fingerprint


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_retriever(tmp_path / "nothing-here")


def test_incomplete_or_edited_checkpoint_is_refused(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    tiny.save(tmp_path / "ck")
    weights = tmp_path / "ck" / "weights.safetensors"
    state = load_file(str(weights))
    dropped = dict(list(state.items())[1:])
    save_file(dropped, str(weights))
    with pytest.raises(CheckpointError, match="1 missing"):
        load_retriever(tmp_path / "ck")
    state[next(iter(state))] = state[next(iter(state))] + 1
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="fingerprint"):
        load_retriever(tmp_path / "ck")


def test_kind_loss_ranks_the_reference_kind_above_other_kinds():
    # Query 0's reference is kind 0; targets 0 and 1 are kind 0, targets 2 and 3 kind 1.
    ref_kinds, tar_kinds = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 1, 1])
    kind_first = torch.tensor([[5.0, 4.0, 0.0, 0.0], [4.0, 5.0, 0.0, 0.0],
                               [0.0, 0.0, 5.0, 4.0], [0.0, 0.0, 4.0, 5.0]])
    other_first = torch.tensor([[5.0, 0.0, 4.0, 4.0], [0.0, 5.0, 4.0, 4.0],
                                [4.0, 4.0, 5.0, 0.0], [4.0, 4.0, 0.0, 5.0]])
    assert kind_loss(kind_first, ref_kinds, tar_kinds) < kind_loss(other_first, ref_kinds,
                                                                    tar_kinds)
    # All of one kind: nothing to rank, whatever the scores.
    same = torch.zeros(4, dtype=torch.long)
    assert kind_loss(other_first, same, same).abs() < 1e-6
    # The own target is left out: a query whose target already dominates is still pushed to
    # rank its reference's kind above other kinds in the rest of the list.
    target_first = kind_first.clone().fill_diagonal_(50.0)
    target_first_other_next = other_first.clone().fill_diagonal_(50.0)
    assert (kind_loss(target_first_other_next, ref_kinds, tar_kinds)
            > kind_loss(target_first, ref_kinds, tar_kinds) + 1.0)
    # Duplicates of the own target are left out too (so here nothing is left to rank) ...
    dup_kinds = torch.tensor([0, 0, 1])
    assert kind_loss(torch.randn(3, 3), dup_kinds, dup_kinds, torch.tensor([7, 7, 8])) == 0
    # ... and the batch loss stays finite with duplicates masked, rankable rows or none.
    feats = torch.nn.functional.normalize(torch.randn(6, 8), dim=-1).requires_grad_()
    for ids, kinds in (([7, 7, 8, 9, 9, 9], [0, 0, 1, 1, 0, 1]), ([7, 7, 8, 9, 9, 9], [0] * 6)):
        kinds = torch.tensor(kinds)
        batch_loss = BatchClassificationLoss()(feats, feats, torch.tensor(ids), (kinds, kinds), 1.0)
        batch_loss.backward()
        assert torch.isfinite(batch_loss) and torch.isfinite(feats.grad).all()
    loss = BatchClassificationLoss()
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    plain = loss(f, f)
    assert loss(f, f, None, (ref_kinds, tar_kinds), 0.5) > plain
    assert torch.equal(loss(f, f, None, (ref_kinds, tar_kinds), 0.0), plain)


@pytest.mark.parametrize("path", ["global_path", "sentence_path", "phrase_path"])
def test_residual_paths_start_at_zero_so_old_checkpoints_fine_tune_from_their_outputs(path):
    old = build_retriever(dataclasses.replace(ModelConfig.tiny(), global_path=False), seed=1)
    grown = with_residual_paths(old, dataclasses.replace(old.cfg, **{path: True}))
    assert getattr(grown.cfg, path) and getattr(grown.net, path) is not None
    whole = torch.randn(3, 9, old.encoder.channels)
    crop = torch.randn(3, 4, old.encoder.channels)
    texts = ["is red", "has long sleeves", "is shorter"]
    assert torch.equal(old.encode_reference_features(whole, crop, texts),
                       grown.encode_reference_features(whole, crop, texts))
    assert torch.equal(old.encode_target_features(whole, crop),
                       grown.encode_target_features(whole, crop))
    # Once trained, the path moves the query (the global path moves the target too).
    for p in getattr(grown.net, path).parameters():
        torch.nn.init.normal_(p)
    assert not torch.allclose(old.encode_reference_features(whole, crop, texts),
                              grown.encode_reference_features(whole, crop, texts))
    moves_target = not torch.allclose(old.encode_target_features(whole, crop),
                                      grown.encode_target_features(whole, crop))
    assert moves_target == (path == "global_path")


def test_sentence_path_follows_the_words_and_ignores_padding(tiny):
    """The same pooled image with other words moves the path's output, and a sentence is
    encoded the same alone as padded in a batch."""
    cfg = dataclasses.replace(tiny.cfg, sentence_path=True)
    r = with_residual_paths(tiny, cfg)
    r.net.eval()
    for p in r.net.sentence_path.parameters():
        torch.nn.init.normal_(p, std=0.1)
    tokens = r.tokenize(["is red", "has long sleeves"])
    sentence = r.net.reference.sentence(tokens["input_ids"], tokens["attention_mask"])
    whole = torch.randn(1, 9, r.encoder.channels).expand(2, -1, -1)
    out = r.net.sentence_path(whole, sentence)
    assert not torch.allclose(out[0], out[1])
    again = r.tokenize(["is red"])
    alone = r.net.reference.sentence(again["input_ids"], again["attention_mask"])
    assert torch.allclose(alone[0], sentence[0], atol=1e-5)  # padding does not leak in


def test_phrase_path_reads_a_frozen_text_model_and_trains_only_its_combiner(tiny, tmp_path):
    """The phrase path's encoder never trains and never drops out; its sentence embedding
    ignores padding; a checkpoint with the path round-trips its encodings."""
    r = with_residual_paths(tiny, dataclasses.replace(tiny.cfg, phrase_path=True))
    trainable = {n for n, p in r.net.named_parameters() if p in set(r.set_trainable())}
    assert not any(n.startswith("phrase_path.encoder.") for n in trainable)
    assert any(n.startswith("phrase_path.combiner.") for n in trainable)
    r.net.train()
    assert not r.net.phrase_path.encoder.training and r.net.phrase_path.combiner.training
    tokens = r.tokenize(["is lighter", "without the sleeves please"])
    both = r.net.phrase_path.embed(tokens["input_ids"], tokens["attention_mask"])
    alone = r.tokenize(["is lighter"])
    one = r.net.phrase_path.embed(alone["input_ids"], alone["attention_mask"])
    assert torch.allclose(one[0], both[0], atol=1e-5) and not torch.allclose(both[0], both[1])
    for p in r.net.phrase_path.combiner.parameters():
        torch.nn.init.normal_(p, std=0.1)
    r.invalidate_fingerprint()
    whole = torch.randn(2, 9, r.encoder.channels)
    crop = torch.randn(2, 4, r.encoder.channels)
    texts = ["is lighter", "without the sleeves"]
    r.net.eval()
    loaded = load_retriever(r.save(tmp_path / "ck"), engine="eager")
    torch.testing.assert_close(loaded.encode_reference_features(whole, crop, texts),
                               r.encode_reference_features(whole, crop, texts))


def test_a_config_of_the_removed_phrase_layers_loads_only_where_it_meant_all_layers():
    data = dataclasses.replace(ModelConfig.tiny(), phrase_path=True).to_dict()
    assert ModelConfig.from_dict({**data, "phrase_layers": None}) == ModelConfig.from_dict(data)
    with pytest.raises(ValueError, match="phrase_layers was removed .git tag phrase-layers"):
        ModelConfig.from_dict({**data, "phrase_layers": 2})


def test_a_config_of_the_removed_kind_path_loads_only_without_one():
    data = ModelConfig.tiny().to_dict()
    off = {**data, "kind_path": False, "kind_dim": 32, "kind_share": 0.2}
    assert ModelConfig.from_dict(off) == ModelConfig.from_dict(data)
    with pytest.raises(ValueError, match="kind_path was removed .git tag kind-path-groups"):
        ModelConfig.from_dict({**off, "kind_path": True})


def test_a_pretrained_phrase_encoder_is_loaded_from_its_package_not_stored():
    cfg = ModelConfig(phrase_path=True, sentence_path=True)
    r = build_retriever(cfg)
    stored = r.trained_state()
    assert not any(k.startswith("net.phrase_path.encoder.") for k in stored)
    path = sum(v.numel() for k, v in stored.items() if k.startswith("net.phrase_path."))
    assert 0 < path * 2 < 1_000_000  # the combiner alone, in float16 bytes
    assert len(r.net.phrase_path.encoder.encoder.layer) == 6  # every layer, not text_layers
    assert len(r.net.reference.text.encoder.layer) == cfg.text_layers


@pytest.mark.parametrize("field, legacy", [("global_path", False), ("sentence_hidden", 256),
                                           ("reference_grid", None)])
def test_checkpoint_from_before_a_field_loads_with_its_fingerprint(tmp_path, field, legacy):
    """A config.json written before ``field`` existed loads with the field at the value that
    reproduces its architecture (the sentence path was 256 wide), and keeps its id."""
    cfg = dataclasses.replace(ModelConfig.tiny(), global_path=False, sentence_path=True,
                              sentence_hidden=256)
    old = build_retriever(cfg, seed=2)
    old.save(tmp_path / "ck")
    config = tmp_path / "ck" / "config.json"
    record = json.loads(config.read_text())
    del record["model"][field]  # as written before the field existed
    config.write_text(json.dumps(record))
    loaded = load_retriever(tmp_path / "ck")
    assert getattr(loaded.cfg, field) == legacy and loaded.net.global_path is None
    assert loaded.fingerprint == old.fingerprint == record["fingerprint"]


@pytest.mark.parametrize("side, out", [(7, 3), (7, 2), (3, 2), (4, 2), (5, 1)])
def test_pooling_matrix_is_adaptive_average_pooling(side, out):
    grid = torch.randn(2, side * side, 5)
    want = torch.nn.functional.adaptive_avg_pool2d(
        grid.transpose(1, 2).reshape(2, 5, side, side), out).flatten(2).transpose(1, 2)
    assert torch.allclose(pooling_matrix(side, out) @ grid, want, atol=1e-6)


def test_reference_grid_pools_only_the_reference_sides_whole_image_tokens():
    """Same weights, a smaller grid: the query encoding changes, the target encoding does not;
    the backbone's own side is no pooling at all; a side beyond it is refused."""
    full = build_retriever(ModelConfig.tiny(), seed=8)  # tiny grid: 3x3
    pooled = with_query_side(full, 2, None)
    whole = torch.randn(2, 9, full.encoder.channels)
    crop = torch.randn(2, 4, full.encoder.channels)
    texts = ["is blue", "has long sleeves"]
    with torch.no_grad():
        assert torch.equal(pooled.net.encode_target(whole, crop),
                           full.net.encode_target(whole, crop))
    assert not torch.allclose(pooled.encode_reference_features(whole, crop, texts),
                              full.encode_reference_features(whole, crop, texts), atol=1e-4)
    same = with_query_side(full, 3, None)
    assert torch.equal(same.encode_reference_features(whole, crop, texts),
                       full.encode_reference_features(whole, crop, texts))
    assert pooled.trained_state().keys() == full.trained_state().keys()
    with pytest.raises(ValueError, match="reference_grid"):
        with_query_side(full, 4, None)


def test_fewer_text_layers_keep_the_lower_ones_and_every_target():
    full = build_retriever(ModelConfig.tiny(), seed=9)
    layers = len(full.net.reference.text.encoder.layer)
    short = with_query_side(full, None, layers - 1)
    assert short.cfg.text_layers == layers - 1
    assert len(short.net.reference.text.encoder.layer) == layers - 1
    kept, before = short.trained_state(), full.trained_state()
    assert set(before) - set(kept) == {k for k in before
                                       if k.startswith(f"net.reference.text.encoder.layer."
                                                       f"{layers - 1}.")}
    assert all(torch.equal(kept[k], before[k]) for k in kept)
    whole = torch.randn(2, 9, full.encoder.channels)
    crop = torch.randn(2, 4, full.encoder.channels)
    with torch.no_grad():
        assert torch.equal(short.net.encode_target(whole, crop),
                           full.net.encode_target(whole, crop))
    for bad in (0, layers + 1):
        with pytest.raises(ValueError, match="text_layers"):
            with_query_side(full, None, bad)


def test_sentence_path_width_is_hashed_only_while_a_path_of_that_width_is_on():
    on = dataclasses.replace(ModelConfig.tiny(), sentence_path=True, sentence_hidden=256)
    state = build_retriever(on, seed=5).trained_state()
    assert fingerprint(dataclasses.replace(on, sentence_hidden=8), state) != fingerprint(on, state)
    off = dataclasses.replace(on, sentence_path=False)
    assert fingerprint(off, state) == fingerprint(dataclasses.replace(off, sentence_hidden=8),
                                                  state)
    phrase = dataclasses.replace(off, phrase_path=True)  # the phrase path has that width too
    assert fingerprint(phrase, state) != fingerprint(dataclasses.replace(phrase,
                                                                         sentence_hidden=8), state)


def test_committed_demo_checkpoint_matches_its_fingerprint():
    """Guards the hash against new config fields: one that hashes although unused changes
    every existing checkpoint's id (and refuses to load it)."""
    cfg, state, record = read_checkpoint(Path(__file__).parents[1] / "checkpoints" / "demo")
    assert fingerprint(cfg, state) == record["fingerprint"]


def test_checkpoint_of_another_architecture_is_refused(tiny, tmp_path):
    tiny.save(tmp_path / "ck")
    config = tmp_path / "ck" / "config.json"
    record = json.loads(config.read_text())
    record["model"]["embed_dim"] = 48
    config.write_text(json.dumps(record))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_retriever(tmp_path / "ck")


def test_foreground_box_finds_the_garment():
    from model.image_features import foreground_boxes

    image = Image.new("RGB", (64, 64), (255, 255, 255))
    image.paste((200, 0, 0), (16, 8, 48, 56))
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    box = foreground_boxes(x, margin=0.0)[0].tolist()
    assert box == [16, 8, 48, 56]
    blank = torch.ones(1, 3, 64, 64)
    assert foreground_boxes(blank)[0].tolist() == [0, 0, 64, 64]


@pytest.mark.parametrize("aligned", [True, False])
def test_roi_align_equals_torchvision(aligned):
    """model.image_features.roi_align replaces torchvision's (whose import costs the app start
    a second): the same crops for boxes inside, across and outside the image."""
    from torchvision.ops import roi_align as torchvision_roi_align

    from model.image_features import roi_align

    g = torch.Generator().manual_seed(0)
    features = torch.randn(3, 5, 7, 7, generator=g)
    corners = torch.rand(40, 4, generator=g) * 260 - 18
    boxes = torch.stack([corners[:, [0, 2]].min(1).values, corners[:, [1, 3]].min(1).values,
                         corners[:, [0, 2]].max(1).values, corners[:, [1, 3]].max(1).values], 1)
    boxes[0] = torch.tensor([0.0, 0.0, 224.0, 224.0])
    rois = torch.cat([torch.randint(0, 3, (40, 1), generator=g).float(), boxes], dim=1)
    want = torchvision_roi_align(features, rois, output_size=3, spatial_scale=7 / 224,
                                 sampling_ratio=2, aligned=aligned)
    got = roi_align(features, rois, 3, 7 / 224, 2, aligned)
    assert got.shape == want.shape == (40, 5, 3, 3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_each_group_of_queries_is_scored_at_its_own_temperature():
    loss = BatchClassificationLoss(init_scale=10.0, groups=2)
    with torch.no_grad():
        loss.log_scale[1] = torch.log(torch.tensor(30.0))
    f = torch.nn.functional.normalize(torch.randn(4, 8), dim=-1)
    groups = torch.tensor([0, 1, 1, 0])
    logits = loss.get_logits(f, f, query_groups=groups)
    plain = f @ f.T
    assert torch.allclose(logits[[0, 3]], 10 * plain[[0, 3]], atol=1e-5)
    assert torch.allclose(logits[[1, 2]], 30 * plain[[1, 2]], atol=1e-4)
    assert loss.scales() == pytest.approx([10.0, 30.0])
    loss(f, f, query_groups=groups).backward()
    assert (loss.log_scale.grad != 0).all()  # both temperatures learn
    with pytest.raises(ValueError, match="query_groups"):
        loss(f, f)
