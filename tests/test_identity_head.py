"""A checkpoint with an identity head (model.identity_head): one inner product adds the
reference's colour-blind look times how far the words negate a colour, nothing where the gate
reads another change; the channels kept are those that tell products apart and not
their colourways; the head survives a save and the ONNX export, training leaves it alone, and
the command fits it on a feedback folder and keeps every other weight bit for bit."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from model import ModelConfig, build_retriever, load_retriever
from model.identity_head import (
    GATED,
    IdentityHeadConfig,
    channel_statistics,
    fit_gate,
    read_requests,
    with_identity_head,
)
from model.identity_head import main as identity_main
from model.network import IdentityHead
from tests.test_combiner_head import IMAGES, TEXTS, phrased, saved_and_exported  # noqa: F401
from tests.test_feedback_bench import feedback_data  # noqa: F401 (a fixture)

CHANNELS = 6


def identity_head_of(r, seed: int = 0) -> IdentityHead:
    torch.manual_seed(seed)
    image_dim = r.encoder.channels - r.encoder.net.side_channels
    head = IdentityHead(image_dim, r.net.phrase_path.encoder.config.hidden_size, CHANNELS)
    with torch.no_grad():
        head.channels.copy_(torch.randperm(image_dim)[:CHANNELS].sort().values)
        head.centre.normal_(std=0.05)
        head.scale.uniform_(0.5, 2.0)
        torch.nn.init.normal_(head.gate.weight, std=0.02)
    return head.eval()


def identity_vectors(r, head: IdentityHead) -> tuple[np.ndarray, np.ndarray]:
    """The gate of each of TEXTS and each image's kept channels (a unit vector), apart."""
    pixels = torch.stack([r.preprocess(i) for i in IMAGES])
    with torch.no_grad():
        whole, _ = r.image_tokens(pixels)
        phrase = r.net.phrase_path.embed(**r.tokenize(TEXTS))
        pooled = torch.nn.functional.normalize(whole[..., :head.image_dim].mean(dim=1), dim=-1)
        kept = (pooled[:, head.channels.long()] - head.centre) * head.scale
        gate = torch.sigmoid(phrase @ head.gate.weight.T + head.gate.bias)
    return gate.numpy(), torch.nn.functional.normalize(kept, dim=-1).numpy()


def test_the_identity_head_adds_the_gated_look_of_the_reference(phrased):  # noqa: F811
    """score = (cos_f + w g(words) cos(look of the reference, look of the item)) / (1 + w), up
    to one scale per query (the gated part is not a unit vector)."""
    head, w = identity_head_of(phrased), 0.5
    headed = with_identity_head(phrased, head, w)
    assert headed.dim == phrased.dim + CHANNELS and headed.meta["identity_head"]["weight"] == w
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    gate, look = identity_vectors(phrased, head)
    scale = np.sqrt((1 + w * gate ** 2) / (1 + w))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(q @ t.T * scale, (q0 @ t0.T + w * gate * look @ look.T)
                               / (1 + w), atol=1e-5)
    assert 0.05 < gate.min() and gate.max() < 0.95  # the random gate does weigh the term


def test_words_the_gate_reads_as_a_change_of_shape_add_nothing(phrased):  # noqa: F811
    head, w = identity_head_of(phrased), 0.5
    with torch.no_grad():
        head.gate.weight.zero_()
        head.gate.bias.fill_(-40.0)
    headed = with_identity_head(phrased, head, w)
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    np.testing.assert_allclose(q @ t.T, q0 @ t0.T / (1 + w) ** 0.5, atol=1e-5)


def test_the_kept_channels_tell_products_apart_and_not_their_colourways():
    """Channel 0 is the product (equal within a pair), channel 1 the colour (differs within a
    pair), channel 2 noise: one channel kept is the product's, centred and scaled by its
    spread over the paired photos; photos in no pair (another catalog's, channel 2 far off
    there) count for neither spread."""
    gen = torch.Generator().manual_seed(0)
    products = torch.randn(40, generator=gen).repeat_interleave(2)
    colours = torch.randn(80, generator=gen) * 3
    pooled = torch.stack([products, colours, torch.randn(80, generator=gen) * 0.1], dim=1)
    pairs = torch.arange(80).reshape(40, 2)
    other_catalog = torch.tensor([[0.0, 0.0, 50.0], [0.0, 0.0, -50.0]])
    kept, centre, scale = channel_statistics(torch.cat([pooled, other_catalog]), pairs, 1)
    assert kept.tolist() == [0]
    torch.testing.assert_close(centre, pooled[:, :1].mean(dim=0))
    torch.testing.assert_close(scale, pooled[:, :1].var(dim=0).rsqrt())
    with pytest.raises(ValueError, match="no colourway pairs"):
        channel_statistics(pooled, pairs[:0], 1)
    with pytest.raises(ValueError, match="4 channels asked of a 3-channel map"):
        channel_statistics(pooled, pairs, 4)


def test_the_gate_is_one_linear_layer_over_the_raw_embeddings():
    """Fitted on centred inputs, returned over raw ones: it separates what it was fitted on,
    whatever the inputs' offset, and a constant channel does not blow its weights up."""
    gen = torch.Generator().manual_seed(0)
    text = torch.randn(400, 5, generator=gen) * torch.tensor([3.0, 1, 1, 1, 0]) + 7.0
    gated = text[:, 0] > 7.0
    gate = fit_gate(text, gated, IdentityHeadConfig(gate_epochs=40, batch_size=64))
    with torch.no_grad():
        predicted = torch.sigmoid(gate(text).squeeze(-1)) > 0.5
    assert (predicted == gated).float().mean() > 0.95
    assert gate.weight.abs().max() < 100  # float16 holds it


def test_an_identity_headed_checkpoint_round_trips_and_exports(phrased, tmp_path):  # noqa: F811
    pytest.importorskip("onnxruntime")
    headed = with_identity_head(phrased, identity_head_of(phrased), 0.5)
    eager = saved_and_exported(headed, tmp_path / "ck")
    assert eager.cfg.identity_head == CHANNELS and eager.net.identity_head.channels.dtype == \
        torch.int16


def test_training_leaves_the_identity_head_as_attached(phrased):  # noqa: F811
    headed = with_identity_head(phrased, identity_head_of(phrased), 0.5)
    trained = set(headed.set_trainable())
    assert not any(p in trained for p in headed.net.identity_head.parameters())
    headed.net.train()
    assert not headed.net.identity_head.training


def test_the_command_fits_the_head_on_a_feedback_folder_and_keeps_the_rest(
        feedback_data, phrased, tmp_path):  # noqa: F811
    ck = phrased.save(tmp_path / "plain")
    identity_main(["--checkpoint", str(ck), "--datasets", feedback_data, "--cache-dir", "",
                   "--channels", "5", "--weight", "0.4", "--gate-epochs", "2",
                   "--threads", "1", "--out", str(tmp_path / "kept")])
    kept = load_retriever(tmp_path / "kept", engine="eager")
    assert kept.cfg.identity_head == 5 and kept.cfg.identity_weight == 0.4
    before, after = load_retriever(ck, engine="eager").trained_state(), kept.trained_state()
    assert {k for k in after if not k.startswith("net.identity_head.")} == set(before)
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    assert kept.encode_queries(IMAGES, TEXTS).shape == (3, kept.dim)
    requests = read_requests([feedback_data]).requests
    assert {rel for *_, rel in requests} & set(GATED)  # the gate saw both answers
    assert {rel for *_, rel in requests} - set(GATED)


def test_bad_inputs_are_refused_with_their_reason(phrased, tmp_path):  # noqa: F811
    """A head built for another backbone's channels, a folder without feedback tags, and an
    identity head on a checkpoint without the phrase path whose sentence embedding it reads."""
    text_dim = phrased.net.phrase_path.encoder.config.hidden_size
    wider = IdentityHead(phrased.encoder.channels + 1, text_dim, CHANNELS)
    with torch.no_grad():
        wider.channels[-1] = phrased.encoder.channels  # beyond the checkpoint's map
    with pytest.raises(ValueError, match="do not fit this checkpoint"):
        with_identity_head(phrased, wider, 0.5)
    with pytest.raises(ValueError, match="do not fit this checkpoint"):
        with_identity_head(phrased, IdentityHead(7, text_dim + 1, CHANNELS), 0.5)
    with pytest.raises(ValueError, match="the identity head reads the phrase path's sentence"):
        build_retriever(dataclasses.replace(ModelConfig.tiny(), identity_head=3), seed=0)
    untagged = tmp_path / "untagged"
    (untagged / "captions").mkdir(parents=True)
    (untagged / "image_splits").mkdir()
    (untagged / "captions" / "cap.dress.train.json").write_text("[]")
    (untagged / "image_splits" / "split.dress.train.json").write_text("[]")
    with pytest.raises(ValueError, match="no tagged feedback requests"):
        read_requests([f"{untagged}:{untagged}"])
