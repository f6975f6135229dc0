"""The plain BERT forward (model.plain_bert) gives transformers' BertModel's hidden states from
the same folder, refuses what it does not run (and the loader then falls back to
transformers), and lets the conversation memory's clause reader start without importing
transformers."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from model.plain_bert import NotPlainBert, load_plain_bert
from model.pretrained import MINILM, load_frozen_text_model, load_text_model, load_tokenizer

SENTENCES = ["is lighter", "without the sleeves and much shorter, please", "not in black"]


def saved_bert(folder, **changes):
    """A small random BertModel saved as a Hugging Face folder (safetensors weights)."""
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=48,
                        max_position_embeddings=40, **changes)
    torch.manual_seed(0)
    model = BertModel(config, add_pooling_layer=False).eval()
    model.save_pretrained(folder, safe_serialization=True)
    return model


def batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Two rows of random ids, the second padded on the right."""
    ids = torch.randint(1, 60, (2, 9), generator=torch.Generator().manual_seed(seed))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    return {"input_ids": ids * mask, "attention_mask": mask}


def test_the_plain_forward_gives_bertmodels_hidden_states(tmp_path):
    hf = saved_bert(tmp_path / "bert")
    plain = load_plain_bert(tmp_path / "bert")
    enc = batch()
    with torch.no_grad():
        expected = hf(**enc).last_hidden_state
        got = plain(**enc)
    real = enc["attention_mask"].bool()  # padded positions are never read
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)
    assert not any(p.requires_grad for p in plain.parameters()) and not plain.training


def test_a_task_models_bert_part_is_read_too(tmp_path):
    """A folder saved from BertForMaskedLM keeps the encoder under ``bert.``."""
    from safetensors.torch import load_file, save_file

    hf = saved_bert(tmp_path / "bert")
    state = load_file(str(tmp_path / "bert" / "model.safetensors"))
    save_file({f"bert.{k}": v for k, v in state.items()} | {"cls.bias": torch.zeros(60)},
              str(tmp_path / "bert" / "model.safetensors"))
    enc = batch(2)
    with torch.no_grad():
        got, expected = load_plain_bert(tmp_path / "bert")(**enc), hf(**enc).last_hidden_state
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_the_package_minilm_runs_plain_and_as_transformers_runs_it():
    tokenizer = load_tokenizer(MINILM)
    enc = tokenizer(SENTENCES, padding=True, truncation=True, max_length=32)
    hf, _ = load_text_model(MINILM)
    model, _ = load_frozen_text_model(MINILM)
    with torch.no_grad():
        expected = hf.eval()(**enc).last_hidden_state
        got = model(**enc)
    real = enc["attention_mask"].bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("changes, why", [
    ({"hidden_act": "relu"}, "not a BERT with GELU"),
    ({"position_embedding_type": "relative_key"}, "not a BERT with GELU and absolute"),
])
def test_other_architectures_are_refused_and_run_on_transformers(tmp_path, changes, why):
    hf = saved_bert(tmp_path / "other", **changes)
    load_text_model("tiny-bert")[1].save_pretrained(tmp_path / "other")  # MiniLM's vocabulary
    with pytest.raises(NotPlainBert, match=why):
        load_plain_bert(tmp_path / "other")
    model, _ = load_frozen_text_model(str(tmp_path / "other"))
    enc = batch(1)
    with torch.no_grad():
        torch.testing.assert_close(model(**enc), hf(**enc).last_hidden_state)


def test_a_folder_without_safetensors_or_bert_weights_is_refused(tmp_path):
    with pytest.raises(NotPlainBert, match="no config.json and model.safetensors"):
        load_plain_bert(tmp_path)
    saved_bert(tmp_path / "bert")
    from safetensors.torch import save_file

    save_file({"embeddings.word_embeddings.weight": torch.zeros(60, 32)},
              str(tmp_path / "bert" / "model.safetensors"))
    with pytest.raises(NotPlainBert, match="not a BERT state dict"):
        load_plain_bert(tmp_path / "bert")


def test_the_clause_reader_starts_without_transformers():
    """What the app's warm-up loads for the conversation memory (model.conversation)."""
    code = ("import sys; from model.conversation import minilm_embedder; "
            "v = minilm_embedder()(['a little darker', 'with long sleeves']); "
            "assert v.shape == (2, 384), v.shape; "
            "assert 'transformers' not in sys.modules, 'transformers was imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
