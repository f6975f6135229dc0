"""bench.stage_rule reads a candidate's three result files and the shipped checkpoint's (by
shipped.json) and says which parts of the ship rule hold, with the arithmetic shown."""

from __future__ import annotations

import json

import pytest

from bench import stage_rule as sr


def write_results(root, fingerprint: str, *, products: float = 72.9, row_gain: float = 0.0,
                  drop: dict[str, float] | None = None) -> None:
    """The three result files of a checkpoint under ``root``, shaped as the benchmarks write
    them: every existing row at 0.1 above issue 35's figure except products hit@10, every
    feedback row at 70 + ``row_gain`` (less ``drop`` on the rows it names)."""
    drop = drop or {}
    average = {d: {} for d, _ in sr.EXISTING_ROWS}
    for (dataset, metric), figure in sr.EXISTING_ROWS.items():
        average[dataset][metric] = figure + 0.1
    average["products"]["hit@10"] = products
    acc = {"fingerprint": fingerprint,
           "results": {d: {sr.MODEL: {"average": m}} for d, m in average.items()}}
    for run, catalog in (("accuracy_feedback", "H&M"), ("accuracy_feedback_products",
                                                           "products")):
        rows = {name: {"hit@10": 70 + row_gain - drop.get(f"{catalog} {name}", 0.0),
                       "queries": 300} for name in sr.RULE_ROWS}
        report = {"fingerprint": fingerprint, "results": {sr.MODEL: {
            "rows": rows, "kinds": {"all": {"in product group": 88.0}}}}}
        (root / run).mkdir(parents=True, exist_ok=True)
        (root / run / f"{fingerprint}.json").write_text(json.dumps(report))
    (root / "accuracy").mkdir(parents=True, exist_ok=True)
    (root / "accuracy" / f"{fingerprint}.json").write_text(json.dumps(acc))


@pytest.fixture
def shipped(tmp_path):
    root = tmp_path / "results"
    write_results(root, "shipped")
    index = {"fingerprint": "shipped",
             "results": {run: {"file": f"{run}/shipped.json"} for run in sr.RUNS}}
    (root / "shipped.json").write_text(json.dumps(index))
    return root


def test_a_candidate_that_gains_everywhere_passes(shipped, tmp_path):
    write_results(tmp_path / "cand", "cand", row_gain=1.2)
    report = sr.main(["--candidate", str(tmp_path / "cand"), "--shipped-results", str(shipped),
                      "--json", str(tmp_path / "report.json")])
    assert report["passes_a_to_c"] and report["candidate"] == "cand"
    assert report["parts"]["b"][0]["figure"] == pytest.approx(1.2)
    assert json.loads((tmp_path / "report.json").read_text()) == report


def test_each_part_fails_on_its_own_figure(shipped, tmp_path):
    write_results(tmp_path / "cand", "cand", products=72.4, row_gain=1.5,
                  drop={"products negation": 4.0})
    report = sr.check(sr.figures(sr.find_results([tmp_path / "cand"])),
                      sr.figures(sr.shipped_results(shipped)))
    assert report["passes"] == {"a": False, "b": True, "c": False}
    failed = [x["what"] for lines in report["parts"].values() for x in lines if not x["passed"]]
    assert failed == ["products hit@10 (issue 35: 73.02)", "products negation: change"]
    # the twelve rows' mean counts the dropped row too: (12 * 1.5 - 4) / 12
    assert report["parts"]["b"][0]["figure"] == pytest.approx(1.5 - 4 / 12)
    assert "fails (a), (c)" in sr.format_report(report)


def test_missing_or_doubled_runs_are_refused(tmp_path):
    write_results(tmp_path / "one", "one")
    (tmp_path / "one" / "accuracy_feedback_products" / "one.json").unlink()
    with pytest.raises(ValueError, match="no accuracy_feedback_products result"):
        sr.find_results([tmp_path / "one"])
    write_results(tmp_path / "two", "two")
    with pytest.raises(ValueError, match="two accuracy results"):
        sr.find_results([tmp_path / "one", tmp_path / "two"])
