"""Accuracy: the trained FashionVLP against four baselines over the same frozen encoders.

    source scripts/env.sh && .venv/bin/python -m bench.accuracy --checkpoint checkpoints/demo

On each dataset's val split (FashionIQ protocol: per category, gallery = that category's val
images, query text = eval_caption) it reports R@10 and R@50 of the exact target and, where val
entries carry "relevant" lists (the real-photo triplets), hit@10 and P@10 of attribute matches.
Every method -- the model and each baseline -- is scored by the one shared path,
model.evaluate.evaluate_split, with its own two encoding functions. Baselines are trained here
on the train splits of all datasets together (as the demo checkpoint is), for a fixed number
of epochs each (bench.baselines.DEFAULT_EPOCHS: about 1-2.5 minutes each on one thread).
Prints the tables and the margins of FashionVLP over every baseline, and writes
bench/results/accuracy/<fingerprint>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench._common import RESULTS, machine_line, run_benchmark, table
from bench.baselines import (
    BASELINES,
    BaselineConfig,
    add_baseline_arguments,
    baseline_config,
    baseline_encoders,
    build_baseline,
    pooled_image_features,
    train_baseline,
    triplet_tensors,
)
from bench.datasets import (
    DEFAULT_DATASETS,
    Data,
    DatasetSpec,
    image_paths,
    restrict,
    train_record,
    val_score,
)
from bench.text_features import TextConfig, TextEmbedder
from dataprep import eval_caption, load_fashioniq
from model import load_retriever
from model.evaluate import (
    evaluate_kept,
    evaluate_split,
    evaluate_tags,
    item_kinds,
    model_encoders,
    remembered_encoders,
)
from model.feature_cache import extract_features
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

MODEL = "FashionVLP"
METRICS = ("R@10", "R@50", "mean", "hit@10", "P@10", "kept@10", "colourway R@10",
           "colourway R@50", "attribute R@10", "attribute P@10")  # "mean" = (R@10+R@50)/2
CEILING_METRICS = ("R@10", "R@50", "mean", "hit@10", "kept@10", "colourway R@10",
                   "colourway R@50", "attribute R@10")  # percentages whose best value is 100
# Queries grouped by their tags (the H&M triplets carry them): kind, then changed attribute.
TAG_GROUPS = {"colourway": ["colourway"], "attribute": ["attribute"], "sleeve": ["sleeve"],
              "neckline": ["neckline"], "length": ["length"],
              "pattern/material": ["pattern", "material"], "fit/waist": ["fit", "waist"],
              "closure": ["closure"]}
# Reported per attribute, but not part of the verdict (small groups; the floors are above).
DETAIL_METRICS = tuple(f"{g} {m}" for g in list(TAG_GROUPS)[2:] for m in ("R@10", "P@10"))


@dataclass
class AccuracyConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    datasets: list[str] = field(default_factory=lambda: list(DEFAULT_DATASETS))
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    cache_dir: str = FEATURE_CACHE_DIR  # backbone + text feature cache ('' disables)
    text_model: str = "all-MiniLM-L6-v2"  # frozen sentence encoder of the baselines
    max_queries: int | None = None  # per category, for quick checks (default: all)
    max_val_queries: int | None = None  # per category, for baseline epoch selection; default:
    # the value the checkpoint's training recorded (model.train validates on that many)
    workers: int = 1  # image decoding processes when features are not cached yet
    threads: int = 1  # torch threads: with 2 on this shared 2-core CPU, any other busy
    # process made baseline training 5-10x slower (OpenMP threads wait on each other)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    out_dir: str = str(RESULTS)
    baseline_rows: str | None = None  # an earlier run's JSON: its baseline rows join the tables
    feedback: str = ""  # ANN[:IMAGES] of the feedback data: bench.feedback_rows runs after ('': no)


def score(d: Data, encoders, max_queries: int | None) -> dict[str, dict]:
    """One method on one dataset: the FashionIQ table, with kept@10 (all categories in one
    gallery) and, where triplets carry tags, colourway / attribute-change metrics in
    "average" beside the category means."""
    encoders = remembered_encoders(*encoders)
    results = evaluate_split(d.val, *encoders, max_queries)
    extra = evaluate_kept(d.val, *encoders, d.kinds, 10, max_queries)
    extra.pop("queries", None)
    for group, m in evaluate_tags(d.val, *encoders, TAG_GROUPS, max_queries).items():
        extra.update({f"{group} {k}": v for k, v in m.items()
                      if k in ("R@10", "R@50", "P@10", "queries")})
    results["average"].update(extra)
    return results


def load_data(cfg: AccuracyConfig, encoder):
    """Both splits of every dataset and one feature bank over all their images."""
    data = []
    for text in cfg.datasets:
        spec = DatasetSpec.parse(text)
        val = load_fashioniq(spec.annotations, spec.images, "val")
        data.append(Data(spec, load_fashioniq(spec.annotations, spec.images, "train"), val,
                         item_kinds(spec.annotations, val)))
    bank = extract_features(encoder, image_paths(data), cfg.cache_dir or None,
                            workers=cfg.workers)
    restrict(data, bank)
    return data, bank


def margins(results: dict[str, dict[str, dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """dataset -> baseline -> metric -> FashionVLP minus baseline (percentage points)."""
    out = {}
    for dataset, by_method in results.items():
        ours = by_method[MODEL]["average"]
        out[dataset] = {name: {k: ours[k] - m["average"][k] for k in METRICS + DETAIL_METRICS
                               if k in ours and k in m["average"]}
                        for name, m in by_method.items() if name != MODEL}
    return out


def ceiling_ties(results: dict[str, dict[str, dict]]) -> list[list[str]]:
    """[dataset, baseline, metric] where FashionVLP and the baseline both score 100: no
    method can beat another there, so such a metric is reported as a tie, not as a win."""
    out = []
    for dataset, by_method in results.items():
        ours = by_method[MODEL]["average"]
        for name, m in by_method.items():
            out += [[dataset, name, k] for k in CEILING_METRICS if k in ours and name != MODEL
                    and min(ours[k], m["average"][k]) >= 100 - 1e-9]
    return out


def format_tables(results: dict, gaps: dict, sizes: dict) -> str:
    """One table per dataset: a row per metric, a column per method, and the margin of
    FashionVLP over the best baseline (a metric row reads across, however many there are)."""
    blocks = []
    for dataset, by_method in results.items():
        ours = by_method[MODEL]["average"]
        keys = [k for k in METRICS + DETAIL_METRICS if k in ours]
        header = ("metric", *by_method, "margin")
        rows = []
        for k in keys:
            gap = [g[k] for g in gaps[dataset].values() if k in g]
            rows.append(("(R@10+R@50)/2" if k == "mean" else k,
                         *[f"{m['average'][k]:.2f}" if k in m["average"] else "-"
                           for m in by_method.values()],
                         f"{min(gap):+.2f}" if gap else ""))
        blocks.append(f"{dataset} val: {sizes[dataset]['queries']} queries, "
                      f"{sizes[dataset]['categories']} categories (R/P/hit: mean over "
                      "categories; kept@10 and tagged groups: over queries)\n"
                      + table(rows, header))
    return "\n\n".join(blocks)


def run_baselines(cfg: AccuracyConfig, data: list[Data], bank, meta: dict,
                  results: dict[str, dict[str, dict]]) -> tuple[dict, int]:
    """Train every baseline on all datasets' train splits and score it into ``results``;
    returns (training stats per baseline, number of training triplets)."""
    images = pooled_image_features(bank)
    rows = bank.index
    embed = TextEmbedder(TextConfig(model=cfg.text_model, cache_dir=cfg.cache_dir or None))
    embed.prepare(eval_caption(t.captions) for d in data for t in d.val.triplets)
    val_queries = cfg.max_val_queries or train_record(meta).get(
        "max_val_queries") or 1000  # what the checkpoint's own epoch selection used
    train = triplet_tensors([t for d in data for t in d.train.triplets], rows, images, embed)
    training = {}
    for name in cfg.baselines:
        model = build_baseline(name, images.shape[1], embed.dim, cfg.baseline)
        stats = train_baseline(model, train, cfg.baseline, lambda m: val_score(
            data, baseline_encoders(m, rows, images, embed), val_queries))
        training[name] = stats | {"max_val_queries": val_queries}
        enc = baseline_encoders(model, rows, images, embed)
        for d in data:
            results[d.spec.name][name] = score(d, enc, cfg.max_queries)
        logger.info("%s: %s", name, {d: results[d][name]["average"] for d in results})
    return training, len(train)


def run(cfg: AccuracyConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    retriever = load_retriever(cfg.checkpoint)
    data, bank = load_data(cfg, retriever.encoder)
    results: dict[str, dict[str, dict]] = {d.spec.name: {} for d in data}

    t0 = time.perf_counter()
    encoders = model_encoders(retriever, bank)
    for d in data:
        results[d.spec.name][MODEL] = score(d, encoders, cfg.max_queries)
    logger.info("FashionVLP evaluated in %.0f s", time.perf_counter() - t0)

    training, train_triplets = (run_baselines(cfg, data, bank, retriever.meta, results)
                                if cfg.baselines else ({}, 0))
    if cfg.baseline_rows:
        training = {**reused_baselines(cfg, results), **training}

    gaps = margins(results)
    compared = any(by_b for by_b in gaps.values())
    ties = ceiling_ties(results)
    beats = {d: {b: all(v > 0 or [d, b, k] in ties for k, v in g.items() if k in METRICS)
                 for b, g in by_b.items()} for d, by_b in gaps.items()}
    sizes = {d.spec.name: {"queries": int(sum(m.get("queries", 0) for c, m in
                                              results[d.spec.name][MODEL].items()
                                              if c != "average")),
                           "categories": len(d.val.categories)} for d in data}
    return {"checkpoint": cfg.checkpoint, "fingerprint": retriever.fingerprint,
            "checkpoint_training": _training_summary(retriever.meta),
            "config": asdict(cfg), "results": results, "margins": gaps,
            "fashionvlp_beats": beats, "ties_at_ceiling": ties,
            "fashionvlp_beats_every_baseline_on_every_metric": not ties and all(
                v for by_b in beats.values() for v in by_b.values()) if compared else None,
            "fashionvlp_beats_every_baseline_except_ties_at_ceiling": all(
                v for by_b in beats.values() for v in by_b.values()) if compared else None,
            "baseline_training": training, "sizes": sizes, "train_triplets": train_triplets}


def reused_baselines(cfg: AccuracyConfig, results: dict[str, dict[str, dict]]) -> dict:
    """Fill in the baseline rows of an earlier run (``--baseline-rows``) for every baseline
    not trained in this one. The baselines do not depend on the checkpoint, so a model-only
    run can still be compared; refused unless the earlier run scored the same datasets with the
    same query cap. Returns that run's training stats of the reused baselines."""
    earlier = json.loads(Path(cfg.baseline_rows).read_text())
    same = (earlier["config"]["datasets"] == cfg.datasets
            and earlier["config"]["max_queries"] == cfg.max_queries)
    if not same:
        raise ValueError(f"{cfg.baseline_rows} scored other datasets or another query cap "
                         "than this run: its baseline rows are not comparable")
    reused = {}
    for name in earlier["config"]["baselines"]:
        if name in cfg.baselines:
            continue
        for dataset, rows in results.items():
            rows[name] = earlier["results"][dataset][name]
        reused[name] = {**earlier["baseline_training"][name], "reused_from": cfg.baseline_rows}
    return reused


def _training_summary(meta: dict) -> dict:
    """What the checkpoint was trained on and for how long (from its config.json); for a soup
    (`python -m model.soup`), that of each part."""
    if "soup" in meta:
        return {"soup": [_training_summary(part) | {"weight": part.get("weight")}
                         for part in meta["soup"]]}
    train = meta.get("train") or {}
    epochs, steps = meta.get("epoch"), train.get("steps_per_epoch")
    return {"datasets": train.get("annotations"), "epochs": epochs,
            "steps_per_epoch": steps, "batch_size": train.get("batch_size"),
            "triplets_seen": epochs * steps * train["batch_size"]
            if epochs and steps and train.get("batch_size") else None}


def parse_args(argv: Sequence[str] | None) -> AccuracyConfig:
    d = AccuracyConfig()
    p = argparse.ArgumentParser(prog="python -m bench.accuracy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_baseline_arguments(p, d)
    p.add_argument("--datasets", nargs="+", default=d.datasets, metavar="ANN[:IMAGES]",
                   help="annotation roots (FashionIQ layout) with their image folders")
    p.add_argument("--max-queries", type=int, help="per category (quick checks)")
    p.add_argument("--baseline-rows", metavar="JSON",
                   help="an earlier run's results: its rows of the baselines not trained now "
                   "join the tables, margins and verdict (they do not depend on the checkpoint)")
    p.add_argument("--feedback", metavar="ANN[:IMAGES]",
                   help="also report issue 35's rows (bench.feedback_rows) on this feedback "
                   "data; default: data/hm_feedback on a default run when it exists, '' = no")
    a = p.parse_args(argv)
    return AccuracyConfig(checkpoint=a.checkpoint, datasets=a.datasets, baselines=a.baselines,
                          cache_dir=a.cache_dir, text_model=a.text_model,
                          max_queries=a.max_queries, max_val_queries=a.max_val_queries,
                          workers=a.workers, threads=a.threads, baseline=baseline_config(a),
                          out_dir=a.out_dir, baseline_rows=a.baseline_rows,
                          feedback=_feedback_rows().default_feedback(a.feedback, a.datasets))


def main(argv: Sequence[str] | None = None) -> dict:
    cfg, report, path = run_benchmark("accuracy", argv, parse_args, run)
    print(f"\n$ {report['command']}\n{machine_line()}\ncheckpoint {cfg.checkpoint} "
          f"(fingerprint {report['fingerprint']}); baselines trained on "
          f"{report['train_triplets']} triplets of {len(cfg.datasets)} dataset(s) ("
          + ", ".join(f"{n} {t['epochs']} epochs {t['seconds']:.0f} s"
                      for n, t in report["baseline_training"].items() if t["trainable"])
          + f"); {cfg.threads} torch thread(s); total {report['seconds']:.0f} s\n")
    print(format_tables(report["results"], report["margins"], report["sizes"]))
    verdict = report["fashionvlp_beats_every_baseline_on_every_metric"]
    print("\nFashionVLP beats every baseline on every metric: "
          + ("no baselines compared" if verdict is None else "yes" if verdict else "NO"))
    if report["ties_at_ceiling"]:
        ties = ", ".join(f"{d} {k} with {b}" for d, b, k in report["ties_at_ceiling"])
        rest = report["fashionvlp_beats_every_baseline_except_ties_at_ceiling"]
        print(f"ties at 100 (no margin possible): {ties}; every other metric beaten: "
              f"{'yes' if rest else 'NO'}")
    print(f"wrote {path}")
    if cfg.feedback:
        report["feedback_rows"] = _feedback_rows().main(_feedback_rows().accuracy_argv(cfg))
    return report


def _feedback_rows():
    """bench.feedback_rows (imported when used: it imports this module)."""
    from bench import feedback_rows
    return feedback_rows


if __name__ == "__main__":
    main()
