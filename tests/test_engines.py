"""Inference engines (model.engines) on the tiny model: the ONNX Runtime engine answers like
eager through the public API, its export is cached by fingerprint beside the checkpoint (or
under DATA_DIR when that is read-only), a broken cache or an unknown engine falls back or fails
clearly, and training puts eager back."""

from __future__ import annotations

import dataclasses
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from model import ModelConfig, build_retriever, load_retriever
from model.engines import OnnxEngine
from model.retriever import with_query_side, with_residual_paths

pytest.importorskip("onnxruntime")

IMAGES = [Image.new("RGB", (120, 90), c) for c in ("white", "navy", (200, 40, 40))]
TEXTS = ["is blue", "has long sleeves and a much longer hem", ""]


@pytest.fixture(scope="module")
def eager(tiny_checkpoint):
    return load_retriever(tiny_checkpoint, engine="eager")


def test_onnx_engine_answers_like_eager_and_caches_its_export(tiny_retriever, eager, tmp_path):
    ck = tiny_retriever.save(tmp_path / "ck")  # its own folder: an empty export cache
    fast = load_retriever(ck, engine="onnx")
    assert fast.engine.name == "onnx" and eager.engine.name == "eager"
    cached = sorted((ck / "engine_cache").glob("*.onnx"))
    assert len(cached) == 3 and all(p.name.startswith(fast.fingerprint) for p in cached)
    np.testing.assert_allclose(fast.encode_queries(IMAGES, TEXTS),
                               eager.encode_queries(IMAGES, TEXTS), atol=1e-4)
    np.testing.assert_allclose(fast.encode_query(IMAGES[1], TEXTS[1]),
                               eager.encode_query(IMAGES[1], TEXTS[1]), atol=1e-4)
    np.testing.assert_allclose(fast.encode_targets(IMAGES), eager.encode_targets(IMAGES),
                               atol=1e-4)
    mtimes = [p.stat().st_mtime_ns for p in cached]
    again = load_retriever(ck, engine="onnx")  # reuses the export
    assert again.engine.name == "onnx"
    assert [p.stat().st_mtime_ns for p in cached] == mtimes
    # ... and answers without building the PyTorch modules, until something asks for them
    assert fast.modules_built and not again.modules_built
    np.testing.assert_allclose(again.encode_queries(IMAGES, TEXTS),
                               eager.encode_queries(IMAGES, TEXTS), atol=1e-4)
    np.testing.assert_allclose(again.encode_targets(IMAGES), eager.encode_targets(IMAGES),
                               atol=1e-4)
    assert not again.modules_built
    assert again.encoder.cache_key == eager.encoder.cache_key and again.modules_built
    for name, tensor in eager.net.state_dict().items():
        assert torch.equal(again.net.state_dict()[name], tensor), name


@pytest.mark.parametrize("path", ["sentence_path", "phrase_path"])
def test_onnx_engine_exports_the_sentence_and_phrase_paths(tmp_path, path):
    plain = build_retriever(ModelConfig.tiny(), seed=5)
    r = with_residual_paths(plain, dataclasses.replace(plain.cfg, **{path: True}))
    for name, p in getattr(r.net, path).named_parameters():
        if not name.startswith("encoder."):
            torch.nn.init.normal_(p, std=0.1)  # a trained path, not the zero start
    ck = r.save(tmp_path / "ck")
    fast, eager = load_retriever(ck, engine="onnx"), load_retriever(ck, engine="eager")
    assert fast.engine.name == "onnx"
    got = fast.encode_queries(IMAGES, TEXTS)
    # the phrase part runs the frozen text model with int8 weights: close, not equal
    np.testing.assert_allclose(got, eager.encode_queries(IMAGES, TEXTS),
                               atol=2e-3 if path == "phrase_path" else 1e-4)
    assert not np.allclose(eager.encode_queries(IMAGES, TEXTS),
                           plain.encode_queries(IMAGES, TEXTS), atol=1e-3)
    # ... one text at a time: a query's vector does not depend on the rest of its batch
    alone = np.stack([fast.encode_query(i, t) for i, t in zip(IMAGES, TEXTS, strict=True)])
    np.testing.assert_allclose(got, alone, atol=1e-6)
    exported = sorted(p.name.split("-")[-1] for p in (ck / "engine_cache").iterdir())
    assert exported == sorted(["backbone.onnx", "reference.onnx", "target.onnx",
                               *(["int8.onnx"] if path == "phrase_path" else [])])


def test_onnx_engine_exports_a_cheaper_reference_side(tmp_path):
    r = with_query_side(build_retriever(ModelConfig.tiny(), seed=6), 2, 1)
    ck = r.save(tmp_path / "ck")
    fast, eager = load_retriever(ck, engine="onnx"), load_retriever(ck, engine="eager")
    assert fast.engine.name == "onnx" and fast.cfg.reference_grid == 2
    assert fast.cfg.text_layers == 1
    np.testing.assert_allclose(fast.encode_queries(IMAGES, TEXTS),
                               eager.encode_queries(IMAGES, TEXTS), atol=1e-4)


def test_json_tokenizer_matches_transformers():
    from model.pretrained import MINILM, load_text_model, load_tokenizer

    hf = load_text_model("tiny-bert")[1]
    fast = load_tokenizer(MINILM)
    texts = ["Is darker and has long sleeves", "", "ÉTÉ  dress, çà  été!", "a " * 80,
             "is blue", "has a V-neck; shorter (mini) & red/white stripes"]
    for max_length in (8, 40):
        got = fast(texts, padding=True, truncation=True, max_length=max_length,
                   return_tensors="pt")
        want = hf(texts, padding=True, truncation=True, max_length=max_length,
                  return_tensors="pt")
        assert torch.equal(got["input_ids"], want["input_ids"])
        assert torch.equal(got["attention_mask"], want["attention_mask"])
    one = fast(["is blue"], max_length=40)
    assert one["input_ids"].shape == (1, 4) and one["attention_mask"].all()


def test_int8_engine_stays_close_to_eager(tiny_checkpoint, eager):
    fast = load_retriever(tiny_checkpoint, engine="onnx-int8")
    assert fast.engine.name == "onnx-int8"
    got, want = fast.encode_queries(IMAGES, TEXTS), eager.encode_queries(IMAGES, TEXTS)
    assert got.shape == want.shape
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)
    assert (got * want).sum(1).min() > 0.9


def test_a_corrupt_cached_export_falls_back_to_eager_and_is_removed(tiny_retriever, tmp_path,
                                                                    caplog):
    ck = tiny_retriever.save(tmp_path / "ck")
    load_retriever(ck, engine="onnx")
    victim = next((ck / "engine_cache").glob("*-reference.onnx"))
    victim.write_bytes(victim.read_bytes()[:100])
    caplog.set_level(logging.WARNING, logger="model.engines")
    r = load_retriever(ck, engine="onnx")
    assert r.engine.name == "eager"
    assert [rec.getMessage().split(" (")[0] for rec in caplog.records] == [
        "engine onnx unavailable"]
    assert not victim.exists()
    assert load_retriever(ck, engine="onnx").engine.name == "onnx"  # re-exported


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_checkpoint_caches_under_data_dir(tiny_retriever, tmp_path, monkeypatch):
    ck = tiny_retriever.save(tmp_path / "ck")
    ck.chmod(0o555)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    try:
        assert load_retriever(ck, engine="onnx").engine.name == "onnx"
    finally:
        ck.chmod(0o755)
    assert len(list((tmp_path / "data" / "engine_cache").glob("*.onnx"))) == 3


def test_cache_dir_for_falls_back_to_data_dir(tmp_path, monkeypatch):
    from model.engines import cache_dir_for

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    assert cache_dir_for(tmp_path) == tmp_path / "engine_cache"
    assert cache_dir_for(None) == tmp_path / "data" / "engine_cache"


def test_engine_choice_and_training_reset(tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("ENCODER_ENGINE", "eager")
    assert load_retriever(tiny_checkpoint).engine.name == "eager"
    monkeypatch.setenv("ENCODER_ENGINE", "warp-drive")
    with pytest.raises(ValueError, match="ENCODER_ENGINE"):
        load_retriever(tiny_checkpoint)
    monkeypatch.delenv("ENCODER_ENGINE")
    r = load_retriever(tiny_checkpoint)  # auto on the CPU
    assert isinstance(r.engine, OnnxEngine)
    r.set_trainable()
    assert r.engine.name == "eager"
