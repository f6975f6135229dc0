"""A BERT encoder's forward pass in plain PyTorch, over a Hugging Face folder's weights.

Why: the conversation memory reads the slot of a clause the lexicon misses with the frozen
all-MiniLM-L6-v2 (`model.conversation.minilm_embedder`), and the app pays for that reader at
start-up. Building the model through transformers imports its BERT module, which imports
torch._dynamo and the distributed tensor package: 3.2 of the 3.5 s the reader took to load
(profiled on this machine), while the weights themselves load in a fraction of a second. This
module reads the same ``config.json`` and ``model.safetensors`` and runs the same arithmetic
(post-norm BERT layers, exact GELU, absolute positions), so the reader starts without
transformers; tests check its outputs against transformers' BertModel. A folder of another
architecture, or without safetensors weights, is refused (:class:`NotPlainBert`) and the
caller falls back to transformers.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


class NotPlainBert(ValueError):
    """The folder holds a model this module does not run."""


class _Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float):
        super().__init__()
        self.heads = heads
        self.query, self.key, self.value, self.attn_out = (nn.Linear(hidden, hidden)
                                                          for _ in range(4))
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.up, self.down = nn.Linear(hidden, intermediate), nn.Linear(intermediate, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape

        def split(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(b, t, self.heads, h // self.heads).transpose(1, 2)

        scores = split(self.query) @ split(self.key).transpose(-1, -2)
        attn = (scores / math.sqrt(h // self.heads) + bias).softmax(dim=-1)
        context = (attn @ split(self.value)).transpose(1, 2).reshape(b, t, h)
        x = self.attn_norm(x + self.attn_out(context))
        return self.out_norm(x + self.down(F.gelu(self.up(x))))


class PlainBert(nn.Module):
    """input_ids, attention_mask (B, T) -> last hidden states (B, T, H), as BertModel's
    ``last_hidden_state`` (token type 0 throughout, eval mode: no dropout)."""

    # this module's parameter names -> the Hugging Face layer's, per layer
    LAYER_KEYS = {"query": "attention.self.query", "key": "attention.self.key",
                  "value": "attention.self.value", "attn_out": "attention.output.dense",
                  "attn_norm": "attention.output.LayerNorm", "up": "intermediate.dense",
                  "down": "output.dense", "out_norm": "output.LayerNorm"}

    def __init__(self, config: dict):
        super().__init__()
        hidden, eps = config["hidden_size"], config["layer_norm_eps"]
        self.words = nn.Embedding(config["vocab_size"], hidden)
        self.positions = nn.Embedding(config["max_position_embeddings"], hidden)
        self.token_type = nn.Embedding(config["type_vocab_size"], hidden)
        self.norm = nn.LayerNorm(hidden, eps=eps)
        self.layers = nn.ModuleList(
            _Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
            for _ in range(config["num_hidden_layers"]))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        x = self.norm(self.words(input_ids) + self.positions(positions)[None]
                      + self.token_type.weight[0])
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x

    def load_hf_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load a BertModel state dict (its pooler and position-id buffer are not used), or
        the ``bert.`` part of a task model's (BertForMaskedLM and the like)."""
        if not any(k.startswith("embeddings.") for k in state):
            state = {k.removeprefix("bert."): v for k, v in state.items()}
        mine = {"words.weight": "embeddings.word_embeddings.weight",
                "positions.weight": "embeddings.position_embeddings.weight",
                "token_type.weight": "embeddings.token_type_embeddings.weight",
                "norm.weight": "embeddings.LayerNorm.weight",
                "norm.bias": "embeddings.LayerNorm.bias"}
        for i in range(len(self.layers)):
            for name, theirs in self.LAYER_KEYS.items():
                for leaf in ("weight", "bias"):
                    mine[f"layers.{i}.{name}.{leaf}"] = f"encoder.layer.{i}.{theirs}.{leaf}"
        missing = [k for k in mine.values() if k not in state]
        if missing:
            raise NotPlainBert(f"not a BERT state dict: {missing[:3]} missing")
        self.load_state_dict({k: state[v] for k, v in mine.items()})


def load_plain_bert(folder: str | Path) -> PlainBert:
    """The BERT encoder of a Hugging Face model folder, in eval mode; NotPlainBert when the
    folder holds another architecture or no ``model.safetensors``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config_file, weights = folder / "config.json", folder / "model.safetensors"
    if not (config_file.is_file() and weights.is_file()):
        raise NotPlainBert(f"{folder} has no config.json and model.safetensors")
    config = json.loads(config_file.read_text())
    plain = (config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
             and config.get("position_embedding_type", "absolute") == "absolute")
    if not plain:
        raise NotPlainBert(f"{folder} is not a BERT with GELU and absolute positions")
    model = PlainBert(config)
    model.load_hf_state(load_file(str(weights)))
    return model.eval().requires_grad_(False)
