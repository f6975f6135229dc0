"""The committed results' layout: ``bench/results/<benchmark>/<fingerprint>[-variant].json``, a
file's name agreeing with the checkpoint it measured, and shipped.json pointing at a file for
every benchmark of the shipped checkpoint."""

from __future__ import annotations

import json
import re
import tomllib

import pytest

from bench import _common
from bench._common import NO_CHECKPOINT, RESULTS, SHIPPED, stored_fingerprint, write_results
from project_settings import DEFAULT_CHECKPOINT, REPO_ROOT

NAME = re.compile(r"^(?P<fp>[0-9a-f]{16}|no-checkpoint|baselines)(?P<variant>-[a-z0-9-]+)?"
                  r"\.(json|png)$")
SHIPPED_FP = stored_fingerprint(REPO_ROOT / DEFAULT_CHECKPOINT)


def result_files():
    return [p for p in RESULTS.rglob("*") if p.is_file() and p.parent != RESULTS]


def test_every_result_is_filed_by_benchmark_then_fingerprint():
    files = result_files()
    assert files, "no committed results"
    misplaced = [str(p.relative_to(RESULTS)) for p in files
                 if len(p.relative_to(RESULTS).parts) != 2 or not NAME.match(p.name)]
    assert misplaced == []
    loose = sorted(p.name for p in RESULTS.iterdir() if p.is_file())
    assert loose == ["README.md", "shipped.json"]


def test_a_result_that_names_its_checkpoint_is_filed_under_it():
    wrong = []
    for path in RESULTS.rglob("*.json"):
        if path.parent == RESULTS or path.name.startswith("baselines"):
            continue
        recorded = json.loads(path.read_text()).get("fingerprint")
        filed = NAME.match(path.name)["fp"]
        if recorded and recorded != filed:
            wrong.append(f"{path.relative_to(RESULTS)} holds {recorded}")
    assert wrong == []


def test_shipped_json_points_at_a_file_per_benchmark_for_the_shipped_checkpoint():
    index = json.loads(SHIPPED.read_text())
    assert index["checkpoint"] == DEFAULT_CHECKPOINT and index["fingerprint"] == SHIPPED_FP
    assert {"accuracy", "latency", "index_throughput", "kill_loop"} <= set(index["results"])
    for name, entry in index["results"].items():
        path = _common.shipped_result(name)
        assert path.is_file() and path.parent.name == name, entry
        if NAME.match(path.name)["fp"] != SHIPPED_FP:  # an earlier checkpoint's figures
            assert entry.get("note"), f"{name}: say why another checkpoint's file stands in"
    assert _common.shipped_result("accuracy").stem == SHIPPED_FP


@pytest.fixture
def results_root(tmp_path, monkeypatch):
    """A throwaway bench/results with an index of the shipped checkpoint."""
    root = tmp_path / "results"
    monkeypatch.setattr(_common, "RESULTS", root)
    monkeypatch.setattr(_common, "SHIPPED", root / "shipped.json")
    root.mkdir()
    (root / "shipped.json").write_text(json.dumps({"fingerprint": SHIPPED_FP, "results": {}}))
    return root


def test_a_run_is_written_under_its_fingerprint_and_only_the_shipped_one_is_indexed(
        results_root, tmp_path):
    other = write_results("speedy", {"x": 1}, results_root, fingerprint="0123456789abcdef")
    none = write_results("speedy", {"x": 2}, results_root)
    assert other == results_root / "speedy" / "0123456789abcdef.json"
    assert none == results_root / "speedy" / f"{NO_CHECKPOINT}.json"
    assert json.loads(other.read_text())["machine"]["commit"]
    assert json.loads((results_root / "shipped.json").read_text())["results"] == {}

    elsewhere = write_results("speedy", {"x": 3}, tmp_path / "elsewhere", fingerprint=SHIPPED_FP)
    assert elsewhere.is_file()  # a run outside bench/results does not touch the index
    assert json.loads((results_root / "shipped.json").read_text())["results"] == {}

    shipped = write_results("speedy", {"x": 4}, results_root, fingerprint=SHIPPED_FP)
    index = json.loads((results_root / "shipped.json").read_text())
    assert index["results"] == {"speedy": {"file": f"speedy/{SHIPPED_FP}.json"}}
    assert _common.shipped_result("speedy") == shipped


def test_the_fingerprint_comes_from_the_checkpoint_config(tiny_checkpoint, tiny_retriever,
                                                          tmp_path):
    assert stored_fingerprint(tiny_checkpoint) == tiny_retriever.fingerprint
    assert stored_fingerprint(tmp_path / "missing") is None
    assert stored_fingerprint(None) is None


def test_bench_does_not_ship_in_the_wheel():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert not any(p.startswith(("bench", "tests")) for p in shipped)
    assert "model*" in shipped
