"""A checkpoint with a combiner head (model.combiner_head): one inner product scores the late
fusion of FashionVLP's space and the combiner's, the head survives a save, the ONNX export and
training, a combiner trained on other features is refused, and bench.teacher_vectors' file
attaches end to end."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from model import ModelConfig, build_retriever, load_retriever
from model.combiner_head import main as attach_main
from model.combiner_head import with_combiner_head
from model.network import CombinerHead
from model.retriever import with_residual_paths
from tests.test_feedback_bench import feedback_data  # noqa: F401 (a fixture)

IMAGES = [Image.new("RGB", (120, 90), c) for c in ("white", "navy", (200, 40, 40))]
TEXTS = ["is lighter", "without the sleeves and much shorter", "not in black"]


@pytest.fixture(scope="module")
def phrased():
    """A tiny model with a trained-looking phrase path (the head reads its sentence embedding)."""
    plain = build_retriever(ModelConfig.tiny(), seed=3)
    r = with_residual_paths(plain, dataclasses.replace(plain.cfg, phrase_path=True))
    for name, p in r.net.phrase_path.named_parameters():
        if not name.startswith("encoder."):
            torch.nn.init.normal_(p, std=0.1)
    r.invalidate_fingerprint()
    return r


def combiner_of(r, dim: int = 16, seed: int = 0) -> dict:
    """A randomly initialised combiner with fitted input statistics, as a teacher file holds."""
    torch.manual_seed(seed)
    head = CombinerHead(r.encoder.channels - r.encoder.net.side_channels,
                        r.net.phrase_path.encoder.config.hidden_size, dim)
    head.image_norm.mean.normal_()
    head.text_norm.std.uniform_(0.5, 2.0)
    return {"state": head.state_dict(), "features_key": r.encoder.cache_key,
            "text_model": r.cfg.text_model}


def head_vectors(r, combiner: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The combiner's own query and target vectors of IMAGES x TEXTS, computed apart."""
    head = CombinerHead(r.encoder.channels - r.encoder.net.side_channels,
                        r.net.phrase_path.encoder.config.hidden_size,
                        combiner["state"]["image_in.weight"].shape[0]).eval()
    head.load_state_dict(combiner["state"])
    pixels = torch.stack([r.preprocess(i) for i in IMAGES])
    with torch.no_grad():
        whole, _ = r.image_tokens(pixels)
        phrase = r.net.phrase_path.embed(**r.tokenize(TEXTS))
        return head.query(head.pooled(whole), phrase), head.target(head.pooled(whole))


def test_the_head_scores_the_late_fusion_of_both_spaces(phrased):
    combiner, w = combiner_of(phrased), 0.5
    headed = with_combiner_head(phrased, combiner, weight=w)
    assert headed.dim == phrased.dim + 16 and headed.fingerprint != phrased.fingerprint
    q, t = headed.encode_queries(IMAGES, TEXTS), headed.encode_targets(IMAGES)
    q0, t0 = phrased.encode_queries(IMAGES, TEXTS), phrased.encode_targets(IMAGES)
    qh, th = (v.numpy() for v in head_vectors(phrased, combiner))
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(q @ t.T, (q0 @ t0.T + w * qh @ th.T) / (1 + w), atol=1e-5)
    assert not np.allclose(q @ t.T, q0 @ t0.T, atol=1e-3)


def saved_and_exported(headed, folder):
    """``headed`` saved to ``folder`` and loaded eager: the vectors it gave, and the ONNX
    engine's close to them."""
    ck = headed.save(folder)
    eager, fast = load_retriever(ck, engine="eager"), load_retriever(ck, engine="onnx")
    assert eager.fingerprint == headed.fingerprint
    np.testing.assert_allclose(eager.encode_queries(IMAGES, TEXTS),
                               headed.encode_queries(IMAGES, TEXTS), atol=1e-3)  # float16
    # the phrase part runs the frozen text model with int8 weights: close, not equal
    np.testing.assert_allclose(fast.encode_queries(IMAGES, TEXTS),
                               eager.encode_queries(IMAGES, TEXTS), atol=3e-3)
    np.testing.assert_allclose(fast.encode_targets(IMAGES), eager.encode_targets(IMAGES),
                               atol=1e-4)
    return eager


def test_a_headed_checkpoint_round_trips_and_exports(phrased, tmp_path):
    pytest.importorskip("onnxruntime")
    headed = with_combiner_head(phrased, combiner_of(phrased), weight=1.0)
    assert saved_and_exported(headed, tmp_path / "ck").cfg.combiner_head == 16


def test_training_leaves_the_head_as_attached(phrased):
    headed = with_combiner_head(phrased, combiner_of(phrased))
    trained = set(headed.set_trainable())
    head = list(headed.net.combiner_head.parameters())
    assert head and not any(p in trained for p in head)
    headed.net.train()
    assert not headed.net.combiner_head.training and headed.net.phrase_path.combiner.training
    assert any(p in trained for p in headed.net.phrase_path.combiner.parameters())


def test_a_combiner_of_other_features_or_words_is_refused(phrased):
    combiner = combiner_of(phrased)
    with pytest.raises(ValueError, match="trained on features"):
        with_combiner_head(phrased, {**combiner, "features_key": "another-backbone"})
    with pytest.raises(ValueError, match="sentence embeddings"):
        with_combiner_head(phrased, {**combiner, "text_model": "all-MiniLM-L6-v2"})
    without = build_retriever(ModelConfig.tiny(), seed=3)
    with pytest.raises(ValueError, match="no phrase path"):
        with_combiner_head(without, combiner)


def test_the_benchmarks_sentence_embedding_is_the_phrase_paths():
    """The combiner is trained on bench.text_features' embeddings and read at query time on
    the phrase path's: for the pretrained MiniLM they must be the same vectors."""
    from bench.text_features import TextConfig, TextEmbedder
    from model.pretrained import text_model_is_pretrained

    if not text_model_is_pretrained("all-MiniLM-L6-v2"):
        pytest.skip("the MiniLM package is not installed")
    r = build_retriever(dataclasses.replace(ModelConfig(), phrase_path=True))
    texts = ["is lighter", "a shorter version in red, no sleeves", "not in black"]
    with torch.no_grad():
        phrase = r.net.phrase_path.embed(**r.tokenize(texts))
    bench = TextEmbedder(TextConfig(cache_dir=None))(texts)
    torch.testing.assert_close(torch.as_tensor(bench).float(), phrase, atol=1e-4, rtol=1e-4)


def test_teacher_vectors_file_attaches_end_to_end(feedback_data, phrased,  # noqa: F811
                                                   tmp_path):
    from bench import teacher_vectors

    ck = phrased.save(tmp_path / "phrased")
    out = tmp_path / "combiner.pt"
    teacher_vectors.main(["--datasets", feedback_data, "--checkpoint", str(ck),
                          "--cache-dir", "", "--text-model", "tiny-bert", "--epochs", "1",
                          "--workers", "0", "--threads", "1", "--out", str(out)])
    attach_main(["--checkpoint", str(ck), "--combiner", str(out), "--out",
                 str(tmp_path / "headed"), "--weight", "0.5"])
    headed = load_retriever(tmp_path / "headed", engine="eager")
    saved = torch.load(out, weights_only=False)["combiner"]["state"]
    assert headed.cfg.combiner_head == saved["image_in.weight"].shape[0]
    assert headed.cfg.combiner_weight == 0.5
    torch.testing.assert_close(headed.net.combiner_head.image_in.weight,
                               saved["image_in.weight"].float(), atol=1e-3, rtol=1e-3)
    assert headed.encode_queries(IMAGES, TEXTS).shape == (3, headed.dim)
