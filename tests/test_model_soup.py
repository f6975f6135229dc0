"""`python -m model.soup`: (weighted) means of checkpoints, written and loaded like any other."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench import accuracy, datasets
from model import CheckpointError, ModelConfig, build_retriever, load_retriever
from model.checkpoint import read_checkpoint
from model.soup import SoupConfig, main, make_soup, soup_weights


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny checkpoints of one architecture that differ in every float weight."""
    root = tmp_path_factory.mktemp("soup")
    return (build_retriever(ModelConfig.tiny(), seed=0).save(root / "a"),
            build_retriever(ModelConfig.tiny(), seed=1).save(root / "b"))


def test_a_soup_needs_two_checkpoints():
    assert soup_weights(2) == [0.5, 0.5]
    assert soup_weights(4) == [0.25] * 4
    with pytest.raises(ValueError, match="two checkpoints"):
        soup_weights(1)


def test_soup_is_the_uniform_mean_and_loads(two_runs, tmp_path):
    a, b = two_runs
    make_soup(SoupConfig(checkpoints=[str(a), str(b)], out=str(tmp_path / "s")))
    _, state_a, _ = read_checkpoint(a)
    _, state_b, _ = read_checkpoint(b)
    _, mixed, record = read_checkpoint(tmp_path / "s")
    changed = 0
    for name, value in mixed.items():
        if value.is_floating_point():
            expected = (0.5 * state_a[name].float() + 0.5 * state_b[name].float())
            torch.testing.assert_close(value.float(), expected.to(value.dtype).float())
            changed += int(not torch.equal(value, state_a[name]))
    assert changed > 0
    assert [part["weight"] for part in record["meta"]["soup"]] == [0.5, 0.5]
    retriever = load_retriever(tmp_path / "s")  # fingerprint and shapes checked on load
    assert retriever.fingerprint == record["fingerprint"]


def test_soup_of_one_run_with_itself_is_that_run(two_runs, tmp_path):
    a, _ = two_runs
    digest = make_soup(SoupConfig(checkpoints=[str(a), str(a)], out=str(tmp_path / "s")))
    assert digest == read_checkpoint(a)[2]["fingerprint"]


def test_other_architectures_are_refused(two_runs, tmp_path):
    a, _ = two_runs
    wider = build_retriever(replace(ModelConfig.tiny(), embed_dim=48), seed=0).save(tmp_path / "w")
    with pytest.raises(CheckpointError, match="another architecture"):
        make_soup(SoupConfig(checkpoints=[str(a), str(wider)], out=str(tmp_path / "s")))
    with pytest.raises(SystemExit) as exit_info:
        main(["--checkpoints", str(a), str(wider), "--out", str(tmp_path / "s")])
    assert exit_info.value.code == 2
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("args, message", [
    (["--checkpoints", "A"], "error: a soup needs at least two checkpoints"),
    (["--checkpoints", "A", "nowhere"], "error: no checkpoint at"),
    (["--checkpoints", "A", "B", "--weights", "1"], "error: 1 weights for 2 checkpoints"),
    (["--checkpoints", "A", "B", "--weights", "0", "0"], "error: weights must be non-negative"),
])
def test_the_command_line_answers_bad_input_with_one_message(two_runs, tmp_path, capsys, args,
                                                              message):
    paths = {"A": str(two_runs[0]), "B": str(two_runs[1]), "nowhere": str(tmp_path / "nowhere")}
    with pytest.raises(SystemExit) as exit_info:
        main([paths.get(a, a) for a in args] + ["--out", str(tmp_path / "s")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(message)
    assert not (tmp_path / "s").exists()


def test_a_weighted_soup_is_the_weighted_mean(two_runs, tmp_path):
    """--weights: WiSE-FT's interpolation (stage 35b), normalised; bad weights are refused."""
    a, b = two_runs
    main(["--checkpoints", str(a), str(b), "--weights", "1", "2", "--out", str(tmp_path / "w")])
    _, mixed, record = read_checkpoint(tmp_path / "w")
    _, first, _ = read_checkpoint(a)
    _, second, _ = read_checkpoint(b)
    name = next(k for k, v in first.items() if v.is_floating_point())
    want = first[name].float() / 3 + 2 * second[name].float() / 3
    assert torch.allclose(mixed[name].float(), want.to(first[name].dtype).float(), atol=1e-3)
    assert [round(p["weight"], 4) for p in record["meta"]["soup"]] == [0.3333, 0.6667]
    assert soup_weights(2, [3, 1]) == [0.75, 0.25]
    for bad in ([1.0], [-1.0, 2.0], [0.0, 0.0]):
        with pytest.raises(ValueError):
            soup_weights(2, bad)


def test_a_soup_remembers_its_parts_and_their_common_start(tmp_path):
    start = {"checkpoint": "runs/start", "fingerprint": "0123456789abcdef"}
    parts = [build_retriever(ModelConfig.tiny(), seed=s).save(
        tmp_path / f"run{s}", meta={"init_from": start, "epoch": 3 + s,
                                    "train": {"batch_size": 8, "seed": s}}) for s in (0, 1)]
    make_soup(SoupConfig(checkpoints=[str(p) for p in parts], out=str(tmp_path / "s")))
    meta = read_checkpoint(tmp_path / "s")[2]["meta"]
    assert meta["init_from"] == start
    assert [(p["epoch"], p["train"]["seed"]) for p in meta["soup"]] == [(3, 0), (4, 1)]
    summary = accuracy._training_summary(meta)  # bench.accuracy reports each part
    assert [p["epochs"] for p in summary["soup"]] == [3, 4]
    assert datasets.train_record(meta)["batch_size"] == 8
