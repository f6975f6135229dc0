"""bench.throughput end to end with a tiny model: indexing, an app cold start in a fresh
process against a real embedded SecantusDB, and cached vs on-the-fly training steps."""

from __future__ import annotations

import json

import pytest

from bench import throughput
from tests.tiny_dataset import write_tiny_dataset


@pytest.mark.slow
def test_throughput_script_writes_json(tiny_checkpoint, tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny")
    report = throughput.main([
        "--checkpoint", str(tiny_checkpoint), "--catalog", str(data), "--datasets", str(data),
        "--cache-dir", "", "--index-images", "48", "--cold-vectors", "500", "--cold-runs", "1",
        "--train-steps", "2", "--warmup-steps", "1", "--batch-size", "8", "--workers", "0",
        "--out-dir", str(tmp_path / "out")])
    saved = json.loads((tmp_path / "out" / "throughput" / f"{report['fingerprint']}.json")
                       .read_text())
    assert saved["index"]["builds"][0]["embedded"] == 48
    assert saved["index"]["backbone_images_per_s"] > 0
    assert saved["index"]["plain_lite0_images_per_s"] > 0
    assert saved["index"]["builds"][0]["vs_plain_lite0"] > 0
    runs = saved["cold"]["sizes"]["500"]["runs"]
    assert [(r["variant"], r["index_source"]) for r in runs] == [
        ("no snapshot", "database"), ("first start, writes the snapshot", "database"),
        ("with snapshot", "snapshot")]
    for run in runs:
        assert run["index_size"] == 500 and run["results"] > 0
        assert 0 < run["load_index_s"] < run["to_first_answer_s"]
    train = saved["train"]
    assert train["steps_per_epoch"] == 54 // 8 and train["step_s_on_the_fly"] > 0
    assert train["epoch_s_cached_extrapolated"] == pytest.approx(
        train["step_s_cached"] * train["steps_per_epoch"])
    assert saved["machine"]["commit"]
