"""Experiments that did not win are gone from the product, and nothing that used them broke.

Removed (README training log; git tag ``experiments-before-cleanup`` keeps the code):
``--colourway-negatives`` (stage 7), ``--global-lr`` (stage 10g), ``--mask-lookalikes``
(stage 13), ``--look-weight`` (stage 15), ``--group-balance`` (stage 17), the never-measured
``compile`` engine. (``model.soup --weights``, removed after stage 17, came back with stage 35b.)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_retriever
from model.checkpoint import write_checkpoint
from model.config import ModelConfig
from model.engines import ENGINES, resolve_engine_name
from model.retriever import build_retriever
from model.train import REMOVED_OPTIONS, TrainConfig, parse_args
from tests.tiny_dataset import draw

FIXTURE = Path(__file__).parent / "fixtures" / "removed_options_vectors.npy"
STAGE28 = Path(__file__).parent / "fixtures" / "stage28_config.json"
REMOVED_FLAGS = [("--colourway-negatives", "4"), ("--mask-lookalikes", None),
                 ("--look-weight", "0.5"), ("--group-balance", "0.5"), ("--global-lr", "0")]


def _drawn(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Values that depend on the tensor's name and shape alone (not on how a version of the
    model code initialises it), so the code before and after the cleanup read one file."""
    if not tensor.is_floating_point():
        return tensor
    generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    values = torch.rand(tensor.shape, generator=generator)
    values = values + 0.5 if name.endswith("running_var") else 0.2 * values - 0.1
    return values.to(tensor.dtype)


def write_stage28_like_checkpoint(folder: Path) -> None:
    """A tiny model with stage 28's residual paths, pooled reference grid and backbone tail,
    drawn weights (``_drawn``) and stage 28's stored config meta, which names removed options
    (its soup parts were trained with them)."""
    stored = json.loads(STAGE28.read_text())
    cfg = dataclasses.replace(ModelConfig.tiny(), sentence_hidden=8, **{
        k: stored["model"][k]
        for k in ("global_path", "sentence_path", "reference_grid", "backbone_tail")})
    state = {k: _drawn(k, v) for k, v in build_retriever(cfg, seed=0).trained_state().items()}
    write_checkpoint(folder, cfg, state, stored["meta"])


def test_a_checkpoint_naming_removed_options_gives_the_vectors_it_gave_before_the_cleanup(
        tmp_path):
    """A stored config that names removed options must still load and encode exactly as the
    code before the cleanup did.

    The fixture was made on the CPU with the code at git tag experiments-before-cleanup
    (commit c7a0592, e.g. a worktree on PYTHONPATH) running this module's
    ``write_stage28_like_checkpoint(FOLDER)`` and then:

        r = load_retriever(FOLDER, engine="eager")
        images = [draw("red", "square", size=96), draw("blue", "circle", size=80)]
        q = r.encode_queries(images, ["is blue with long sleeves", "is red and shorter"])
        t = r.encode_targets(images)
        np.save(FIXTURE, np.concatenate([q, t]).astype(np.float32))
    """
    write_stage28_like_checkpoint(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert any(name in part["train"] for part in stored["meta"]["soup"]
               for name in REMOVED_OPTIONS)  # else this test no longer tests the cleanup
    r = load_retriever(tmp_path, engine="eager")
    images = [draw("red", "square", size=96), draw("blue", "circle", size=80)]
    q = r.encode_queries(images, ["is blue with long sleeves", "is red and shorter"])
    t = r.encode_targets(images)
    np.testing.assert_allclose(np.concatenate([q, t]), np.load(FIXTURE), atol=1e-5)


def test_stored_train_configs_naming_removed_options_still_load(caplog):
    stored = json.loads(STAGE28.read_text())
    for part in stored["meta"]["soup"]:
        with caplog.at_level(logging.DEBUG, logger="model.train_config"):
            cfg = TrainConfig.from_dict(part["train"])
        assert cfg.tail_lr == part["train"]["tail_lr"] and cfg.model.backbone_tail
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # A run that used a removed experiment loads too, with a warning that names it.
    used = {**stored["meta"]["soup"][0]["train"], "colourway_negatives": 4}
    with caplog.at_level(logging.WARNING, logger="model.train_config"):
        TrainConfig.from_dict(used)
    assert "colourway_negatives=4 was removed" in caplog.text


@pytest.mark.parametrize(("flag", "value"), REMOVED_FLAGS)
def test_removed_flags_are_refused(flag, value, capsys):
    where = ["--annotations", "a", "--images", "i"]
    parse_args(where)  # the same command without the flag parses
    with pytest.raises(SystemExit):
        parse_args([*where, flag, *([value] if value else [])])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_compile_engine_is_gone_with_a_pointer_to_the_tag():
    import torch

    assert "compile" not in ENGINES
    with pytest.raises(ValueError, match="experiments-before-cleanup"):
        resolve_engine_name("compile", torch.device("cpu"))
