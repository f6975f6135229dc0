"""`bash train.sh --recipe demo` (model.recipe): the shipped checkpoint's chain of stages as data,
resumable, its first stage run for a few batches on tiny data."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from model import load_retriever
from model.recipe import Chain, FileSpec, Head, Overrides, Recipe, Run, Stage, main
from model.train import parse_args
from tests.test_feedback_bench import feedback_data  # noqa: F401 (a fixture)
from tests.tiny_dataset import write_tiny_dataset

SHIPPED_CHAIN = ["stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage8",
                 "stage18", "stage19", "stage21", "stage28", "stage29", "stage29b",
                 "stage43", "stage81", "stage81h", "stage84",
                 "stage89e", "stage92", "stage93", "stage94", "stage97",
                 "stage97c"]  # the training log's list


@pytest.fixture(scope="module")
def tiny_sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("recipe-data")
    return {name: write_tiny_dataset(root / name, seed=k)
            for k, name in enumerate(("demo", "products", "hm"))}


def quick_args(tiny_sets: dict[str, Path], root: Path, *flags: str) -> list[str]:
    """The demo recipe on tiny data with a tiny model, for a couple of batches."""
    data = [f"--dataset={name}={path}:{path / 'images'}" for name, path in tiny_sets.items()]
    return ["demo", "--root", str(root), *data, "--set",
            "--tiny --steps-per-epoch 2 --batch-size 8 --max-val-queries 5 --workers 0 "
            f"--cache-dir {root / 'cache'} " + " ".join(flags)]


def epochs_in(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_demo_recipe_is_the_shipped_chain_and_every_command_parses():
    recipe = Recipe.load("demo")
    assert [s.name for s in recipe.stages] == SHIPPED_CHAIN
    chain = Chain(recipe)
    seen: set[str] = set()
    for stage in recipe.stages:
        for run in stage.runs:
            cfg = parse_args(chain.train_argv(run))  # unknown or removed flags would exit
            assert cfg.out == str(chain.root / run.out)
            start = (run.init_from or "").split("/")[0]
            assert not start or start in seen, f"{run.out} starts from a later stage"
            seen.add(run.out)
        assert stage.minutes > 0 and stage.basis
        seen.add(stage.name)
    final = recipe.stages[-1]
    assert chain.output(final) == chain.root / "stage97c"
    assert recipe.reproduces["fingerprint"] == load_retriever(
        Path(__file__).parents[1] / recipe.reproduces["checkpoint"]).fingerprint


def test_the_plan_states_the_hours_from_the_stages(capsys):
    main(["demo", "--dry-run", "--root", "/nonexistent/recipe-root"])
    out = capsys.readouterr().out
    recipe = Recipe.load("demo")
    minutes = sum(s.minutes for s in recipe.stages) + sum(
        d.minutes for d in recipe.datasets.values()) + sum(f.minutes for f in recipe.files.values())
    assert f"about {minutes / 60:.1f} h in all" in out
    assert 10 < minutes / 60 < 15  # the log's chain: about 14 h
    assert out.count("bash train.sh ") == sum(len(s.runs) for s in recipe.stages)
    assert "file combiner_teacher: " in out  # the teacher's vectors, made before stage 66
    assert re.search(r"\[0/6 epochs\] bash train.sh \S+ \S+ 64 6 --out", out)


@pytest.mark.slow  # two real (tiny) training runs
def test_first_stage_runs_on_tiny_data_and_a_rerun_skips_it(tiny_sets, tmp_path, capsys):
    root = tmp_path / "runs"
    main([*quick_args(tiny_sets, root, "--epochs 1"), "--stages", "stage1",
          "--install", str(tmp_path / "installed")])
    run = root / "stage1"
    assert epochs_in(run) == [1]  # both runs of stage 1 ask for 1 epoch here: one trains
    trained = load_retriever(run / "best")
    assert not trained.cfg.global_path  # stage 1's architecture: before the global path
    assert load_retriever(tmp_path / "installed").fingerprint == trained.fingerprint
    chain = Chain(Recipe.load("demo"), Overrides(root=root))
    capsys.readouterr()
    main([*quick_args(tiny_sets, root, "--epochs 1"), "--stages", "stage1"])
    assert epochs_in(run) == [1]  # nothing trained again
    assert "stage1 (demo catalog and real-photo triplets from scratch): done" in \
        capsys.readouterr().out
    assert chain.output(chain.recipe.stage("stage1")) == run / "best"


@pytest.mark.slow  # two real (tiny) training runs
def test_an_interrupted_stage_resumes_from_its_last_epoch(tiny_sets, tmp_path, capsys):
    root = tmp_path / "runs"
    main([*quick_args(tiny_sets, root, "--epochs 2 --stop-after 1"), "--stages", "stage1"])
    assert epochs_in(root / "stage1") == [1]  # stopped after epoch 1 of 2, as a kill would
    main([*quick_args(tiny_sets, root, "--epochs 2"), "--stages", "stage1", "--dry-run"])
    assert "[1/2 epochs]" in capsys.readouterr().out
    main([*quick_args(tiny_sets, root, "--epochs 2"), "--stages", "stage1"])
    assert epochs_in(root / "stage1") == [1, 2]


def test_a_later_stage_without_its_start_says_so(tiny_sets, tmp_path):
    with pytest.raises(FileNotFoundError, match="run the stages before it"):
        main([*quick_args(tiny_sets, tmp_path / "runs", "--epochs 1"), "--stages", "stage3"])


def test_a_run_reading_a_file_the_recipe_does_not_define_is_refused(tmp_path):
    recipe = json.loads((Path(__file__).parents[1] / "recipes" / "demo.json").read_text())
    trained = [stage for stage in recipe["stages"] if stage["runs"]]
    trained[-1]["runs"][0]["files"] = ["no_such_file"]
    (tmp_path / "bad.json").write_text(json.dumps(recipe))
    with pytest.raises(ValueError, match="stages read files it does not define: no_such_file"):
        Recipe.load(str(tmp_path / "bad.json"))


def test_bad_recipe_names_and_dataset_overrides_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no recipe 'nope'.*demo"):
        main(["nope", "--dry-run"])
    with pytest.raises(SystemExit):
        main(["demo", "--dataset", "demo=only-one-path", "--dry-run"])


def test_a_file_a_run_reads_is_made_once_and_counted_in_the_hours(tmp_path):
    """A teacher's vectors (recipe ``files``) are made by their command before the first run
    that reads them, not again once present, and their minutes join the plan's."""
    made = tmp_path / "teacher.txt"
    write = f"import pathlib; f = pathlib.Path({str(made)!r}); f.write_text(f'made\\n')"
    recipe = Recipe("t", datasets={}, stages=[Stage("s", [Run("r", [], 8, 1, files=["teacher"])],
                                                    minutes=1.0)],
                    files={"teacher": FileSpec(str(made), f"python -c {shlex.quote(write)}",
                                               minutes=2.0)})
    chain = Chain(recipe, Overrides(root=tmp_path / "runs"))
    assert chain.minutes(recipe.stages) == 3.0 and not chain.file_ready("teacher")
    chain.make_file("teacher")
    assert made.read_text() == "made\n" and chain.file_ready("teacher")
    made.write_text("kept\n")
    chain.make_file("teacher")  # present: not made again
    assert made.read_text() == "kept\n"


def test_a_head_stage_attaches_the_combiner_once_and_shows_the_command(tmp_path, capsys):
    """A stage with a ``head`` writes the earlier checkpoint with the combiner attached (made
    by its file's command when missing), says so in the plan, and is not redone."""
    import dataclasses

    import torch

    from model import ModelConfig, build_retriever
    from model.retriever import with_residual_paths
    from tests.test_combiner_head import combiner_of

    plain = build_retriever(ModelConfig.tiny(), seed=3)
    start = with_residual_paths(plain, dataclasses.replace(plain.cfg, phrase_path=True))
    root = tmp_path / "runs"
    start.save(root / "start")
    made = tmp_path / "combiner.pt"
    torch.save({"combiner": combiner_of(start)}, tmp_path / "made-elsewhere.pt")
    copy = (f"import shutil; shutil.copy({str(tmp_path / 'made-elsewhere.pt')!r}, "
            f"{str(made)!r})")
    recipe = Recipe("t", datasets={}, stages=[Stage("headed", [], minutes=1.0,
                                                    head=Head("start", "combiner", 0.5))],
                    files={"combiner": FileSpec(str(made), f"python -c {shlex.quote(copy)}")})
    chain = Chain(recipe, Overrides(root=root))
    assert "python -m model.combiner_head" in chain.plan(recipe.stages)
    assert chain.run_stage(recipe.stages[0]) == root / "headed"
    headed = load_retriever(root / "headed")
    assert headed.cfg.combiner_head == 16 and headed.cfg.combiner_weight == 0.5
    assert chain.stage_done(recipe.stages[0])
    made.unlink()
    chain.run_stage(recipe.stages[0])  # done: neither the file nor the head is made again
    assert not made.exists()


def test_a_kind_head_stage_trains_on_its_datasets_and_shows_the_command(
        feedback_data, tmp_path, monkeypatch):  # noqa: F811
    """A stage whose head names ``kinds_from`` trains a kind head (with the attributes it
    names) on those datasets (prepared first), shows `model.kind_head`'s command in the plan,
    and is not redone."""
    import dataclasses

    from model import ModelConfig, build_retriever
    from model.recipe import DataSpec
    from model.retriever import with_residual_paths

    plain = build_retriever(ModelConfig.tiny(), seed=3)
    start = with_residual_paths(plain, dataclasses.replace(plain.cfg, phrase_path=True))
    root = tmp_path / "runs"
    start.save(root / "start")
    annotations, images = feedback_data.split(":")
    recipe = Recipe("t", datasets={"fb": DataSpec(annotations, images, "python -c pass")},
                    stages=[Stage("kinds", [], minutes=1.0,
                                  head=Head("start", weight=0.4, kinds_from=["fb"],
                                            attributes=["pattern"],
                                            attribute_weights=[0.2])),
                            Stage("changes", [], minutes=0.5,
                                  head=Head("kinds", attribute_changes=[2.0]))])
    chain = Chain(recipe, Overrides(root=root))
    monkeypatch.chdir(tmp_path)  # the head's default feature cache is relative: keep it here
    plan = chain.plan(recipe.stages)
    assert "python -m model.kind_head --checkpoint" in plan
    assert "--datasets" in plan and Path(annotations).name in plan
    assert "--attributes pattern --attribute-weights 0.2" in plan
    assert "--keep-head --attribute-changes 2" in plan
    assert chain.run_stage(recipe.stages[0]) == root / "kinds"
    headed = load_retriever(root / "kinds")
    assert headed.cfg.kind_weight == 0.4 and headed.cfg.kind_head >= 2
    assert headed.cfg.attribute_weights == [0.2] and len(headed.cfg.kind_attributes) == 1
    assert chain.stage_done(recipe.stages[0])
    assert chain.run_stage(recipe.stages[1]) == root / "changes"
    changed = load_retriever(root / "changes", engine="eager")
    assert changed.cfg.attribute_changes == [2.0]
    assert changed.cfg.kind_attributes == headed.cfg.kind_attributes


def test_a_type_head_stage_attaches_beside_the_kind_head_and_shows_the_command(
        feedback_data, tmp_path, monkeypatch):  # noqa: F811
    """A stage whose head names ``types_from`` trains a type head on those datasets over an
    earlier stage's checkpoint, which keeps its kind head; the plan shows
    `model.type_head`'s command. A colour head beside it, stored in int8, likewise."""
    import dataclasses

    from model import ModelConfig, build_retriever
    from model.kind_head import KindHeadConfig, read_kind_data, train_kind_head, with_kind_head
    from model.recipe import DataSpec
    from model.retriever import with_residual_paths

    plain = build_retriever(ModelConfig.tiny(), seed=3)
    start = with_residual_paths(plain, dataclasses.replace(plain.cfg, phrase_path=True))
    data = read_kind_data([feedback_data])
    kinds = with_kind_head(start, train_kind_head(start, data, KindHeadConfig(
        item_epochs=1, query_epochs=1, cache_dir="")), data.kinds, 0.3)
    root = tmp_path / "runs"
    kinds.save(root / "kinds")
    annotations, images = feedback_data.split(":")
    recipe = Recipe("t", datasets={"fb": DataSpec(annotations, images, "python -c pass")},
                    stages=[Stage("types", [], minutes=1.0,
                                  head=Head("kinds", weight=0.1, types_from=["fb"],
                                            hidden=6)),
                            Stage("colours", [], minutes=1.0,
                                  head=Head("types", weight=0.2, types_from=["fb"], hidden=5,
                                            column="colour", save_dtype="int8"))])
    chain = Chain(recipe, Overrides(root=root))
    monkeypatch.chdir(tmp_path)  # the head's default feature cache is relative: keep it here
    plan = chain.plan(recipe.stages)
    assert "python -m model.type_head --checkpoint" in plan
    assert "--hidden 6 --out" in plan and Path(annotations).name in plan
    assert chain.run_stage(recipe.stages[0]) == root / "types"
    typed = load_retriever(root / "types", engine="eager")
    assert typed.cfg.type_weight == 0.1 and typed.cfg.type_hidden == 6
    assert typed.cfg.kind_head == kinds.cfg.kind_head and chain.stage_done(recipe.stages[0])
    assert "--hidden 5 --column colour --save-dtype int8 --out" in chain.plan(recipe.stages)
    coloured = load_retriever(chain.run_stage(recipe.stages[1]), engine="eager")
    assert coloured.cfg.colour_head >= 2 and coloured.cfg.save_dtype == "int8"
    assert coloured.cfg.type_head == typed.cfg.type_head
