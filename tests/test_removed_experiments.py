"""Experiments that did not win are gone from the product, and nothing that used them broke.

Removed (README training log; git tag ``experiments-before-cleanup`` keeps the code):
``--colourway-negatives`` (stage 7), ``--global-lr`` (stage 10g), ``--mask-lookalikes``
(stage 13), ``--look-weight`` (stage 15), ``--group-balance`` and ``model.soup --weights``
(stage 17), the never-measured ``compile`` engine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from model import load_retriever
from model.engines import ENGINES, resolve_engine_name
from model.train import REMOVED_OPTIONS, TrainConfig, parse_args
from tests.tiny_dataset import draw

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "checkpoints" / "demo"
FIXTURE = Path(__file__).parent / "fixtures" / "demo_vectors.npy"
REMOVED_FLAGS = [("--colourway-negatives", "4"), ("--mask-lookalikes", None),
                 ("--look-weight", "0.5"), ("--group-balance", "0.5"), ("--global-lr", "0")]


STAGE28 = Path(__file__).parent / "fixtures" / "stage28_config.json"


def test_a_checkpoint_naming_removed_options_gives_the_vectors_it_gave_before_the_cleanup(
        tmp_path):
    """A stored config that names removed options (stage 28's, whose soup parts were trained
    with them; kept as a fixture) must still load and encode exactly as the code before the
    cleanup did. The weights are the shipped checkpoint's (their architecture is stage 28's).

    The fixture was made with the code at git tag experiments-before-cleanup (commit c7a0592),
    on the CPU, over a folder holding checkpoints/demo's weights.safetensors and its
    config.json with "meta" replaced by stage 28's, by:

        r = load_retriever(FOLDER, engine="eager")
        images = [draw("red", "square", size=96), draw("blue", "circle", size=80)]
        q = r.encode_queries(images, ["is blue with long sleeves", "is red and shorter"])
        t = r.encode_targets(images)
        np.save("tests/fixtures/demo_vectors.npy", np.concatenate([q, t]).astype(np.float32))
    """
    stored = json.loads((DEMO / "config.json").read_text())
    stored["meta"] = json.loads(STAGE28.read_text())["meta"]
    assert any(name in part["train"] for part in stored["meta"]["soup"]
               for name in REMOVED_OPTIONS)  # else this test no longer tests the cleanup
    (tmp_path / "config.json").write_text(json.dumps(stored))
    (tmp_path / "weights.safetensors").symlink_to(DEMO / "weights.safetensors")
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
