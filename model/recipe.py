"""Reproduce a checkpoint with one command: its chain of stages, as data, run in order.

    python -m model.recipe demo                  # or: bash train.sh --recipe demo
    python -m model.recipe demo --dry-run        # the plan: every command, done or to do, hours

A recipe (``recipes/NAME.json``) names its datasets (with the command that prepares each) and
its stages; a stage is one or more `python -m model.train` runs, each with the arguments of the
training log's command, optionally followed by a (weighted) soup of run checkpoints
(`model.soup`), or an earlier stage's checkpoint with a combiner head attached
(`model.combiner_head`), a kind head or a type head trained and attached (`model.kind_head`,
`model.type_head`), or its kind head's attributes read as changes (`model.kind_head
--keep-head`). A stage's output (its soup or headed checkpoint, else its last run's
``best``) is what later stages start from (``init_from``: a stage name, or ``RUN/best`` /
``RUN/last``).

Resumable at every level: a dataset whose ``creates`` file exists is not prepared again; a run
whose folder has finished its epochs is skipped, and one interrupted resumes from its OUT/last
(`model.trainer`); a soup whose config.json exists is kept. So the same command, run again after
any interruption, continues where it stopped. Each stage states the minutes it took on the
training log's CPU, and the plan sums them.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model.checkpointing import RunFolder
from model.spelling import main as spelling_main
from project_settings import REPO_ROOT

logger = logging.getLogger(__name__)

RECIPES = REPO_ROOT / "recipes"


@dataclass
class DataSpec:
    annotations: str
    images: str
    prepare: str = ""  # command that creates the annotations ("python -m ...")
    creates: str = ""  # the file it writes last: present means prepared
    requires: str = ""  # source data outside the project it reads
    minutes: float = 0.0
    basis: str = ""


@dataclass
class FileSpec:
    """A file a run reads besides its datasets (a teacher's vectors), made once by a command."""

    path: str  # what the command writes: present means made
    prepare: str  # the command ("python -m ..."; "{root}" stands for the runs' folder)
    datasets: list[str] = field(default_factory=list)  # the recipe's datasets it reads
    minutes: float = 0.0
    basis: str = ""


@dataclass
class Run:
    out: str  # folder under the recipe root
    datasets: list[str]
    batch: int
    epochs: int
    args: str = ""  # further model.train flags, as the training log wrote them
    init_from: str | None = None  # a stage name, or RUN/best | RUN/last
    note: str = ""
    files: list[str] = field(default_factory=list)  # the recipe's files it reads (args name them)


@dataclass
class Head:
    """A head attached to a stage's checkpoint: the combiner of one of the recipe's files
    (`model.combiner_head`), a kind head trained on the recipe's datasets ``kinds_from``
    (`model.kind_head`) or a type head trained on ``types_from`` (`model.type_head`)."""

    of: str  # the stage whose checkpoint gets the head
    file: str = ""  # a combiner head: the recipe's file holding it (bench.teacher_vectors)
    weight: float = 1.0
    kinds_from: list[str] = field(default_factory=list)  # a kind head: the datasets it learns
    attributes: list[str] = field(default_factory=list)  # ... and what it reads beside kinds
    attribute_weights: list[float] = field(default_factory=list)
    hidden: int = 128  # a kind or type head's width
    types_from: list[str] = field(default_factory=list)  # a type head: the datasets it learns
    column: str = ""  # a type head's column ('': the product type; "colour": a colour head)
    save_dtype: str = ""  # a kind or type head's new checkpoint's storage ('': the stage's)
    # instead of a new head: the stage's own kind head, its attributes read as changes
    attribute_changes: list[float] = field(default_factory=list)

    @property
    def command(self) -> str:
        return ("model.type_head" if self.types_from else "model.kind_head"
                if self.kinds_from or self.attribute_changes else "model.combiner_head")

    @property
    def datasets(self) -> list[str]:
        return self.types_from or self.kinds_from


@dataclass
class Stage:
    name: str
    runs: list[Run]
    minutes: float  # measured on the training log's CPU (see basis)
    basis: str = ""
    title: str = ""
    soup: list[str] = field(default_factory=list)  # RUN/best checkpoints averaged at the end
    soup_weights: list[float] = field(default_factory=list)  # empty: a uniform mean
    head: Head | None = None  # instead of runs: an earlier stage with a head attached

    def datasets(self) -> list[str]:
        """The recipe's datasets this stage reads."""
        return [d for r in self.runs for d in r.datasets] + (
            self.head.datasets if self.head else [])

    def files(self) -> list[str]:
        """The recipe's files this stage reads."""
        return [f for r in self.runs for f in r.files] + (
            [self.head.file] if self.head and self.head.file else [])


@dataclass
class Recipe:
    name: str
    datasets: dict[str, DataSpec]
    stages: list[Stage]
    root: str = "data/recipes"
    description: str = ""
    hardware: str = ""
    reproduces: dict = field(default_factory=dict)
    files: dict[str, FileSpec] = field(default_factory=dict)

    @classmethod
    def load(cls, name_or_path: str) -> Recipe:
        """``recipes/NAME.json``, or a path to a recipe file."""
        import json

        path = Path(name_or_path)
        if not path.suffix:
            path = RECIPES / f"{name_or_path}.json"
        if not path.is_file():
            known = sorted(p.stem for p in RECIPES.glob("*.json"))
            raise ValueError(f"no recipe {name_or_path!r} (known: {', '.join(known)})")
        data = json.loads(path.read_text())
        data["datasets"] = {k: DataSpec(**v) for k, v in data["datasets"].items()}
        data["files"] = {k: FileSpec(**v) for k, v in data.get("files", {}).items()}
        data["stages"] = [Stage(**{**s, "runs": [Run(**r) for r in s.get("runs", [])],
                                   "head": Head(**s["head"]) if s.get("head") else None})
                          for s in data["stages"]]
        unknown = sorted({f for s in data["stages"] for f in s.files()} - set(data["files"]))
        if unknown:
            raise ValueError(f"recipe {path}: stages read files it does not define: "
                             f"{', '.join(unknown)}")
        return cls(**data)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ValueError(f"recipe {self.name} has no stage {name!r} "
                         f"({', '.join(s.name for s in self.stages)})")


@dataclass
class Overrides:
    """What a command line changes for this machine or a quick check, never the recipe."""

    root: Path | None = None  # where the runs go (default: the recipe's root)
    datasets: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (ann, images)
    extra: list[str] = field(default_factory=list)  # model.train flags added to every run


def _repo_path(path: str) -> str:
    """A recipe's relative paths are taken from the repository root."""
    return path if Path(path).is_absolute() else os.path.normpath(REPO_ROOT / path)


def _run(command: str) -> None:
    """A recipe's command, from the repository root ("python" is this interpreter)."""
    argv = shlex.split(command)
    argv[0] = sys.executable if argv[0] == "python" else argv[0]
    subprocess.run(argv, cwd=REPO_ROOT, check=True)


def _shown(argv: Sequence[str]) -> str:
    """A command line as typed from the repository root (paths under it made relative)."""
    def short(arg: str) -> str:
        parts = arg.split(",")
        if all(os.path.isabs(p) for p in parts):
            parts = [os.path.relpath(p, REPO_ROOT) for p in parts]
        return ",".join(parts)
    return shlex.join(short(a) for a in argv)


class Chain:
    """A recipe with its overrides: resolves paths, tells what is done, runs what is not."""

    def __init__(self, recipe: Recipe, overrides: Overrides | None = None):
        self.recipe, self.over = recipe, overrides or Overrides()
        self.root = self.over.root or Path(_repo_path(recipe.root))

    # ------------------------------------------------------------------ paths
    def output(self, stage: Stage) -> Path:
        """A stage's checkpoint: its soup or headed checkpoint, else its last run's best."""
        if stage.soup or stage.head:
            return self.root / stage.name
        return self.root / stage.runs[-1].out / "best"

    def checkpoint(self, ref: str) -> Path:
        """``init_from`` / soup entries: a stage name, or RUN/best | RUN/last under the root."""
        names = {s.name for s in self.recipe.stages}
        return self.output(self.recipe.stage(ref)) if ref in names else self.root / ref

    def data(self, name: str) -> tuple[str, str]:
        if name in self.over.datasets:
            return self.over.datasets[name]
        spec = self.recipe.datasets[name]
        return _repo_path(spec.annotations), _repo_path(spec.images)

    def train_argv(self, run: Run) -> list[str]:
        """The `python -m model.train` arguments of a run (extra flags last: they win)."""
        annotations, images = zip(*(self.data(d) for d in run.datasets), strict=True)
        init = ["--init-from", str(self.checkpoint(run.init_from))] if run.init_from else []
        return ["--annotations", ",".join(annotations), "--images", ",".join(images),
                "--batch-size", str(run.batch), "--epochs", str(run.epochs),
                "--out", str(self.root / run.out), *init, *shlex.split(run.args),
                *self.over.extra]

    # ------------------------------------------------------------------ status
    def run_status(self, run: Run) -> tuple[int, int]:
        """(epochs done in the run's folder, epochs this run trains to)."""
        from model.train import parse_args

        cfg = parse_args(self.train_argv(run))
        return RunFolder(cfg.out).completed_epochs(), min(cfg.epochs,
                                                          cfg.stop_after or cfg.epochs)

    def stage_done(self, stage: Stage) -> bool:
        if stage.soup or stage.head:
            return (self.output(stage) / "config.json").is_file()
        done, wanted = self.run_status(stage.runs[-1])
        return done >= wanted

    def dataset_ready(self, name: str) -> bool:
        spec = self.recipe.datasets[name]
        return name in self.over.datasets or not spec.creates or Path(
            _repo_path(spec.creates)).is_file()

    def file_ready(self, name: str) -> bool:
        return Path(_repo_path(self.recipe.files[name].path)).is_file()

    # ------------------------------------------------------------------ running
    def make_file(self, name: str) -> None:
        """Make a file of the recipe with its command (once), its datasets first."""
        if self.file_ready(name):
            return
        spec = self.recipe.files[name]
        for dataset in spec.datasets:
            self.prepare(dataset)
        logger.info("making %s: %s", name, self.file_command(name))
        _run(self.file_command(name))

    def file_command(self, name: str) -> str:
        return self.recipe.files[name].prepare.replace("{root}", str(self.root))

    def prepare(self, name: str) -> None:
        """Create a dataset's annotations with its recipe command (once)."""
        if self.dataset_ready(name):
            return
        spec = self.recipe.datasets[name]
        if spec.requires and not Path(_repo_path(spec.requires)).exists():
            raise FileNotFoundError(
                f"dataset {name} is made from {spec.requires}, which is not here (source data "
                "outside the project); put it there or pass --dataset "
                f"{name}=ANNOTATIONS:IMAGES")
        logger.info("preparing %s: %s", name, spec.prepare)
        _run(spec.prepare)

    def train(self, run: Run) -> None:
        """One training run, unless its folder has already finished it."""
        from model.train import parse_args
        from model.trainer import Trainer

        done, wanted = self.run_status(run)
        if done >= wanted:
            logger.info("%s: done (%d epochs)", run.out, done)
            return
        for name in run.datasets:
            self.prepare(name)
        for name in run.files:
            self.make_file(name)
        if run.init_from and done == 0 and not self.checkpoint(run.init_from).is_dir():
            raise FileNotFoundError(f"{run.out} starts from {self.checkpoint(run.init_from)}, "
                                    "which does not exist: run the stages before it")
        logger.info("%s: %s", run.out, f"resuming after epoch {done}" if done else "starting")
        Trainer(parse_args(self.train_argv(run))).fit()

    def soup(self, stage: Stage) -> None:
        from model.soup import SoupConfig, make_soup

        if (self.output(stage) / "config.json").is_file():
            logger.info("%s: soup done", stage.name)
            return
        make_soup(SoupConfig(checkpoints=[str(self.checkpoint(c)) for c in stage.soup],
                             out=str(self.output(stage)), weights=stage.soup_weights))

    def attach_head(self, stage: Stage) -> None:
        if self.stage_done(stage):
            logger.info("%s: head attached", stage.name)
            return
        start = self.checkpoint(stage.head.of)
        if not start.is_dir():
            raise FileNotFoundError(f"{stage.name} attaches a head to {start}, which does not "
                                    "exist: run the stages before it")
        command = stage.head.command
        if command == "model.combiner_head":
            self.make_file(stage.head.file)
        for name in stage.head.datasets:
            self.prepare(name)
        attach = importlib.import_module(command).main
        attach(self.head_argv(stage))  # the command the plan shows

    def head_argv(self, stage: Stage) -> list[str]:
        """The arguments of the head's command (``Head.command``), which both the plan and the
        run use."""
        head = stage.head
        where = ["--checkpoint", str(self.checkpoint(head.of))]
        if head.attribute_changes:
            return [*where, "--out", str(self.output(stage)), "--keep-head",
                    "--attribute-changes", *(f"{a:g}" for a in head.attribute_changes)]
        if head.datasets:
            where += ["--datasets", *(":".join(self.data(d)) for d in head.datasets),
                      "--hidden", str(head.hidden)]
            if head.attributes:
                where += ["--attributes", *head.attributes, "--attribute-weights",
                          *(f"{w:g}" for w in head.attribute_weights)]
            if head.column:
                where += ["--column", head.column]
            if head.save_dtype:
                where += ["--save-dtype", head.save_dtype]
        else:
            where += ["--combiner", _repo_path(self.recipe.files[head.file].path)]
        return [*where, "--out", str(self.output(stage)), "--weight", f"{head.weight:g}"]

    def dataset_specs(self) -> list[str]:
        """Every dataset of the recipe as ``ANNOTATIONS:IMAGES``."""
        return [":".join(self.data(name)) for name in self.recipe.datasets]

    def spelling_argv(self) -> list[str]:
        """`python -m model.spelling`'s arguments: the final checkpoint mends typos against the
        caption words of every dataset of the recipe (they are in no stage's meta)."""
        return ["--checkpoint", str(self.output(self.recipe.stages[-1])), "--datasets",
                *self.dataset_specs()]

    def run_stage(self, stage: Stage) -> Path:
        for run in stage.runs:
            self.train(run)
        if stage.soup:
            self.soup(stage)
        if stage.head:
            self.attach_head(stage)
        return self.output(stage)

    def minutes(self, stages: Sequence[Stage], left: bool = False) -> float:
        """Minutes of ``stages`` and of preparing their datasets and files (``left``: not yet
        done)."""
        names = dict.fromkeys(d for s in stages for d in s.datasets())
        data = [self.recipe.datasets[n].minutes for n in names
                if not (left and self.dataset_ready(n))]
        files = [self.recipe.files[n].minutes for n in self._files(stages)
                 if not (left and self.file_ready(n))]
        return sum(data) + sum(files) + sum(s.minutes for s in stages
                                            if not (left and self.stage_done(s)))

    @staticmethod
    def _files(stages: Sequence[Stage]) -> list[str]:
        return list(dict.fromkeys(f for s in stages for f in s.files()))

    def plan(self, stages: Sequence[Stage]) -> str:
        """Every command of ``stages`` with its state, and the hours they take."""
        lines = [textwrap.fill(f"recipe {self.recipe.name}: {self.recipe.description}", 100),
                 "", f"runs under {_shown([str(self.root)])}; minutes as measured on "
                 f"{self.recipe.hardware}", ""]
        for name in dict.fromkeys(d for s in stages for d in s.datasets()):
            spec = self.recipe.datasets[name]
            state = "ready" if self.dataset_ready(name) else f"to prepare (~{spec.minutes:g} min)"
            lines.append(f"dataset {name}: {state}: {spec.prepare}")
        for name in self._files(stages):
            spec = self.recipe.files[name]
            state = "ready" if self.file_ready(name) else f"to make (~{spec.minutes:g} min)"
            lines.append(f"file {name}: {state}: {self.file_command(name)}")
        for stage in stages:
            state = "done" if self.stage_done(stage) else "to do"
            lines += ["", f"{stage.name} ({stage.title}): {state}, {stage.minutes:g} min "
                      f"[{stage.basis}]"]
            for run in stage.runs:
                done, wanted = self.run_status(run)
                argv = self.train_argv(run)  # positional form: ANNOTATIONS IMAGES BATCH EPOCHS
                lines.append(f"  [{done}/{wanted} epochs] bash train.sh "
                             + _shown([argv[1], argv[3], argv[5], argv[7], *argv[8:]]))
            if stage.soup:
                lines.append("  python -m model.soup " + _shown(
                    ["--checkpoints", *map(str, map(self.checkpoint, stage.soup)),
                     *(["--weights", *map(str, stage.soup_weights)] if stage.soup_weights
                       else []),
                     "--out", str(self.output(stage))]))
            if stage.head:
                lines.append(f"  python -m {stage.head.command} "
                             + _shown(self.head_argv(stage)))
        if stages and stages[-1] is self.recipe.stages[-1]:
            lines += ["", "the final checkpoint's caption words (typos are mended against them):",
                      "  python -m model.spelling " + _shown(self.spelling_argv())]
        lines += ["", f"about {self.minutes(stages) / 60:.1f} h in all on that CPU; "
                  f"{self.minutes(stages, left=True) / 60:.1f} h left"]
        return "\n".join(lines)


def install(source: Path, target: Path) -> None:
    """Copy a checkpoint's two files (config.json, weights.safetensors) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "weights.safetensors"):
        shutil.copy2(source / name, target / name)


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, Overrides]:
    p = argparse.ArgumentParser(prog="python -m model.recipe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", help="recipe name (recipes/NAME.json) or path")
    p.add_argument("--stages", nargs="+", help="run only these stages (default: all, in order)")
    p.add_argument("--root", type=Path, help="folder of the runs (default: the recipe's)")
    p.add_argument("--dataset", action="append", default=[], metavar="NAME=ANNOTATIONS:IMAGES",
                   help="use other data for a dataset of the recipe (not prepared)")
    p.add_argument("--set", default="", metavar="FLAGS",
                   help="model.train flags added to every run, e.g. '--device cuda' or, for a "
                   "quick check, '--steps-per-epoch 2 --epochs 1'")
    p.add_argument("--install", type=Path, metavar="DIR",
                   help="copy the final checkpoint here (e.g. checkpoints/demo)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = p.parse_args(argv)
    datasets = {}
    for item in args.dataset:
        name, _, paths = item.partition("=")
        annotations, _, images = paths.partition(":")
        if not (name and annotations and images):
            p.error(f"--dataset {item!r}: expected NAME=ANNOTATIONS:IMAGES")
        datasets[name] = (annotations, images)
    return args, Overrides(root=args.root, datasets=datasets, extra=shlex.split(args.set))


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args, overrides = parse_args(argv)
    recipe = Recipe.load(args.recipe)
    chain = Chain(recipe, overrides)
    stages = [recipe.stage(n) for n in args.stages] if args.stages else recipe.stages
    print(chain.plan(stages), flush=True)
    if args.dry_run:
        return
    for stage in stages:
        logger.info("stage %s: %s", stage.name, stage.title)
        output = chain.run_stage(stage)
    if stages[-1] is recipe.stages[-1]:
        spelling_main(chain.spelling_argv())
    print(f"recipe {recipe.name}: {output} is the final checkpoint", flush=True)
    if args.install:
        install(output, args.install)
        print(f"installed into {args.install}")


if __name__ == "__main__":
    main()
