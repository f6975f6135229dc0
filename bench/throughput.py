"""Throughput and start-up: indexing speed, app cold start, training time per epoch.

    source scripts/env.sh && .venv/bin/python -m bench.throughput --checkpoint checkpoints/demo

1. Indexing (bench.index_throughput.measure): N generated 256 px JPEGs through
   indexer.build.build_index end to end (decode workers, model, thumbnails, upserts into a
   fresh embedded SecantusDB), next to the frozen backbone's raw forward images/s.
2. App cold start with a 100k-vector catalog (demo vectors replicated, bench.catalog_vectors):
   a fresh Python process runs the app's own path (bench.cold_start_child: app.resources
   .load_model -> app.resources.open_index -> app.pipeline.run_query) and we time process start
   -> checkpoint loaded -> vectors in FAISS -> first answer. Repeated; the OS file cache is
   warm after the first run, as it is for any restart.
3. Training time per epoch with and without the feature cache: a fixed number of
   model.train steps (the demo checkpoint's architecture and batch size, on the same
   datasets) with backbone features looked up from the cache, then the same steps computing
   the backbone on the fly for every batch's reference and target images. Per-epoch figures
   are EXTRAPOLATED from those steps to one pass over the training triplets.
Prints a table and writes bench/results/throughput/<fingerprint>.json (throughput_cold/ for a
cold-start-only run).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from bench import index_throughput
from bench._common import (
    REPO_ROOT,
    RESULTS,
    machine_line,
    run_benchmark,
    table,
    temporary_server,
    under_project_allocator,
)
from bench.catalog_vectors import encode_catalog, populate
from imaging import load_image
from indexer import CatalogStore, connect
from model import ModelConfig, load_retriever
from model.train import TrainConfig, Trainer
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class ThroughputConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    parts: list[str] = field(default_factory=lambda: ["index", "cold", "train"])
    # indexing
    index_images: int = 512
    index_size: int = 256  # px, the floor's image size
    index_batch: int = 32
    index_workers: list[int] = field(default_factory=lambda: [2])
    # cold start
    catalog: str = "data/demo_catalog"  # seed of the replicated catalog and the upload
    cold_vectors: list[int] = field(default_factory=lambda: [100_000])  # add 1_000_000
    cold_runs: int = 3  # starts with the snapshot, per size
    cold_runs_without: int = 1  # starts without snapshots, per size
    cold_without_up_to: int = 100_000  # larger sizes: only the first start (load + write)
    # training
    datasets: list[str] | None = None  # 'ANN:IMAGES'; default: the checkpoint's training data
    train_steps: int = 10  # timed steps per variant (after warm-up steps)
    warmup_steps: int = 2
    batch_size: int | None = None  # default: the checkpoint's training batch size
    workers: int = 2  # decode processes for the on-the-fly variant
    threads: int | None = None  # torch threads for indexing and training; None: torch's default
    # (2 here), what `python -m indexer build` and `python -m model.train` run with
    cache_dir: str = FEATURE_CACHE_DIR
    out_dir: str = str(RESULTS)


# ------------------------------------------------------------------------------ cold start


COLD_VARIANTS = ("no snapshot", "first start, writes the snapshot", "with snapshot")


def cold_start(retriever, cfg: ThroughputConfig) -> dict:
    """For each catalog size: populate the checkpoint's vectors, then time fresh app processes
    without snapshots (INDEX_SNAPSHOT_DIR=off), on the first start with an empty snapshot
    folder (loads from MongoDB and writes the snapshot) and with the snapshot."""
    seed = encode_catalog(retriever, Path(cfg.catalog), cfg.cache_dir or None)
    upload = seed.image_paths[len(seed) // 2]
    out = {"sizes": {}}
    with temporary_server(cache_size="1G") as server:
        for n in cfg.cold_vectors:
            with tempfile.TemporaryDirectory(prefix="bench-cold-") as data_dir:
                client = connect(server.uri, timeout_ms=600_000, directConnection=True)
                store = CatalogStore.from_collection(client["bench_cold"][f"items_{n}"])
                insert = populate(store, seed, n, retriever.fingerprint,
                                  thumbnails=n <= 100_000)
                client.close()
                env = {**os.environ, "MONGO_URI": f"{server.uri}/?directConnection=true",
                       "DB_NAME": "bench_cold", "COLLECTION_NAME": f"items_{n}",
                       "CHECKPOINT": str(Path(cfg.checkpoint).resolve()), "DATA_DIR": data_dir,
                       "CATALOG_DIR": str(Path(cfg.catalog).resolve()),
                       "PYTHONPATH": str(REPO_ROOT)}
                plan = [("no snapshot", {"INDEX_SNAPSHOT_DIR": "off"}, cfg.cold_runs_without),
                        ("first start, writes the snapshot", {}, 1),
                        ("with snapshot", {}, cfg.cold_runs)]
                if n > cfg.cold_without_up_to:  # the first start is the same load plus a write
                    plan = plan[1:]
                runs = [dict(child_run(upload, {**env, **extra}), variant=variant)
                        for variant, extra, k in plan for _ in range(k)]
                out["sizes"][str(n)] = {"vectors": n, "insert": insert, "runs": runs,
                                        "median_to_first_answer_s": {
                                            v: statistics.median(r["to_first_answer_s"]
                                                                 for r in runs
                                                                 if r["variant"] == v)
                                            for v in COLD_VARIANTS
                                            if any(r["variant"] == v for r in runs)}}
                client = connect(server.uri, directConnection=True)
                client["bench_cold"].drop_collection(f"items_{n}")
                client["bench_cold"].drop_collection(f"items_{n}_builds")
                client.close()
    return out


def child_run(upload: Path, env: dict) -> dict:
    """One fresh app process (bench.cold_start_child) timed from spawn to first answer."""
    cmd = [sys.executable, "-m", "bench.cold_start_child", "--image", str(upload)]
    spawned = time.time()
    proc = subprocess.run(cmd, env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cold start failed:\n{proc.stderr[-3000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    m = child["marks"]
    run = {"to_first_answer_s": m["answered"] - spawned,
           "interpreter_s": m["process_main"] - spawned,
           "imports_s": m["app_imported"] - m["process_main"],
           "load_model_s": m["model_loaded"] - m["app_imported"],
           "load_index_s": m["index_loaded"] - m["model_loaded"],
           "first_query_s": m["answered"] - m["index_loaded"],
           "index_size": child["index_size"], "index_kind": child["index_kind"],
           "index_source": child.get("index_source"), "engine": child.get("engine"),
           "results": child["results"]}
    logger.info("cold start (%s, %d vectors %s): %.1f s to first answer",
                run["index_source"], run["index_size"], run["index_kind"],
                run["to_first_answer_s"])
    return run


# ------------------------------------------------------------------------------ training


class _TripletImages(Dataset):
    """Decoded + preprocessed reference and target images of triplets (for DataLoader workers)."""

    def __init__(self, triplets, paths: dict[str, Path], preprocess):
        self.triplets, self.paths, self.preprocess = triplets, paths, preprocess

    def __len__(self) -> int:
        return len(self.triplets)

    def __getitem__(self, i: int):
        t = self.triplets[i]
        return (self.preprocess(load_image(self.paths[t.candidate])),
                self.preprocess(load_image(self.paths[t.target])))


def _stack(items):
    return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


def training_config(cfg: ThroughputConfig, out: str) -> tuple[TrainConfig, int | None]:
    """The checkpoint's own training configuration (architecture, batch, data) for K steps,
    and the steps per epoch its training run used (None when it made full passes)."""
    record = json.loads((Path(cfg.checkpoint) / "config.json").read_text())
    trained = dict(record.get("meta", {}).get("train") or {})
    model = ModelConfig.from_dict(record["model"])
    known = set(TrainConfig.__dataclass_fields__)
    values = {k: v for k, v in trained.items() if k in known and k != "model"}
    if cfg.datasets:
        values["annotations"] = [d.partition(":")[0] for d in cfg.datasets]
        values["images"] = [d.partition(":")[2] or str(Path(d) / "images") for d in cfg.datasets]
    if not values.get("annotations"):
        raise ValueError(f"{cfg.checkpoint} does not record its training data: pass --datasets")
    if cfg.batch_size:
        values["batch_size"] = cfg.batch_size
    values["demo_steps_per_epoch"] = trained.get("steps_per_epoch")
    values.update(out=out, resume=False, epochs=1, cache_dir=cfg.cache_dir, workers=cfg.workers,
                  steps_per_epoch=cfg.warmup_steps + cfg.train_steps, model=model)
    demo_steps = values.pop("demo_steps_per_epoch")
    return TrainConfig(**values), demo_steps


def _on_the_fly_batch(trainer: Trainer, triplets, ref_x, tar_x) -> tuple[dict, float]:
    """The batch TripletBatches.batch would build, with features computed by the backbone now."""
    enc = trainer.retriever.encoder
    t0 = time.perf_counter()
    ref_whole, ref_crop = enc(ref_x)
    tar_whole, tar_crop = enc(tar_x)
    backbone_s = time.perf_counter() - t0
    return trainer.batches.assemble(triplets, ref_whole, ref_crop, tar_whole, tar_crop), backbone_s


def training_time(cfg: ThroughputConfig) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as out:
        tcfg, demo_steps = training_config(cfg, out)
        t0 = time.perf_counter()
        trainer = Trainer(tcfg)
        setup_s = time.perf_counter() - t0
        trainer.retriever.net.train()
        b, steps = tcfg.batch_size, cfg.train_steps
        order = list(range(len(trainer.batches.triplets)))
        random.Random(0).shuffle(order)
        chunks = [[trainer.batches.triplets[k] for k in order[i * b:(i + 1) * b]]
                  for i in range(cfg.warmup_steps + steps)]

        cached = []
        for i, triplets in enumerate(chunks):
            t0 = time.perf_counter()
            trainer.step(trainer.batches.batch(triplets))
            if i >= cfg.warmup_steps:
                cached.append(time.perf_counter() - t0)

        paths = {}
        for d in trainer.datasets:
            paths.update(d.train.image_paths)
        flat = [t for c in chunks for t in c]
        loader = DataLoader(_TripletImages(flat, paths, trainer.retriever.preprocess),
                            batch_size=b, num_workers=tcfg.workers, collate_fn=_stack,
                            prefetch_factor=2 if tcfg.workers else None)
        fly, backbone = [], []
        t0 = time.perf_counter()
        for i, (triplets, (ref_x, tar_x)) in enumerate(zip(chunks, loader, strict=True)):
            batch, backbone_s = _on_the_fly_batch(trainer, triplets, ref_x, tar_x)
            trainer.step(batch)
            now = time.perf_counter()
            if i >= cfg.warmup_steps:  # includes waiting for the decode workers
                fly.append(now - t0)
                backbone.append(backbone_s)
            t0 = now
        images = len({i for d in trainer.datasets for s in (d.train, d.val)
                      for i in s.image_paths})
    steps_per_epoch = len(trainer.batches)
    step_cached, step_fly = statistics.mean(cached), statistics.mean(fly)
    per_image = statistics.mean(backbone) / (2 * b)
    return {"datasets": tcfg.annotations, "batch_size": b, "timed_steps": steps,
            "train_triplets": len(trainer.batches.triplets), "steps_per_epoch": steps_per_epoch,
            "setup_s": setup_s, "step_s_cached": step_cached, "step_s_on_the_fly": step_fly,
            "backbone_share_of_on_the_fly_step": statistics.mean(backbone) / step_fly,
            "epoch_s_cached_extrapolated": step_cached * steps_per_epoch,
            "epoch_s_on_the_fly_extrapolated": step_fly * steps_per_epoch,
            "speedup": step_fly / step_cached, "unique_images": images,
            "cache_fill_s_extrapolated": per_image * images,
            "triplets_per_s_cached": b / step_cached, "triplets_per_s_on_the_fly": b / step_fly,
            "demo_run_steps_per_epoch": demo_steps, "torch_threads": torch.get_num_threads()}


# ------------------------------------------------------------------------------ report


def format_report(r: dict) -> str:
    rows = []
    if "index" in r:
        ix = r["index"]
        for name, value, note in index_throughput.rows_of(ix):
            rows.append(("indexing", name, f"{value} img/s", note))
        best = max(b["vs_plain_lite0"] for b in ix["builds"])
        rows.append(("indexing", "floor: end to end >= 1.2x plain Lite0 batch forward",
                     f"{best:.2f}x", "met" if best >= 1.2 else "NOT met"))
    if "cold" in r:
        for n, c in r["cold"]["sizes"].items():
            for run in c["runs"]:
                rows.append((f"cold start {int(n):,}", f"{run['variant']}: process start -> "
                             "first answer", f"{run['to_first_answer_s']:.1f} s",
                             f"python {run['interpreter_s']:.1f} + imports "
                             f"{run['imports_s']:.1f} + model {run['load_model_s']:.1f} "
                             f"({run['engine']}) + index {run['load_index_s']:.1f} "
                             f"({run['index_kind']} from the {run['index_source']}) + query "
                             f"{run['first_query_s']:.2f} s"))
            for variant, median in c["median_to_first_answer_s"].items():
                rows.append((f"cold start {int(n):,}", f"median, {variant}", f"{median:.1f} s",
                             ""))
    if "train" in r:
        t = r["train"]
        rows += [
            ("training", f"step, features from cache (batch {t['batch_size']})",
             f"{t['step_s_cached']:.2f} s", f"{t['triplets_per_s_cached']:.0f} triplets/s"),
            ("training", "step, backbone on the fly", f"{t['step_s_on_the_fly']:.2f} s",
             f"{t['triplets_per_s_on_the_fly']:.0f} triplets/s; backbone "
             f"{t['backbone_share_of_on_the_fly_step']:.0%} of the step"),
            ("training", "epoch with cache (extrapolated)",
             f"{t['epoch_s_cached_extrapolated'] / 60:.1f} min",
             f"{t['steps_per_epoch']} steps = {t['train_triplets']:,} triplets"),
            ("training", "epoch without cache (extrapolated)",
             f"{t['epoch_s_on_the_fly_extrapolated'] / 60:.1f} min",
             f"{t['speedup']:.1f}x slower than with the cache"),
            *([("training", "demo run's epoch with / without cache (extrapolated)",
                f"{t['step_s_cached'] * t['demo_run_steps_per_epoch'] / 60:.1f} / "
                f"{t['step_s_on_the_fly'] * t['demo_run_steps_per_epoch'] / 60:.1f} min",
                f"{t['demo_run_steps_per_epoch']} steps, as the demo checkpoint was trained")]
              if t.get("demo_run_steps_per_epoch") else []),
            ("training", "one-time cache fill (extrapolated)",
             f"{t['cache_fill_s_extrapolated'] / 60:.1f} min",
             f"{t['unique_images']:,} train+val images, backbone only"),
        ]
    return table(rows, ("part", "measure", "value", "note"))


def run(cfg: ThroughputConfig) -> dict:
    report: dict = {"config": asdict(cfg)}
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    retriever = None
    if "index" in cfg.parts or "cold" in cfg.parts:
        retriever = load_retriever(cfg.checkpoint)
        report["fingerprint"] = retriever.fingerprint
    if "index" in cfg.parts:
        report["index"] = index_throughput.measure(retriever, cfg.index_images, cfg.index_size,
                                                   cfg.index_batch, tuple(cfg.index_workers))
        report["index"]["floor_1.2x_plain_lite0_met"] = max(
            b["vs_plain_lite0"] for b in report["index"]["builds"]) >= 1.2
    if "cold" in cfg.parts:
        report["cold"] = cold_start(retriever, cfg)
    if "train" in cfg.parts:
        report["train"] = training_time(cfg)
    return report


def parse_args(argv: Sequence[str] | None) -> ThroughputConfig:
    d = ThroughputConfig()
    p = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=d.checkpoint)
    p.add_argument("--parts", nargs="+", default=d.parts, choices=["index", "cold", "train"])
    p.add_argument("--index-images", type=int, default=d.index_images)
    p.add_argument("--index-size", type=int, default=d.index_size)
    p.add_argument("--index-workers", type=int, nargs="+", default=d.index_workers)
    p.add_argument("--catalog", default=d.catalog)
    p.add_argument("--cold-vectors", type=int, nargs="+", default=d.cold_vectors)
    p.add_argument("--cold-runs", type=int, default=d.cold_runs)
    p.add_argument("--cold-runs-without", type=int, default=d.cold_runs_without)
    p.add_argument("--cold-without-up-to", type=int, default=d.cold_without_up_to)
    p.add_argument("--datasets", nargs="+", metavar="ANN[:IMAGES]")
    p.add_argument("--train-steps", type=int, default=d.train_steps)
    p.add_argument("--warmup-steps", type=int, default=d.warmup_steps)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--workers", type=int, default=d.workers)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    p.add_argument("--cache-dir", default=d.cache_dir)
    p.add_argument("--out-dir", default=d.out_dir)
    a = p.parse_args(argv)
    return ThroughputConfig(
        checkpoint=a.checkpoint, parts=a.parts, index_images=a.index_images,
        index_size=a.index_size, index_workers=a.index_workers, catalog=a.catalog,
        cold_vectors=a.cold_vectors, cold_runs=a.cold_runs,
        cold_runs_without=a.cold_runs_without, cold_without_up_to=a.cold_without_up_to,
        datasets=a.datasets,
        train_steps=a.train_steps, warmup_steps=a.warmup_steps, batch_size=a.batch_size,
        workers=a.workers, threads=a.threads, cache_dir=a.cache_dir, out_dir=a.out_dir)


def main(argv: Sequence[str] | None = None) -> dict:
    # a cold-start-only run keeps its own file, so the training figures of throughput.json stay
    name = "throughput_cold" if parse_args(argv).parts == ["cold"] else "throughput"
    cfg, report, path = run_benchmark(name, argv, parse_args, run, module="bench.throughput")
    print(f"\n$ {report['command']}\n{machine_line()}\ncheckpoint {cfg.checkpoint}; "
          f"total {math.ceil(report['seconds'])} s\n")
    print(format_report(report))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    # the plain Lite0 yardstick runs under the allocator the project runs with
    under_project_allocator("bench.throughput", sys.argv[1:])
    main()
