"""The offline pretrained weights load exactly and give usable features."""

from __future__ import annotations

import pytest
import torch

from model.pretrained import (
    PretrainedWeightsError,
    _efficientnet_lite0_state_dict,
    backbone_spec,
    load_text_model,
)
from tests.tiny_dataset import draw


def test_efficientnet_lite0_weights_load_strictly_into_timm():
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    net.load_state_dict(_efficientnet_lite0_state_dict(None), strict=True)
    net.eval()
    from model.config import ModelConfig
    from model.image_features import preprocess_image

    cfg = ModelConfig()
    x = torch.stack([preprocess_image(draw(c, "circle", size=224), cfg)
                     for c in ("red", "blue")])
    with torch.no_grad():
        probs = net(x).softmax(-1)
    assert probs.shape == (2, 1000)
    # Real ImageNet weights are confident about something; random ones spread ~1/1000 each.
    assert probs.max().item() > 0.05


def test_multilevel_grid_has_expected_shape():
    from model.config import ModelConfig
    from model.image_features import ImageEncoder, preprocess_image

    enc = ImageEncoder(ModelConfig())
    whole, crop = enc(preprocess_image(draw("red", "square", size=256), enc.cfg)[None])
    assert whole.shape == (1, 49, 1280 + 112) and crop.shape == (1, 9, 1392)


def test_minilm_ships_offline():
    model, tokenizer = load_text_model("all-MiniLM-L6-v2")
    assert model.config.hidden_size == 384 and len(model.encoder.layer) == 6
    assert tokenizer("is red")["input_ids"][0] == tokenizer.cls_token_id


def test_unknown_components_are_clear_errors():
    with pytest.raises(PretrainedWeightsError, match="unknown backbone"):
        backbone_spec("vgg99")
    with pytest.raises(PretrainedWeightsError, match="not available offline"):
        load_text_model("/nonexistent/bert-folder")
    with pytest.raises(PretrainedWeightsError, match="backbone_weights"):
        backbone_spec("resnet50").build(None)


@pytest.mark.slow
def test_efficientnet_tail_split_gives_the_same_grid_and_is_stored_with_the_checkpoint(tmp_path):
    """The grid is the trunk's cached output through the tail; a checkpoint whose tail was
    fine-tuned stores that stage alone (not the rest of the package's CNN) and loads it back."""
    import dataclasses

    from model import ModelConfig, build_retriever, load_retriever
    from model.image_features import preprocess_image

    cfg = dataclasses.replace(ModelConfig(), text_model="tiny-bert", backbone_tail=True)
    retriever = build_retriever(cfg)
    enc = retriever.encoder
    x = torch.stack([preprocess_image(draw(c, "circle", size=224), cfg) for c in ("red", "blue")])
    whole, crop = enc(x)
    again = enc.tokens_from_trunk(*enc.trunk(x))
    assert torch.allclose(again[0], whole, atol=1e-4) and torch.allclose(again[1], crop, atol=1e-4)
    stored = {k for k in retriever.trained_state() if k.startswith("encoder.")}
    assert stored == {f"encoder.{k}" for k in enc.net.tail_keys()}
    assert any(k.startswith("encoder.late.1.") for k in stored)
    assert not any(k.startswith(("encoder.late.0.", "encoder.stem.")) for k in stored)
    with torch.no_grad():
        enc.net.late[2].weight.mul_(1.5)  # the 1x1 head conv, as training would move it
    trunk_key = enc.trunk_cache_key
    retriever.invalidate_fingerprint()
    retriever.save(tmp_path / "ckpt")
    loaded = load_retriever(tmp_path / "ckpt", engine="eager")
    assert loaded.fingerprint == retriever.fingerprint
    assert torch.allclose(loaded.encoder.net.late[2].weight, enc.net.late[2].weight, atol=1e-3)
    assert loaded.encoder.cache_key != build_retriever(cfg).encoder.cache_key  # its own grids
    assert loaded.encoder.trunk_cache_key == trunk_key  # the same trunk features
