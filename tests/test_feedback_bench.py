"""bench.feedback_rows end to end on the tiny H&M feedback data: FashionVLP and every baseline
through the shared recall path, rows with counts and intervals, per-family spread, kind
figures, the JSON filed under accuracy_feedback/; and the interval arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import feedback_rows as fr
from bench.baselines import BASELINES
from dataprep.feedback import HELDOUT_FAMILIES
from dataprep.feedback import triplets as ft
from model.recipe import Recipe
from tests.test_feedback_data import write_hm


@pytest.fixture(scope="module")
def feedback_data(tmp_path_factory):
    data = write_hm(tmp_path_factory.mktemp("hm"))
    out = tmp_path_factory.mktemp("hm_feedback")
    ft.build_feedback(ft.FeedbackConfig(data=data, out=out))
    return f"{out}:{data / 'images'}"


def test_wilson_and_bootstrap():
    lo, hi = fr.wilson(45, 100)
    assert lo == pytest.approx(35.62, abs=0.01) and hi == pytest.approx(54.76, abs=0.01)
    assert fr.wilson(0, 10)[0] == 0 and fr.wilson(10, 10)[1] == pytest.approx(100)
    values = np.array([0.0, 10.0, 20.0, 30.0] * 50)
    lo, hi = fr.bootstrap(values, 500)
    assert lo < values.mean() < hi and hi - lo < 10


@pytest.mark.slow
def test_rows_for_every_method(feedback_data, tiny_checkpoint, tmp_path):
    report = fr.main(["--checkpoint", str(tiny_checkpoint), "--feedback", feedback_data,
                      "--train-datasets", feedback_data, "--cache-dir", "",
                      "--text-model", "tiny-bert", "--epochs", "1", "--batch-size", "16",
                      "--bootstrap", "200", "--out-dir", str(tmp_path),
                      "--per-query", str(tmp_path / "queries.jsonl")])
    saved = json.loads((tmp_path / "accuracy_feedback" / f"{report['fingerprint']}.json")
                       .read_text())
    records = [json.loads(line) for line in (tmp_path / "queries.jsonl").open()]
    for method, res in saved["results"].items():  # each row's hit@10, query by query
        assert "per_query" not in res
        for name, m in res["rows"].items():
            mine = [r["hit@10"] for r in records if r["method"] == method and r["row"] == name]
            if mine:  # the negation sub-rows ("negation: ...") are rows of no record
                assert len(mine) == m["queries"]
                assert 100 * np.mean(mine) == pytest.approx(m["hit@10"]), (method, name)
    for r in records:
        assert len(r["top 10"]) == 10 and r["hit@10"] == (r["first relevant"] is not None
                                                         and r["first relevant"] <= 10)
    assert saved["command"].startswith("python -m bench.feedback_rows")
    assert set(saved["results"]) == {fr.MODEL, *BASELINES}
    for method, res in saved["results"].items():
        rows = res["rows"]
        assert {"lighter", "darker", "negation", "multi-change", "colourway"} <= set(rows)
        for name, m in rows.items():
            assert m["queries"] > 0 and m["floors_apply"] == (m["queries"] >= 150)
            for key in ("hit@10", fr.SERVED, "P@10", "R@10"):
                lo, hi = m["ci"][key]
                assert -1e-9 <= lo <= m[key] + 1e-9 and m[key] <= hi + 1e-9 <= 100 + 2e-9, \
                    (method, name, key)
            assert m["R@10"] <= m["hit@10"] <= m[fr.SERVED]  # the target is relevant
        assert set(res["families"]) == {f.name for f in HELDOUT_FAMILIES}
        r10 = [m["R@10"] for m in res["families"].values()]
        assert res["family_spread"]["spread"] == pytest.approx(max(r10) - min(r10))
        kinds = res["kinds"]["all"]
        assert 0 <= kinds["in product type"] <= kinds["in product group"] <= 100
        assert {"garment references", "other references"} <= set(res["kinds"])
    assert saved["baseline_training"]["combiner"]["train_triplets"] > 0
    text = fr.format_tables(saved)
    assert "spread (best-worst)" in text and "in product group" in text


def test_a_row_also_counts_its_hits_with_the_reference_left_out():
    """The reference ranked first holds a place in the headline top 10 (FashionIQ's protocol)
    but not in the app's, which leaves a catalog reference out of its results."""
    from dataprep import Triplet
    gallery = [f"i{k}" for k in range(12)]
    q = fr.FeedbackQueries(
        triplets=[Triplet("i0", "i10", ["x"], "lighter", ["i10"], ("relative", "lighter",
                                                                    "lighter"))],
        gallery=gallery, groups={}, types={})
    vectors = np.arange(12, 0, -1, dtype=np.float32)[:, None]  # ranked i0, i1, ..., i11
    row, _ = fr._row(q, [0], {0: np.ones(1, np.float32)}, vectors,
                     {g: k for k, g in enumerate(gallery)}, fr.FeedbackBenchConfig(bootstrap=10))
    assert row["hit@10"] == 0 and row[fr.SERVED] == 100


def test_kind_figures_leave_the_reference_out():
    from dataprep import Triplet
    q = fr.FeedbackQueries(
        triplets=[Triplet("a", "b", ["x"], "colourway", ["b"], ("colourway", "colourway",
                                                                "colourway"))],
        gallery=["a", "b", "c", "d"], groups={"a": "upper", "b": "upper", "c": "shoes",
                                              "d": "upper"},
        types={"a": "Top", "b": "Top", "c": "Boots", "d": "Blouse"})
    ranked = {0: np.array([0, 1, 2, 3])}  # the reference first: it does not count
    out = fr.kind_figures(q, [0], ranked, fr.FeedbackBenchConfig(bootstrap=10))
    assert out["all"]["in product group"] == pytest.approx(100 * 2 / 3)
    assert out["all"]["in product type"] == pytest.approx(100 / 3)
    assert "other references" not in out


def test_kind_figures_skip_requests_for_another_kind():
    from dataprep import Triplet
    tags = {"colourway": ("colourway", "colourway", "colourway"),
            "type change": ("type", "type change", "type change")}
    q = fr.FeedbackQueries(
        triplets=[Triplet("a", "b", ["x"], "colourway", ["b"], tags["colourway"]),
                  Triplet("a", "d", ["as a blouse"], "type", ["d"], tags["type change"])],
        gallery=["a", "b", "c", "d"], groups=dict.fromkeys("abcd", "upper"),
        types={"a": "Top", "b": "Top", "c": "Top", "d": "Blouse"})
    ranked = {0: np.array([1, 2, 3]), 1: np.array([3, 1, 2])}
    out = fr.kind_figures(q, [0, 1], ranked, fr.FeedbackBenchConfig(bootstrap=10))
    assert out["all"]["queries"] == 1  # "as a blouse" asks for another type
    assert out["all"]["in product type"] == pytest.approx(100 * 2 / 3)


@pytest.mark.slow
def test_bench_accuracy_reports_the_feedback_rows(feedback_data, tiny_checkpoint, tmp_path):
    from bench import accuracy
    annotations = feedback_data.split(":")[0]
    report = accuracy.main(["--checkpoint", str(tiny_checkpoint), "--datasets", feedback_data,
                            "--feedback", feedback_data, "--baselines", "image only",
                            "--cache-dir", "", "--text-model", "tiny-bert", "--workers", "0",
                            "--out-dir", str(tmp_path)])
    rows = report["feedback_rows"]
    assert rows["config"]["train_datasets"] == [feedback_data]
    assert set(rows["results"]) == {fr.MODEL, "image only"}
    assert (tmp_path / "accuracy_feedback" / f"{rows['fingerprint']}.json").is_file()
    # Only a default run picks the feedback data up by itself.
    assert fr.default_feedback(None, [annotations]) == ""
    assert fr.default_feedback("", fr.DEFAULT_DATASETS) == ""


def test_baselines_only_from_pooled_vectors_join_an_earlier_run(feedback_data, tiny_checkpoint,
                                                               tmp_path):
    common = ["--checkpoint", str(tiny_checkpoint), "--feedback", feedback_data,
              "--train-datasets", feedback_data, "--cache-dir", str(tmp_path / "cache"),
              "--text-model", "tiny-bert", "--bootstrap", "50", "--baselines", "image only"]
    full = fr.main([*common, "--out-dir", str(tmp_path / "full")])
    alone = fr.main([*common, "--skip-model", "--out-dir", str(tmp_path / "alone")])
    assert set(alone["results"]) == {"image only"}
    # pooled vectors read one by one rank exactly as the full feature bank's
    assert alone["results"]["image only"]["rows"] == full["results"]["image only"]["rows"]
    earlier = tmp_path / "full" / "accuracy_feedback" / f"{full['fingerprint']}.json"
    joined = fr.main([*common, "--skip-model", "--reuse", str(earlier),
                      "--out-dir", str(tmp_path / "joined")])
    assert joined["results"][fr.MODEL] == json.loads(json.dumps(full["results"][fr.MODEL]))
    with pytest.raises(ValueError, match="query cap"):
        fr.main([*common, "--skip-model", "--reuse", str(earlier), "--max-queries", "3",
                 "--out-dir", str(tmp_path / "capped")])


def test_teacher_vectors_hold_a_query_per_training_caption_and_a_target_per_image(
        feedback_data, tiny_checkpoint, tmp_path):
    """bench.teacher_vectors trains the combiner and writes what model.train --teacher-vectors
    reads: a unit query vector for each (reference, caption) a --paths-only run trains with, a
    unit target vector for each image, the combiner's temperature and its datasets' names."""
    from bench import teacher_vectors
    from dataprep import eval_caption, load_fashioniq
    from model.distillation import TeacherVectors

    out = tmp_path / "teacher.pt"
    teacher_vectors.main(["--datasets", feedback_data, "--checkpoint", str(tiny_checkpoint),
                          "--cache-dir", "", "--text-model", "tiny-bert", "--epochs", "1",
                          "--workers", "0", "--threads", "1", "--out", str(out)])
    saved = torch.load(out, weights_only=True)
    annotations, images = feedback_data.split(":")
    train = load_fashioniq(annotations, images, "train").triplets
    assert set(map(tuple, saved["keys"])) == {(t.candidate, eval_caption(t.captions))
                                              for t in train}
    assert {t.target for t in train} <= set(saved["images"])
    for vectors in (saved["queries"], saved["targets"]):
        assert torch.allclose(vectors.norm(dim=-1), torch.ones(len(vectors)), atol=1e-4)
    assert saved["temperature"] > 0 and saved["datasets"] == [Path(annotations).name]
    codes = {i: k for k, i in enumerate(saved["images"])}
    rows = {tuple(key): k for k, key in enumerate(saved["keys"])}
    found = TeacherVectors(out, rows, codes, torch.device("cpu")).lookup(
        torch.tensor([0, 1]), torch.tensor([0, 1]))
    assert found is not None and found[2].all()
    assert torch.equal(found[0], saved["queries"][:2].float())


def test_baselines_train_by_default_on_the_shipped_checkpoints_datasets():
    """Why: the README's feedback table compares methods trained on the same data; a checkpoint
    shipped with another dataset must move this default with it (stage 77 added a fifth)."""
    recipe = Recipe.load("demo")
    last_run = [run for stage in recipe.stages for run in stage.runs][-1]
    shipped = {f"{recipe.datasets[n].annotations}:{recipe.datasets[n].images}"
               for n in last_run.datasets}
    assert set(fr.FeedbackBenchConfig().train_datasets) == shipped


def test_retyped_and_unmended_runs_are_filed_apart():
    assert fr.results_name(fr.FeedbackBenchConfig()) == "accuracy_feedback"
    assert fr.results_name(fr.FeedbackBenchConfig(retype="typos")) == "accuracy_feedback_typos"
    assert fr.results_name(fr.FeedbackBenchConfig(catalog="products", retype="typos",
                                                  unmended=True)) == (
        "accuracy_feedback_products_typos_unmended")
    cfg = fr.parse_args(["--retype", "typos", "--typo-rate", "0.1", "--unmended"])
    assert (cfg.retype, cfg.typo_rate, cfg.unmended) == ("typos", 0.1, True)


@pytest.mark.slow
def test_every_caption_is_scored_as_retyped(feedback_data, tiny_checkpoint, tmp_path):
    common = ["--checkpoint", str(tiny_checkpoint), "--feedback", feedback_data,
              "--train-datasets", feedback_data, "--cache-dir", "", "--bootstrap", "20",
              "--baselines", "--out-dir", str(tmp_path)]
    as_written = fr.main([*common, "--per-query", str(tmp_path / "written.jsonl")])
    fr.main([*common, "--retype", "no-punctuation", "--per-query", str(tmp_path / "bare.jsonl")])
    written = [json.loads(line) for line in (tmp_path / "written.jsonl").open()]
    bare = [json.loads(line) for line in (tmp_path / "bare.jsonl").open()]
    assert len(bare) == len(written) and any("," in r["words"] for r in written)
    assert [r["reference"] for r in bare] == [r["reference"] for r in written]
    assert not any(mark in r["words"] for r in bare for mark in ",?!.'")
    folder = tmp_path / "accuracy_feedback_no-punctuation"
    assert (folder / f"{as_written['fingerprint']}.json").is_file()
    earlier = tmp_path / "accuracy_feedback" / f"{as_written['fingerprint']}.json"
    with pytest.raises(ValueError, match="typed otherwise"):  # no rows of other captions join
        fr.main([*common, "--retype", "no-punctuation", "--reuse", str(earlier)])
