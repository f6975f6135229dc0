"""The kill loop, short: a 40-item catalog indexed by ``python -m indexer build`` while builds
are SIGKILLed three times (after their start, after their plan, between two writes) and the
database once, then checked item by item. The full run is
``python -m tests.system.kill_loop --items 600 --kills 20 --db-kills 5``."""

from __future__ import annotations

import json

import pytest
from conftest import write_catalog

from tests.system import kill_loop


@pytest.mark.slow
def test_the_kill_loop_reaches_every_kill_and_loses_nothing(tmp_path, tiny_checkpoint):
    write_catalog(tmp_path / "source", 48, size=96)
    code = kill_loop.main([
        "--items", "40", "--kills", "3", "--db-kills", "1", "--change", "6", "--db-change", "12",
        "--batch", "4", "--workers", "1", "--outage", "0.5", "1.5", "--grace", "30",
        "--checkpoint", str(tiny_checkpoint), "--source", str(tmp_path / "source"),
        "--out-dir", str(tmp_path / "out")])
    [written] = (tmp_path / "out" / "kill_loop").glob("*.json")
    report = json.loads(written.read_text())
    s = report["summary"]
    assert (s["indexer_kills"], s["database_kills"]) == (3, 1), report["indexer_rounds"]
    assert s["indexer_kills_after_a_write"] >= 1  # the "write" round died between two writes
    assert s["lost"] == s["duplicated"] == s["unexpected"] == s["stale"] == 0
    assert s["processes_left_behind"] == 0
    assert s["builds_that_rode_out_the_outage"] == 1 and s["tracebacks"] == 0
    assert report["check"]["stored"] == 40 and report["final_build"]["returncode"] == 0
    assert report["command"].startswith("python -m tests.system.kill_loop --items 40")
    assert code == 0
    windows, measured = report["kill_windows"], report["indexer_rounds"][0]
    assert 0 < windows["plan_to_end_s"] < windows["start_to_end_s"]
    for r in report["indexer_rounds"][1:]:  # each moment drawn inside its measured window
        if r["anchor"] == "write":
            assert 1 <= r["target_written"] <= 12 - 4  # short of the last batch
        else:
            key = f"{r['anchor']}_to_end_s"
            assert r["delay_s"] <= 0.9 * measured[key] + 0.01
