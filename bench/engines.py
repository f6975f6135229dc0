"""Inference engines side by side: speed of each part and recall on pixels (model.engines).

    source scripts/env.sh && .venv/bin/python -m bench.engines --checkpoint checkpoints/demo

Speed, interleaved round by round so that drift on this shared machine hits every variant alike:
1. one query on one torch thread (as the app runs): a plain eager timm ``tf_efficientnet_lite0``
   forward of one 224 px image (NCHW, the issue's yardstick), then per engine the backbone, the
   garment-box + RoI tokens, the reference block, and ``encode_query`` end to end on real
   demo val queries (image + feedback), preprocessing included;
2. a batch of 32 on two threads (as the indexer runs): the plain Lite0 forward again, per
   engine the backbone and the whole target encoder (backbone + tokens + target block).
Engine preparation is timed too: export with an empty cache, then a start with the cache.

Accuracy: for every engine, the val images of each dataset go through that engine's backbone
from pixels (not through the feature cache, so the backbone's own numerics count), then its
reference and target blocks; ``model.evaluate.evaluate_split`` gives R@10 / R@50, compared
with eager fp32 (the project's path before this benchmark). ``compile`` is timed only:
Inductor computes the same fp32 graph as eager.
Prints tables and writes bench/results/engines_speed/<fingerprint>.json (and
engines_accuracy/, or engines/ when both parts run).
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import timm
import torch

from bench._common import (
    RESULTS,
    machine_line,
    percentiles,
    run_benchmark,
    table,
    under_project_allocator,
)
from dataprep import eval_caption, load_fashioniq
from imaging import decode_batches, load_image
from model import load_retriever
from model.engines import cache_dir_for, make_engine
from model.evaluate import evaluate_split, model_encoders
from model.feature_cache import FeatureBank
from project_settings import DEFAULT_CHECKPOINT

logger = logging.getLogger(__name__)

DATASETS = ["demo:data/demo_catalog",
            "products:data/products:../shared/data/fashion-products/images",
            "hm:data/hm:../shared/data/hm/images"]


@dataclass
class EnginesConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    engines: list[str] = field(default_factory=lambda: ["eager", "onnx", "onnx-int8"])
    accuracy_engines: list[str] = field(default_factory=lambda: ["eager", "onnx",
                                                                 "onnx-int8"])
    datasets: list[str] = field(default_factory=lambda: list(DATASETS))  # NAME:ANN[:IMAGES]
    queries: int = 60  # single queries timed per engine (rounds)
    batch: int = 32
    batch_rounds: int = 8
    batch_threads: int = 2  # the indexer's torch threads here
    catalog: str = "data/demo_catalog"  # where the timed queries come from
    parts: list[str] = field(default_factory=lambda: ["speed", "accuracy"])
    out_dir: str = str(RESULTS)

    @property
    def result_name(self) -> str:
        """engines.json for a full run; engines_speed.json / engines_accuracy.json for one part
        (accuracy does not depend on the load, so it may run while the machine is busy)."""
        return "engines" if set(self.parts) >= {"speed", "accuracy"} else f"engines_{self.parts[0]}"


@contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def plain_lite0() -> torch.nn.Module:
    """The yardstick: timm's tf_efficientnet_lite0 as anyone would run it (eager, NCHW, with
    its classifier). Random weights: the time of a forward does not depend on them."""
    return timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()


def export_files(folder: Path) -> dict[str, int]:
    """Exported engine files in a cache folder, with their modification times (ns)."""
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.onnx")}


def timed(fn, *args, **kwargs) -> float:
    return timed_call(fn, *args, **kwargs)[0]


def timed_call(fn, *args, **kwargs) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def query_samples(cfg: EnginesConfig, n: int) -> list[tuple]:
    root = Path(cfg.catalog)
    split = load_fashioniq(root, root / "images", "val")
    picks = random.Random(0).sample(split.triplets, min(n, len(split.triplets)))
    return [(load_image(split.image_paths[t.candidate]), eval_caption(t.captions)) for t in picks]


def build_engines(retriever, names: Sequence[str], cache_dir: Path) -> tuple[dict, dict]:
    """Engine objects (made under the current torch thread count) and their start-up cost."""
    engines, prep = {}, {}
    for name in names:
        t0 = time.perf_counter()
        engines[name] = make_engine(retriever, name, cache_dir)
        prep[name] = time.perf_counter() - t0
        if engines[name].name != name:
            raise RuntimeError(f"engine {name} fell back to {engines[name].name}")
    return engines, prep


def single_query_speed(retriever, engines: dict, cfg: EnginesConfig) -> dict:
    """Per-part and end-to-end single-query times on one thread, interleaved by round."""
    samples = query_samples(cfg, cfg.queries)
    lite0 = plain_lite0()
    size = retriever.cfg.image_size
    x224 = torch.rand(1, 3, size, size)
    times: dict[str, dict[str, list[float]]] = {"plain": {"lite0_forward": []}}
    times["common"] = {"preprocess": []}
    first: dict[str, float] = {}  # the first query of each engine (compile pays Inductor here)
    for name in engines:
        times[name] = {k: [] for k in ("backbone", "tokens", "reference", "encode_query")}
    with torch.inference_mode():
        for k in range(-3, len(samples)):  # 3 warm-up rounds
            image, text = samples[max(k, 0)]
            keep = k >= 0
            t = timed(lite0, x224)
            if keep:
                times["plain"]["lite0_forward"].append(t)
            x = retriever.preprocess(image)[None]
            t = timed(retriever.preprocess, image)
            if keep:
                times["common"]["preprocess"].append(t)
            tok = retriever.tokenize([text])
            for name, engine in engines.items():
                retriever.engine = engine
                t_bb, grid = timed_call(engine.grid, x)
                t_tok, (whole, crop) = timed_call(retriever.encoder.tokens, x, grid)
                t_ref = timed(engine.reference, whole, crop, **tok)
                t_q = timed(retriever.encode_query, image, text)
                first.setdefault(name, t_bb + t_tok + t_ref + t_q)
                if keep:
                    for part, value in (("backbone", t_bb), ("tokens", t_tok),
                                        ("reference", t_ref), ("encode_query", t_q)):
                        times[name][part].append(value)
    out = {group: {part: percentiles(v) for part, v in parts.items()}
           for group, parts in times.items()}
    for name, seconds in first.items():
        out[name]["first_call_s"] = seconds
    return out


def batch_speed(retriever, engines: dict, cfg: EnginesConfig) -> dict:
    """Images/s at batch ``cfg.batch`` on ``cfg.batch_threads`` threads, interleaved."""
    lite0 = plain_lite0()
    size = retriever.cfg.image_size
    x = torch.rand(cfg.batch, 3, size, size)
    times: dict[str, dict[str, list[float]]] = {"plain": {"lite0_forward": []}}
    for name in engines:
        times[name] = {"backbone": [], "target_encoder": []}
    with torch.inference_mode():
        for k in range(-1, cfg.batch_rounds):
            t = timed(lite0, x)
            if k >= 0:
                times["plain"]["lite0_forward"].append(t)
            for name, engine in engines.items():
                retriever.engine = engine
                t_bb = timed(engine.grid, x)
                t_enc = timed(retriever.encode_target_tensors, x)
                if k >= 0:
                    times[name]["backbone"].append(t_bb)
                    times[name]["target_encoder"].append(t_enc)
    return {group: {part: {"images_per_s": cfg.batch / float(np.median(v)),
                           "median_s": float(np.median(v))} for part, v in parts.items()}
            for group, parts in times.items()}


def pixel_bank(retriever, image_paths: dict[str, Path], batch: int) -> FeatureBank:
    """Backbone tokens of every image computed from pixels by the retriever's engine."""
    ids = list(image_paths)
    loader = decode_batches([image_paths[i] for i in ids], retriever.preprocess, batch, 1,
                            thumbnails=False)
    whole, crop, index, failed = [], [], {}, {}
    for b in loader:
        for pos, err in b.failed:
            failed[ids[pos]] = err
        if b.tensors is None:
            continue
        w, c = retriever.image_tokens(b.tensors)
        for pos in b.ok:
            index[ids[pos]] = len(index)
        whole.append(w.float().cpu())
        crop.append(c.float().cpu())
    return FeatureBank(index, torch.cat(whole), torch.cat(crop), failed)


def accuracy(retriever, engines: dict, cfg: EnginesConfig) -> dict:
    out: dict[str, dict] = {}
    for spec in cfg.datasets:
        name, ann, *images = spec.split(":")
        split = load_fashioniq(Path(ann), Path(images[0]) if images else Path(ann) / "images",
                               "val")
        if not split.triplets:
            logger.warning("%s: no val triplets under %s, skipped", name, ann)
            continue
        out[name] = {}
        for engine_name, engine in engines.items():
            retriever.engine = engine
            t0 = time.perf_counter()
            bank = pixel_bank(retriever, split.image_paths, cfg.batch)
            res = evaluate_split(split, *model_encoders(retriever, bank))
            out[name][engine_name] = {"R@10": res["average"]["R@10"],
                                      "R@50": res["average"]["R@50"],
                                      "queries": sum(m.get("queries", 0) for c, m in res.items()
                                                     if c != "average"),
                                      "images": len(bank.index), "seconds":
                                      time.perf_counter() - t0}
            logger.info("%s %s: R@10 %.2f R@50 %.2f", name, engine_name,
                        out[name][engine_name]["R@10"], out[name][engine_name]["R@50"])
    return out


def run(cfg: EnginesConfig) -> dict:
    retriever = load_retriever(cfg.checkpoint, engine="eager")
    report: dict = {"config": asdict(cfg), "fingerprint": retriever.fingerprint,
                    "accuracy": {}}
    cache = cache_dir_for(cfg.checkpoint)
    if "speed" in cfg.parts:
        with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp, threads(1):
            # export with an empty cache, then a start that finds it
            exported = [e for e in cfg.engines if e != "compile"]
            _, cold = build_engines(retriever, exported, Path(tmp))
            made = export_files(Path(tmp))
            _, warm = build_engines(retriever, exported, Path(tmp))
            remade = {k: v for k, v in export_files(Path(tmp)).items() if made.get(k) != v}
        report["prepare_s"] = {"empty_cache": cold, "cached": warm}
        # what each start wrote: the cached start must find every export and write none
        report["exports_written"] = {"empty_cache": sorted(made), "cached": sorted(remade)}
        with threads(1):
            engines, report["prepare_s"]["checkpoint_cache"] = build_engines(
                retriever, cfg.engines, cache)
            t0 = time.perf_counter()
            report["single"] = single_query_speed(retriever, engines, cfg)
            report["single_seconds"] = time.perf_counter() - t0
        with threads(cfg.batch_threads):
            engines, _ = build_engines(retriever, cfg.engines, cache)
            report["batch"] = batch_speed(retriever, engines, cfg)
    if "accuracy" in cfg.parts and cfg.datasets:
        with threads(cfg.batch_threads):
            engines, _ = build_engines(retriever, cfg.accuracy_engines, cache)
            report["accuracy"] = accuracy(retriever, engines, cfg)
    report["summary"] = summarise(report)
    return report


def summarise(report: dict) -> dict:
    if "single" not in report:
        return {"engines": {name: {f"{ds}_R@10_delta": m[name]["R@10"] - m["eager"]["R@10"]
                                   for ds, m in report["accuracy"].items() if "eager" in m}
                            for name in report["config"]["accuracy_engines"]}}
    single, batch = report["single"], report["batch"]
    lite1 = single["plain"]["lite0_forward"]["p50_ms"]
    lite32 = batch["plain"]["lite0_forward"]["images_per_s"]
    out = {"plain_lite0_single_p50_ms": lite1, "plain_lite0_batch_images_per_s": lite32,
           "engines": {}}
    for name in single:
        if name in ("plain", "common"):
            continue
        q = single[name]["encode_query"]["p50_ms"]
        entry = {"encode_query_p50_ms": q, "encode_query_vs_lite0": q / lite1,
                 "target_encoder_images_per_s": batch[name]["target_encoder"]["images_per_s"],
                 "target_encoder_vs_lite0": batch[name]["target_encoder"]["images_per_s"]
                 / lite32}
        for ds, engines in report["accuracy"].items():
            if name in engines and "eager" in engines:
                entry[f"{ds}_R@10_delta"] = engines[name]["R@10"] - engines["eager"]["R@10"]
        out["engines"][name] = entry
    return out


def format_report(report: dict) -> str:
    lines = []
    if "single" in report:
        lines += speed_lines(report)
    acc_rows = []
    for ds, engines in report["accuracy"].items():
        base = engines.get("eager", {}).get("R@10")
        for name, m in engines.items():
            delta = "" if base is None else f"{m['R@10'] - base:+.2f}"
            acc_rows.append((ds, name, f"{m['R@10']:.2f}", f"{m['R@50']:.2f}", delta,
                             m["queries"], m["images"]))
    if acc_rows:
        lines += ["", "recall from pixels (each engine's own backbone):",
                  table(acc_rows, ("dataset", "engine", "R@10", "R@50", "R@10 vs eager",
                                   "queries", "images"))]
    return "\n".join(lines)


def speed_lines(report: dict) -> list[str]:
    single, batch = report["single"], report["batch"]
    lite1 = single["plain"]["lite0_forward"]["p50_ms"]
    lite32 = batch["plain"]["lite0_forward"]["images_per_s"]
    lines = [f"plain eager Lite0: one image {lite1:.1f} ms p50 (1 thread); batch "
             f"{report['config']['batch']}: {lite32:.1f} img/s ({report['config']['batch_threads']}"
             f" threads); preprocess {single['common']['preprocess']['p50_ms']:.2f} ms", ""]
    rows = []
    for name in report["summary"]["engines"]:
        s = single[name]
        rows.append((name, *(f"{s[p]['p50_ms']:.1f}" for p in
                             ("backbone", "tokens", "reference", "encode_query")),
                     f"{s['encode_query']['p95_ms']:.1f}",
                     f"{s['encode_query']['p50_ms'] / lite1:.2f}x",
                     f"{batch[name]['backbone']['images_per_s']:.0f}",
                     f"{batch[name]['target_encoder']['images_per_s']:.0f}",
                     f"{batch[name]['target_encoder']['images_per_s'] / lite32:.2f}x",
                     f"{report['prepare_s']['empty_cache'].get(name, float('nan')):.1f} / "
                     f"{report['prepare_s']['cached'].get(name, float('nan')):.1f}",
                     f"{s['first_call_s']:.1f}"))
    lines.append(table(rows, ("engine", "backbone ms", "tokens ms", "reference ms",
                              "encode_query p50", "p95", "vs Lite0 1 img", "backbone img/s",
                              "target enc img/s", "vs Lite0 b32", "prepare s (export/cached)",
                              "first call s")))
    return lines


def parse_args(argv: Sequence[str] | None) -> EnginesConfig:
    d = EnginesConfig()
    p = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=d.checkpoint)
    p.add_argument("--engines", nargs="+", default=d.engines)
    p.add_argument("--accuracy-engines", nargs="*", default=d.accuracy_engines)
    p.add_argument("--datasets", nargs="*", default=d.datasets, metavar="NAME:ANN[:IMAGES]")
    p.add_argument("--queries", type=int, default=d.queries)
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--batch-rounds", type=int, default=d.batch_rounds)
    p.add_argument("--batch-threads", type=int, default=d.batch_threads)
    p.add_argument("--catalog", default=d.catalog)
    p.add_argument("--parts", nargs="+", default=d.parts, choices=["speed", "accuracy"])
    p.add_argument("--out-dir", default=d.out_dir)
    a = p.parse_args(argv)
    return EnginesConfig(checkpoint=a.checkpoint, engines=a.engines,
                         accuracy_engines=a.accuracy_engines, datasets=a.datasets,
                         queries=a.queries, batch=a.batch, batch_rounds=a.batch_rounds,
                         batch_threads=a.batch_threads, catalog=a.catalog, parts=a.parts,
                         out_dir=a.out_dir)


def main(argv: Sequence[str] | None = None) -> dict:
    name = parse_args(argv).result_name
    cfg, report, path = run_benchmark(name, argv, parse_args, run, module="bench.engines")
    print(f"\n$ {report['command']}\n{machine_line()}\ncheckpoint {cfg.checkpoint} "
          f"(fingerprint {report['fingerprint']}); total {report['seconds']:.0f} s\n")
    print(format_report(report))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    # the plain Lite0 yardstick runs under the allocator the project runs with
    under_project_allocator("bench.engines", sys.argv[1:])
    main()
