"""The CUDA check script: says so when no GPU is present; its training/compare path runs (the
CPU stands in for the GPU here, so the code a GPU machine runs is exercised on every CI run)."""

from __future__ import annotations

import json

import pytest
import torch

from tests.system import cuda_check


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the real check runs")
def test_without_a_gpu_it_says_so(tmp_path, capsys):
    report = cuda_check.main(["--out-dir", str(tmp_path)])
    assert report["cuda"] is False
    assert "no CUDA GPU" in capsys.readouterr().out
    saved = tmp_path / "cuda_check" / "no-checkpoint.json"  # a tiny random model, no checkpoint
    assert json.loads(saved.read_text())["cuda"] is False


def test_training_steps_and_comparison_run_end_to_end(tmp_path):
    report = cuda_check.main(["--device", "cpu", "--steps", "2", "--out-dir", str(tmp_path)])
    assert report["within_tolerance"] and report["fingerprints_equal"]
    assert len(report["train_losses"]) == 2
    assert report["diffs"]["queries"]["max_abs_diff"] < 1e-5
