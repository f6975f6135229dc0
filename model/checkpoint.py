"""The checkpoint on disk: `config.json` + `weights.safetensors`, its fingerprint and checks.

Only file format and integrity live here; `model.retriever` turns a checkpoint into a working
model. A checkpoint holds what the pretrained packages do not provide, so it stays small, and a
fingerprint over the architecture and those weights identifies it (it is stored with every
catalog vector, so vectors of another model are never mixed into one index).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from model.config import ModelConfig, fingerprinted_fields
from project_settings import DEFAULT_CHECKPOINT

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
# Storage dtypes (ModelConfig.save_dtype). "int8" stores every weight matrix (a tensor of two
# or more dimensions and at least INT8_MIN_SIZE values) as int8 with one float32 scale per
# output row, under the weight's name + SCALE_SUFFIX; smaller tensors (biases, norms) in
# float16.
SAVE_DTYPES = ("float32", "float16", "int8")
SCALE_SUFFIX = ".int8_scale"
INT8_MIN_SIZE = 1024


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or does not fit the architecture it names."""


def fingerprint(cfg: ModelConfig, state: dict[str, torch.Tensor]) -> str:
    """Hash of the architecture and every stored weight (16 hex digits)."""
    digest = hashlib.sha256(json.dumps(fingerprinted_fields(cfg), sort_keys=True).encode())
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def pack_weights(state: dict[str, torch.Tensor], save_dtype: str) -> dict[str, torch.Tensor]:
    """``state`` as a checkpoint stores it: float tensors in ``save_dtype`` (SAVE_DTYPES).

    Why int8: the demo checkpoint is held to 25 MB of stored weights, and a head that the
    model needs then has to be paid for by another. Symmetric int8 with one scale per output
    row keeps each weight within half a step of its row's largest value / 127, far under what
    training moves a weight; the model is measured as it loads, dequantised."""
    if save_dtype not in SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {SAVE_DTYPES}, not {save_dtype!r}")
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        value = value.detach().cpu()
        if not value.is_floating_point():
            out[name] = value
        elif save_dtype != "int8":
            out[name] = value.to(getattr(torch, save_dtype))
        elif value.dim() < 2 or value.numel() < INT8_MIN_SIZE:
            out[name] = value.to(torch.float16)
        else:
            rows = value.float().reshape(len(value), -1)
            scale = rows.abs().amax(dim=1).clamp_min(1e-12) / 127
            out[name] = (rows / scale[:, None]).round().to(torch.int8).reshape(value.shape)
            out[name + SCALE_SUFFIX] = scale
    return out


def unpack_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Stored weights as float32 tensors under their modules' names (pack_weights undone)."""
    out: dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if name.endswith(SCALE_SUFFIX):
            continue
        scale = state.get(name + SCALE_SUFFIX)
        if scale is not None:
            shape = (-1,) + (1,) * (value.dim() - 1)
            out[name] = value.float() * scale.float().reshape(shape)
        else:
            out[name] = value.float() if value.is_floating_point() else value
    return out


def write_checkpoint(directory: str | Path, cfg: ModelConfig, state: dict[str, torch.Tensor],
                     meta: dict[str, Any]) -> str:
    """Write weights first (atomically), then the config that names their fingerprint."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in state.items()}
    tmp = directory / (WEIGHTS_FILE + ".tmp")
    save_file(state, str(tmp))
    # safetensors creates the file owner-only (0600), but a checkpoint is read by other users
    # (an app container, a colleague, a shared volume): owner writes, everyone reads
    tmp.chmod(0o644)
    tmp.replace(directory / WEIGHTS_FILE)
    digest = fingerprint(cfg, state)
    record = {"model": cfg.to_dict(), "fingerprint": digest, "meta": meta}
    (directory / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return digest


def update_meta(path: str | Path, **entries: Any) -> Path:
    """Add ``entries`` to the meta of the checkpoint at ``path`` (its directory, config.json or
    weights file), written atomically; the architecture, weights and fingerprint stay as they
    are. Returns the config file."""
    path = Path(path)
    directory = path.parent if path.is_file() else path
    config = directory / CONFIG_FILE
    if not config.is_file():
        raise CheckpointError(f"no checkpoint at {directory}: expected {CONFIG_FILE}")
    record = json.loads(config.read_text())
    record.setdefault("meta", {}).update(entries)
    tmp = config.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(config)
    return config


def read_checkpoint(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], dict]:
    """(architecture, stored weights, the whole config.json record) of a checkpoint directory
    (or its config.json / weights file); refuses a missing or unreadable one."""
    path = Path(path)
    directory = path.parent if path.is_file() else path
    config_file, weights_file = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_file.is_file() or not weights_file.is_file():
        raise CheckpointError(
            f"no checkpoint at {directory}: expected {CONFIG_FILE} and {WEIGHTS_FILE}. Train one "
            f"with `bash train.sh ...` or use the committed demo checkpoint {DEFAULT_CHECKPOINT}")
    try:
        record = json.loads(config_file.read_text())
        cfg = ModelConfig.from_dict(record["model"])
        state = load_file(str(weights_file))
    except (ValueError, KeyError, OSError) as exc:
        raise CheckpointError(f"checkpoint {directory} is unreadable: {exc}") from exc
    return cfg, state, record


def check_fits(directory: str | Path, expected: dict[str, torch.Tensor],
               state: dict[str, torch.Tensor], record: dict) -> None:
    """Every expected weight present with its shape, nothing else (never a half-random
    model), and the weights are the ones the config's fingerprint names (never edited)."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"checkpoint {directory} does not fit its architecture: {len(missing)} missing "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
            f"{len(wrong)} with wrong shapes (e.g. {wrong[:3]})")
    cfg = ModelConfig.from_dict(record["model"])
    if fingerprint(cfg, state) != record.get("fingerprint"):
        raise CheckpointError(f"checkpoint {directory}: weights do not match the fingerprint "
                              "in config.json (file corrupted or edited)")
