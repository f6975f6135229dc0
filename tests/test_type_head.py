"""A checkpoint with a type head (model.type_head): one inner product adds the change of product
type the words ask for, nothing where they leave the photo's type as it is; the head sits beside
a kind head, survives a save and the ONNX export, training leaves it alone, and the command
trains it on a feedback folder's types and keeps every other weight bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import load_retriever
from model.kind_head import (
    COLOUR_COLUMN,
    TYPE_COLUMN,
    attribute_value,
    read_kind_data,
    with_kind_head,
)
from model.network import ChangeHead, KindHead
from model.type_head import main as type_main
from model.type_head import type_part, with_type_head
from tests.test_combiner_head import IMAGES, TEXTS, phrased, saved_and_exported  # noqa: F401
from tests.test_feedback_bench import feedback_data  # noqa: F401 (a fixture)
from tests.test_kind_head import KINDS, kind_head_of, kind_vectors

TYPES = ["dress", "shirt", "skirt", "sneakers", "trousers"]


def type_head_of(r, seed: int = 0) -> ChangeHead:
    torch.manual_seed(seed)
    head = ChangeHead(r.encoder.channels - r.encoder.net.side_channels,
                      r.net.phrase_path.encoder.config.hidden_size, len(TYPES), hidden=8)
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.6)  # confident enough to move a ranking
    return head.eval()


def test_the_type_head_adds_the_change_the_words_ask_for(phrased):  # noqa: F811
    """The score adds w (1 - BC(asked, reference)) (BC(asked, item) - BC(reference, item)),
    beside a kind head's term: the push scaled by how far the words move the type."""
    kind, wk, wt = kind_head_of(phrased), 0.3, 0.1
    head = type_head_of(phrased)
    both = with_type_head(with_kind_head(phrased, kind, KINDS, wk), head, TYPES, wt)
    assert both.dim == phrased.dim + len(KINDS) + len(TYPES)
    assert both.meta["type_head"]["types"] == TYPES and both.cfg.type_hidden == 8
    q, t = both.encode_queries(IMAGES, TEXTS), both.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    kind_asked, kind_item = kind_vectors(phrased, kind)
    asked, item = kind_vectors(phrased, head)
    moved = 1 - (asked * item).sum(axis=1, keepdims=True)  # each query's reference: its row
    pushed = moved * (asked - item)
    change = pushed @ item.T
    # the query made unit again: a scale per query, sqrt(1 + wk + wt |pushed|^2) over the
    # unit parts' sqrt(1 + wk + wt)
    scale = np.sqrt((1 + wk + wt * (pushed ** 2).sum(axis=1, keepdims=True)) / (1 + wk + wt))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(q @ t.T * scale, (q0 @ t0.T + wk * kind_asked @ kind_item.T
                                                 + wt * change) / (1 + wk + wt), atol=1e-5)
    assert np.abs(change).max() > 1e-3  # the random head does move the ranking


def test_words_that_leave_the_type_as_it_is_add_nothing(phrased):  # noqa: F811
    """A query side that hears the photo as the item side does and ignores the words: every
    item's score is the checkpoint's own (scaled by 1 / sqrt(1 + w): the target's type part
    takes its share of the unit target, the query's is 0), whatever the words say."""
    head, w = type_head_of(phrased), 0.5
    image_dim = head.image_dim
    with torch.no_grad():
        head.asked[0].weight.zero_()
        head.asked[0].weight[:, :image_dim] = head.item[0].weight
        head.asked[0].bias.copy_(head.item[0].bias)
        head.asked[3].load_state_dict(head.item[3].state_dict())
    headed = with_type_head(phrased, head, TYPES, w)
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    np.testing.assert_allclose(q @ t.T, q0 @ t0.T / (1 + w) ** 0.5, atol=1e-5)


def test_a_type_headed_checkpoint_round_trips_and_exports(phrased, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    both = with_type_head(with_kind_head(phrased, kind_head_of(phrased), KINDS, 0.3),
                          type_head_of(phrased), TYPES, 0.1)
    eager = saved_and_exported(both, tmp_path / "ck")
    assert eager.cfg.type_head == len(TYPES) and eager.meta["type_head"]["types"] == TYPES


def test_training_leaves_the_type_head_as_attached(phrased):  # noqa: F811
    headed = with_type_head(phrased, type_head_of(phrased), TYPES, 0.1)
    trained = set(headed.set_trainable())
    assert not any(p in trained for p in headed.net.type_head.parameters())
    headed.net.train()
    assert not headed.net.type_head.training


def test_the_type_part_of_a_two_part_head_is_its_last_softmax_read_as_a_change():
    torch.manual_seed(0)
    head = KindHead(6, 4, [3, 5], hidden=7).eval()
    part = type_part(head)
    pooled, text = torch.nn.functional.normalize(torch.randn(2, 6), dim=-1), torch.randn(2, 4)
    with torch.no_grad():
        item = head.item_logits(pooled)[:, 3:].softmax(-1).sqrt()
        asked = head.asked_logits(pooled, text)[:, 3:].softmax(-1).sqrt()
        torch.testing.assert_close(part.target(pooled), item)
        moved = 1 - (asked * item).sum(dim=-1, keepdim=True)
        torch.testing.assert_close(part.query(pooled, text), moved * (asked - item))


def test_the_command_attaches_a_head_of_the_folders_types_and_keeps_the_rest(
        feedback_data, phrased, tmp_path):  # noqa: F811
    kinded = with_kind_head(phrased, kind_head_of(phrased), KINDS, 0.3)
    ck = kinded.save(tmp_path / "kinded")
    type_main(["--checkpoint", str(ck), "--datasets", feedback_data, "--cache-dir", "",
               "--weight", "0.2", "--hidden", "6", "--item-epochs", "2", "--query-epochs", "2",
               "--threads", "1", "--out", str(tmp_path / "typed")])
    typed = load_retriever(tmp_path / "typed", engine="eager")
    types = read_kind_data([feedback_data], [TYPE_COLUMN]).attributes[TYPE_COLUMN]
    assert typed.meta["type_head"]["types"] == types and typed.cfg.type_weight == 0.2
    assert typed.cfg.type_head == len(types) >= 2 and typed.cfg.type_hidden == 6
    before, after = load_retriever(ck, engine="eager").trained_state(), typed.trained_state()
    assert {k for k in after if not k.startswith("net.type_head.")} == set(before)
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert typed.encode_queries(IMAGES, TEXTS).shape == (3, typed.dim)



def test_colours_are_read_as_their_family_from_the_last_word_that_names_one():
    read = {v: attribute_value(COLOUR_COLUMN, v) for v in (
        "dark blue", "navy blue", "greenish khaki", "yellowish brown", "bronze/copper",
        "off white", "grey melange", "Light Pink", "multi", "")}
    assert read == {"dark blue": "blue", "navy blue": "blue", "greenish khaki": "green",
                    "yellowish brown": "brown", "bronze/copper": "metallic",
                    "off white": "white", "grey melange": "grey", "Light Pink": "pink",
                    "multi": "", "": ""}


def test_the_command_attaches_a_colour_head_beside_the_type_head(
        feedback_data, phrased, tmp_path):  # noqa: F811
    """--column colour: a head of the folder's colour families in a slot of its own, the type
    head kept bit for bit; the whole survives a save and the ONNX export."""
    pytest.importorskip("onnxruntime")
    typed = with_type_head(phrased, type_head_of(phrased), TYPES, 0.1)
    ck = typed.save(tmp_path / "typed")
    type_main(["--column", "colour", "--checkpoint", str(ck), "--datasets", feedback_data,
               "--cache-dir", "", "--weight", "0.3", "--hidden", "5", "--item-epochs", "2",
               "--query-epochs", "2", "--threads", "1", "--out", str(tmp_path / "coloured")])
    coloured = load_retriever(tmp_path / "coloured", engine="eager")
    families = read_kind_data([feedback_data], [COLOUR_COLUMN]).attributes[COLOUR_COLUMN]
    assert coloured.meta["colour_head"]["values"] == families and len(families) >= 2
    assert (coloured.cfg.colour_head, coloured.cfg.colour_weight,
            coloured.cfg.colour_hidden) == (len(families), 0.3, 5)
    assert coloured.dim == typed.dim + len(families)
    before, after = load_retriever(ck, engine="eager").trained_state(), coloured.trained_state()
    assert {k for k in after if not k.startswith("net.colour_head.")} == set(before)
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    saved_and_exported(coloured, tmp_path / "ck")


def test_bad_inputs_are_refused_with_their_reason(phrased):  # noqa: F811
    """A head built for another backbone's channels, and a type head on a checkpoint without
    the phrase path whose sentence embedding it reads."""
    import dataclasses

    from model import ModelConfig, build_retriever
    from model.combiner_head import with_combiner_head
    from tests.test_combiner_head import combiner_of

    other = ChangeHead(7, phrased.net.phrase_path.encoder.config.hidden_size, len(TYPES),
                       hidden=8)
    with pytest.raises(ValueError, match="do not fit this checkpoint"):
        with_type_head(phrased, other, TYPES, 0.1)
    combiner = combiner_of(phrased)
    combiner["state"] = {k: v[..., :-1] if k == "image_in.weight" else v
                         for k, v in combiner["state"].items()}  # one input channel short
    with pytest.raises(ValueError, match="do not fit this checkpoint"):
        with_combiner_head(phrased, combiner)
    with pytest.raises(ValueError, match="the type head reads the phrase path's sentence"):
        build_retriever(dataclasses.replace(ModelConfig.tiny(), type_head=3), seed=0)
    with pytest.raises(ValueError, match="the colour head reads the phrase path's sentence"):
        build_retriever(dataclasses.replace(ModelConfig.tiny(), colour_head=3), seed=0)
