"""Feedback as shoppers say it (issue 35): one row per relation, negation, multi-change,
held-out phrasing family and the mixed-catalog kind figures, for FashionVLP and the baselines.

    source scripts/env.sh && .venv/bin/python -m bench.feedback_rows --checkpoint checkpoints/demo

Queries are the val split of ``python -m dataprep.feedback`` (data/hm_feedback): H&M val
articles, captions in held-out phrasing families only. Every query ranks one gallery: every
H&M val article, garments, shoes, bags, underwear and accessories together, no filter.

Per row: hit@10 and P@10 against the query's relevant set (every article that satisfies the
request), R@10 of the exact target, the query count and 95% intervals (Wilson for hit@10 and
R@10, a bootstrap over queries for P@10); also hit@10 with the reference photo left out of its
own ranking, which is what the app shows when the reference is a catalog item. The held-out
phrasing rows are the colourway queries, each asked once per held-out family: R@10 per family
and the spread between the best and the worst. The kind figures: over every val query (a
colourway query once) whose words do not ask for another kind (the type-change row does), the
share of the top 10 (the reference itself left out) in the reference's product group and in
its product type, for garment references and for the rest.

With ``--per-query FILE`` every scored query is also written there (JSON lines: method, row,
words, top 10, the rank of the first relevant item), to read where a row misses.

Every method goes through ``model.metrics`` (``retrieval_metrics`` for the headline figures,
its ``top_k`` for the per-query values behind the intervals; a check asserts they agree).
Baselines are trained here as ``bench.accuracy`` trains them (``bench.baselines``, epoch kept
by the mean val score of the training datasets) on ``--train-datasets``, by default the shipped
checkpoint's five training datasets, so that the comparison is like for like. Writes
``bench/results/accuracy_feedback/<fingerprint>.json``.

Another catalog's yardstick (``python -m dataprep.feedback --catalog products``: val queries of
fashion-products in held-out phrasings) is scored the same way, its gallery every val item of
that catalog, and filed apart under ``accuracy_feedback_<catalog>/``:

    python -m bench.feedback_rows --checkpoint checkpoints/demo --catalog products \
        --feedback data/products_feedback:../shared/data/fashion-products/images
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from bench._common import RESULTS, machine_line, run_benchmark, table
from bench.baselines import (
    BASELINES,
    IMAGE_CHANNELS,
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
    read_splits,
    restrict,
    val_score,
)
from bench.retyping import RETYPINGS, retyping
from bench.text_features import TextConfig, TextEmbedder
from dataprep import (
    FEEDBACK_ROWS,
    FashionIQSplit,
    eval_caption,
    load_fashioniq,
    read_metadata_column,
)
from imaging import file_sha256
from model import load_retriever
from model.evaluate import model_encoders, remembered_encoders, restrict_to_bank
from model.feature_cache import FeatureCache, extract_features
from model.metrics import retrieval_metrics, top_k
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

MODEL = "FashionVLP"
DEFAULT_FEEDBACK = "data/hm_feedback:../shared/data/hm/images"
# The shipped checkpoint's fifth training dataset (stage 77): the feedback requests written on
# the second catalog's training photos (`python -m dataprep.feedback --catalog products
# --products-part train ...`, recipes/demo.json).
SECOND_CATALOG_FEEDBACK = "data/products_feedback_train:../shared/data/fashion-products/images"
RELATION_ROWS = [r for r in dict.fromkeys(FEEDBACK_ROWS.values()) if r != "colourway"]
NEGATIONS = [r for r, row in FEEDBACK_ROWS.items() if row == "negation"]
MIN_QUERIES = 150  # the floors apply to rows with at least this many queries
K = 10
# hit@10 with the reference itself left out of its ranking: what the app shows for a catalog
# reference (app.pipeline.run_query leaves the chain's references out of the results); the
# headline hit@10 keeps it in, as FashionIQ's protocol does, and the floors are read on that.
SERVED = "hit@10, reference out"
OTHER_KIND = ("type change",)  # relations whose words ask for another kind (no kind share)
Z95 = 1.959964
CATALOG_LABELS = {"hm": "H&M", "products": "fashion-products"}  # the tables' gallery names


@dataclass
class FeedbackBenchConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    feedback: str = DEFAULT_FEEDBACK  # ANNOTATIONS[:IMAGES] of the feedback data
    # What the baselines train on (and select their epoch by): by default the shipped
    # checkpoint's own training data, for a like-for-like row.
    train_datasets: list[str] = field(
        default_factory=lambda: [*DEFAULT_DATASETS, DEFAULT_FEEDBACK, SECOND_CATALOG_FEEDBACK])
    baselines: list[str] = field(default_factory=lambda: list(BASELINES))
    cache_dir: str = FEATURE_CACHE_DIR  # backbone + text feature cache ('' disables)
    text_model: str = "all-MiniLM-L6-v2"
    max_queries: int | None = None  # per row, for quick checks (default: every query)
    max_val_queries: int = 1000  # per category, for the baselines' epoch selection
    bootstrap: int = 1000  # resamples of the P@10 and kind-share intervals
    workers: int = 1
    threads: int = 1
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    out_dir: str = str(RESULTS)
    # Baselines only: FashionVLP is not scored and only pooled image vectors are loaded (a few
    # MB, where the grid tokens FashionVLP reads take GBs), e.g. beside a training run.
    skip_model: bool = False
    reuse: str | None = None  # an earlier run's JSON: its rows of methods not run now join
    # Whose val photos the feedback data holds: "hm" files under accuracy_feedback/, another
    # catalog (products) under accuracy_feedback_<catalog>/, so neither overwrites the other.
    catalog: str = "hm"
    # A JSON-lines file of every scored query (method, row, words, top 10, first relevant
    # rank): where a row misses, read from the run itself instead of a one-off script.
    per_query: str = ""
    # Every val caption retyped (bench.retyping: no-punctuation, or typos at
    # ``typo_rate`` of the longer words), filed under <folder>_<retype>/: the cost of typing.
    retype: str = ""
    typo_rate: float = 0.3
    # The typo mender (model.spelling) and the courtesy filter (model.courtesy) off: what the
    # words cost as typed, filed under <folder>_unmended/.
    unmended: bool = False


def results_name(cfg: FeedbackBenchConfig) -> str:
    """The results folder of a run: accuracy_feedback, or accuracy_feedback_<catalog>, with
    _<retype> after it for retyped captions."""
    name = "accuracy_feedback" if cfg.catalog == "hm" else f"accuracy_feedback_{cfg.catalog}"
    return name + "".join(f"_{part}" for part in (cfg.retype, cfg.unmended and "unmended")
                          if part)


# ------------------------------------------------------------------------- intervals

def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval of a proportion, in percent."""
    if n == 0:
        return 0.0, 0.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


def bootstrap(values: np.ndarray, resamples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values`` (already in percent)."""
    if len(values) == 0:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


# ------------------------------------------------------------------------- queries

@dataclass
class FeedbackQueries:
    """The val queries of the feedback data, flattened over its categories."""

    triplets: list  # dataprep.Triplet
    gallery: list[str]  # every val article
    groups: dict[str, str]  # id -> product group
    types: dict[str, str]  # id -> product type

    def row_of(self, k: int) -> str:
        return self.triplets[k].tags[1]

    def relation_of(self, k: int) -> str:
        return self.triplets[k].tags[2]

    def family_of(self, k: int) -> str | None:
        return next((t.split(":", 1)[1] for t in self.triplets[k].tags
                     if t.startswith("family:")), None)


def feedback_queries(val: FashionIQSplit, annotations) -> FeedbackQueries:
    gallery = list(dict.fromkeys(i for ids in val.gallery.values() for i in ids))
    return FeedbackQueries(val.triplets, gallery,
                           read_metadata_column(annotations, ("product_group",)),
                           read_metadata_column(annotations, ("product_type",)))


# ------------------------------------------------------------------------- scoring

def score_method(q: FeedbackQueries, encode_queries, encode_gallery, cfg: FeedbackBenchConfig
                 ) -> dict:
    """Every row, family and kind figure of one method."""
    gallery = encode_gallery(q.gallery)
    position = {g: k for k, g in enumerate(q.gallery)}
    groups: dict[str, list[int]] = {}
    for k in range(len(q.triplets)):
        groups.setdefault(q.row_of(k), []).append(k)
        if q.row_of(k) == "negation":
            groups.setdefault(f"negation: {q.relation_of(k)}", []).append(k)
        if q.family_of(k) and q.row_of(k) == "colourway":
            groups.setdefault(f"family: {q.family_of(k)}", []).append(k)
    groups = {name: idx[:cfg.max_queries] if cfg.max_queries else idx
              for name, idx in groups.items()}
    wanted = sorted({k for idx in groups.values() for k in idx})
    vectors = dict(zip(wanted, encode_queries([q.triplets[k].candidate for k in wanted],
                                              [eval_caption(q.triplets[k].captions)
                                               for k in wanted]), strict=True))
    ranked = dict(zip(wanted, top_k(np.stack([vectors[k] for k in wanted]), gallery, K + 1),
                      strict=True))  # for the kind figures
    rows, rankings = {}, {}
    for name, idx in groups.items():
        rows[name], ranking = _row(q, idx, vectors, gallery, position, cfg)
        if not name.startswith(("family: ", "negation: ")):
            # each query's ranking as its own row ranked it (another batch shape may break a
            # tie the other way)
            rankings.update(zip(idx, ranking, strict=True))
    families = {name.split(": ", 1)[1]: m for name, m in rows.items()
                if name.startswith("family: ")}
    out = {"rows": {n: m for n, m in rows.items() if not n.startswith("family: ")},
           "families": families}
    if families:
        r10 = {f: m["R@10"] for f, m in families.items()}
        out["family_spread"] = {"best": max(r10, key=r10.get), "worst": min(r10, key=r10.get),
                                "spread": max(r10.values()) - min(r10.values()),
                                "worst R@10": min(r10.values())}
    out["kinds"] = kind_figures(q, wanted, ranked, cfg)
    if cfg.per_query:
        out["per_query"] = [query_record(q, k, rankings[k], position) for k in wanted]
    return out


def query_record(q: FeedbackQueries, k: int, ranking: np.ndarray, position) -> dict:
    """One query as ``--per-query`` writes it: what was asked, the top 10 and where the first
    relevant item ranks (1-based, within the top 50; None beyond)."""
    t = q.triplets[k]
    relevant = {position[r] for r in t.relevant if r in position}
    first = next((n + 1 for n, row in enumerate(ranking) if row in relevant), None)
    return {"row": q.row_of(k), "relation": q.relation_of(k), "family": q.family_of(k),
            "reference": t.candidate, "target": t.target, "words": eval_caption(t.captions),
            "relevant": len(relevant), "hit@10": first is not None and first <= K,
            "first relevant": first, "top 10": [q.gallery[row] for row in ranking[:K]]}


def _row(q: FeedbackQueries, idx: list[int], vectors, gallery, position,
         cfg: FeedbackBenchConfig) -> tuple[dict, np.ndarray]:
    """hit@10 (also with the reference left out), P@10, R@10 (and R@50) of the queries
    ``idx`` with intervals, and their rankings (the top 50 gallery rows of each)."""
    ts = [q.triplets[k] for k in idx]
    queries = np.stack([vectors[k] for k in idx])
    metrics = retrieval_metrics(queries, gallery, q.gallery, [t.target for t in ts],
                                [t.relevant for t in ts])
    # The same ranking call on the same matrix (a matrix product of another shape can round
    # differently and break a tie the other way): top 50, as retrieval_metrics ranks.
    top50 = top_k(queries, gallery, 50)
    top = top50[:, :K]  # (Q, 10) gallery rows
    targets = np.array([position[t.target] for t in ts])[:, None]
    r10 = (top == targets).any(axis=1)
    relevant = np.stack([np.isin(row, [position[r] for r in t.relevant])
                         for row, t in zip(top50, ts, strict=True)])  # (Q, 50)
    hits = relevant[:, :K].any(axis=1)
    precision = 100.0 * relevant[:, :K].sum(axis=1) / K
    for name, mine in (("R@10", 100 * r10.mean()), ("hit@10", 100 * hits.mean()),
                       ("P@10", precision.mean())):
        if abs(metrics[name] - mine) > 1e-6:  # one ranking for the figures and the intervals
            raise AssertionError(f"{name}: retrieval_metrics {metrics[name]} != {mine}")
    own = top50 == np.array([position.get(t.candidate, -1) for t in ts])[:, None]
    served = np.array([r[~o][:K].any() for r, o in zip(relevant, own, strict=True)])
    return {**metrics, SERVED: 100.0 * float(served.mean()), "queries": len(idx),
            "ci": {"hit@10": wilson(int(hits.sum()), len(idx)),
                   SERVED: wilson(int(served.sum()), len(idx)),
                   "R@10": wilson(int(r10.sum()), len(idx)),
                   "P@10": bootstrap(precision, cfg.bootstrap)},
            "floors_apply": len(idx) >= MIN_QUERIES}, top50


def kind_figures(q: FeedbackQueries, wanted: list[int], ranked, cfg: FeedbackBenchConfig
                 ) -> dict:
    """Share (%) of the top 10, reference left out, in the reference's product group and
    type: every query once (a colourway query in its first family only), but those whose
    words ask for another kind."""
    seen, per_query = set(), []
    for k in wanted:
        t = q.triplets[k]
        key = (t.candidate, t.target, q.relation_of(k))
        if key in seen or t.candidate not in q.groups or q.relation_of(k) in OTHER_KIND:
            continue
        seen.add(key)
        top = [q.gallery[r] for r in ranked[k] if q.gallery[r] != t.candidate][:K]
        per_query.append((q.groups[t.candidate] in ("upper", "lower", "full"),
                          100 * np.mean([q.groups.get(i) == q.groups[t.candidate] for i in top]),
                          100 * np.mean([q.types.get(i) == q.types[t.candidate] for i in top])))
    out = {}
    for name, keep in (("all", lambda g: True), ("garment references", lambda g: g),
                       ("other references", lambda g: not g)):
        part = [(g, t) for garment, g, t in per_query if keep(garment)]
        if not part:
            continue
        group, kind = np.array([p[0] for p in part]), np.array([p[1] for p in part])
        out[name] = {"in product group": float(group.mean()),
                     "in product type": float(kind.mean()), "queries": len(part),
                     "ci": {"in product group": bootstrap(group, cfg.bootstrap),
                            "in product type": bootstrap(kind, cfg.bootstrap)}}
    return out


# ------------------------------------------------------------------------- methods

@dataclass
class PooledBank:
    """The pooled image vector of each image (what the baselines read), without the grid
    tokens a FeatureBank holds."""

    index: dict[str, int]
    pooled: torch.Tensor  # (N, C) float32: mean over the final map's grid tokens
    failed: dict[str, str]


def _pool(tokens: np.ndarray, grid_tokens: int) -> np.ndarray:
    """As bench.baselines.pooled_image_features: mean of the grid tokens' first channels."""
    return tokens[:grid_tokens, :IMAGE_CHANNELS].astype(np.float32).mean(axis=0)


def pooled_bank(encoder, image_paths: dict[str, Path], cache_dir: str | None, workers: int,
                chunk: int = 1000) -> PooledBank:
    """Pooled vectors read one cache file at a time; images not cached yet are encoded (and
    cached) ``chunk`` at a time."""
    cache = FeatureCache(cache_dir, encoder.cache_key) if cache_dir else None
    grid = encoder.grid * encoder.grid
    vectors: dict[str, np.ndarray] = {}
    missing: list[str] = []
    for i, path in image_paths.items():
        tokens = cache.load(file_sha256(path)) if cache else None
        if tokens is None:
            missing.append(i)
        else:
            vectors[i] = _pool(tokens, grid)
    failed: dict[str, str] = {}
    for start in range(0, len(missing), chunk):
        bank = extract_features(encoder, {i: image_paths[i] for i in missing[start:start + chunk]},
                                cache_dir, workers=workers)
        failed.update(bank.failed)
        for i, row in bank.index.items():
            vectors[i] = _pool(bank.whole[row].numpy(), grid)
    ids = [i for i in image_paths if i in vectors]
    return PooledBank({i: k for k, i in enumerate(ids)},
                      torch.from_numpy(np.stack([vectors[i] for i in ids])), failed)


def load_all(cfg: FeedbackBenchConfig, encoder):
    """The feedback val queries, the baselines' training datasets and one feature bank."""
    spec = DatasetSpec.parse(cfg.feedback)
    val = load_fashioniq(spec.annotations, spec.images, "val")
    train_data = read_splits(cfg.train_datasets)
    paths = {**val.image_paths, **image_paths(train_data)}
    bank = (pooled_bank(encoder, paths, cfg.cache_dir or None, cfg.workers) if cfg.skip_model
            else extract_features(encoder, paths, cfg.cache_dir or None, workers=cfg.workers))
    val = restrict_to_bank(val, bank)
    restrict(train_data, bank)
    if cfg.retype:
        retype = retyping(cfg.retype, cfg.typo_rate)
        val = replace(val, triplets=[replace(t, captions=[retype(c) for c in t.captions])
                                     for t in val.triplets])
    return feedback_queries(val, spec.annotations), train_data, bank


def run_baselines(cfg: FeedbackBenchConfig, q: FeedbackQueries, train_data: list[Data], bank
                  ) -> tuple[dict, dict]:
    """Train each baseline on the training datasets and score it; (results, training)."""
    images = bank.pooled if isinstance(bank, PooledBank) else pooled_image_features(bank)
    rows = bank.index
    embed = TextEmbedder(TextConfig(model=cfg.text_model, cache_dir=cfg.cache_dir or None))
    embed.prepare(eval_caption(t.captions) for t in q.triplets)
    trainable = any(build_baseline(n, 1, 1, cfg.baseline).trainable for n in cfg.baselines)
    train = triplet_tensors([t for d in train_data for t in d.train.triplets], rows, images,
                            embed) if trainable else None  # image only trains on nothing
    results, training = {}, {}
    for name in cfg.baselines:
        model = build_baseline(name, images.shape[1], embed.dim, cfg.baseline)
        training[name] = train_baseline(model, train, cfg.baseline, lambda m: val_score(
            train_data, baseline_encoders(m, rows, images, embed), cfg.max_val_queries)) | {
            "train_triplets": len(train) if train is not None else 0}
        results[name] = score_method(q, *remembered_encoders(
            *baseline_encoders(model, rows, images, embed)), cfg)
        logger.info("%s scored", name)
    return results, training


def _queries_of(config: dict) -> tuple:
    """What a run's queries were: the data, the cap, how the captions were typed."""
    retype = config.get("retype", "")
    return (config["feedback"], config["max_queries"], retype,
            config.get("typo_rate") if retype == "typos" else None)


def reused(cfg: FeedbackBenchConfig, fingerprint: str, results: dict) -> dict:
    """Add the rows of an earlier run (``--reuse``) of every method not scored now; refused
    unless it scored the same feedback data with the same query cap (and, for FashionVLP,
    the same weights). Returns that run's training records of the reused baselines."""
    earlier = json.loads(Path(cfg.reuse).read_text())
    if _queries_of(earlier["config"]) != _queries_of(asdict(cfg)):
        raise ValueError(f"{cfg.reuse} scored other feedback data, another query cap or "
                         "captions typed otherwise")
    training = {}
    for name, rows in earlier["results"].items():
        if name in results or name == MODEL and earlier["fingerprint"] != fingerprint:
            continue
        results[name] = rows
        if name in earlier.get("baseline_training", {}):
            training[name] = {**earlier["baseline_training"][name], "reused_from": cfg.reuse}
    return training


def run(cfg: FeedbackBenchConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    retriever = load_retriever(cfg.checkpoint)
    if cfg.unmended:
        retriever.spelling, retriever.drop_courtesy = None, False
    q, train_data, bank = load_all(cfg, retriever.encoder)
    results, training = {}, {}
    if not cfg.skip_model:
        t0 = time.perf_counter()
        results[MODEL] = score_method(q, *remembered_encoders(*model_encoders(retriever, bank)),
                                      cfg)
        logger.info("FashionVLP scored in %.0f s", time.perf_counter() - t0)
    if cfg.baselines:
        baseline_results, training = run_baselines(cfg, q, train_data, bank)
        results.update(baseline_results)
    if cfg.reuse:
        training = reused(cfg, retriever.fingerprint, results) | training
    if cfg.per_query:
        write_per_query(Path(cfg.per_query), results)
    return {"checkpoint": cfg.checkpoint, "fingerprint": retriever.fingerprint,
            "config": asdict(cfg), "gallery": len(q.gallery),
            "val_queries": len(q.triplets), "results": results,
            "baseline_training": training}


def write_per_query(path: Path, results: dict) -> None:
    """Move every method's per-query records out of ``results`` into ``path`` (JSON lines,
    each with its method), so the results file keeps its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for method, res in results.items():
            for record in res.pop("per_query", []):
                f.write(json.dumps({"method": method, **record}) + "\n")
    logger.info("wrote every query's ranking to %s", path)


# ------------------------------------------------------------------------- report

def _cell(m: dict, key: str) -> str:
    if key not in m:
        return "-"
    lo, hi = m["ci"][key]
    return f"{m[key]:.1f} ({lo:.1f}-{hi:.1f})"


def format_tables(report: dict) -> str:
    results = report["results"]
    methods = list(results)
    ours = results.get(MODEL) or next(iter(results.values()))  # whose rows name the table
    names = [r for r in RELATION_ROWS if r in ours["rows"]] + [
        f"negation: {r}" for r in NEGATIONS if f"negation: {r}" in ours["rows"]] + (
        ["colourway"] if "colourway" in ours["rows"] else [])
    blocks = []
    for metric in ("hit@10", SERVED, "P@10", "R@10"):
        body = [(n, str(ours["rows"][n]["queries"]) + ("" if ours["rows"][n]["floors_apply"]
                                                       else " (<150)"),
                 *[_cell(results[m]["rows"].get(n, {}), metric) for m in methods])
                for n in names]
        catalog = report["config"].get("catalog", "hm")
        blocks.append(f"{metric} with 95% interval, gallery of every "
                      f"{CATALOG_LABELS.get(catalog, catalog)} val article "
                      f"({report['gallery']}), held-out phrasings\n"
                      + table(body, ("row", "queries", *methods)))
    fams = sorted(ours["families"])
    if fams:
        body = [(f, str(ours["families"][f]["queries"]),
                 *[_cell(results[m]["families"][f], "R@10") for m in methods]) for f in fams]
        body.append(("spread (best-worst)", "", *[
            f"{results[m]['family_spread']['spread']:.1f}" for m in methods]))
        body.append(("worst family R@10", "", *[
            f"{results[m]['family_spread']['worst R@10']:.1f}" for m in methods]))
        blocks.append("colourway R@10 per held-out phrasing family\n"
                      + table(body, ("family", "queries", *methods)))
    body = []
    for part in ours["kinds"]:
        for key in ("in product group", "in product type"):
            body.append((f"{part}: {key}", str(ours["kinds"][part]["queries"]), *[
                _cell(results[m]["kinds"].get(part, {}), key) for m in methods]))
    blocks.append("mixed catalog, no filter: share of the top 10 (reference left out)\n"
                  + table(body, ("queries", "n", *methods)))
    return "\n\n".join(blocks)


def parse_args(argv: Sequence[str] | None) -> FeedbackBenchConfig:
    d = FeedbackBenchConfig()
    p = argparse.ArgumentParser(prog="python -m bench.feedback_rows", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_baseline_arguments(p, d)
    p.add_argument("--feedback", default=d.feedback, metavar="ANN[:IMAGES]")
    p.add_argument("--train-datasets", nargs="+", default=d.train_datasets,
                   metavar="ANN[:IMAGES]", help="what the baselines train on")
    p.add_argument("--max-queries", type=int, help="per row (quick checks)")
    p.add_argument("--bootstrap", type=int, default=d.bootstrap)
    p.add_argument("--skip-model", action="store_true",
                   help="baselines only, from pooled image vectors (little memory)")
    p.add_argument("--reuse", metavar="JSON",
                   help="an earlier run's results: its rows of methods not run now join")
    p.add_argument("--per-query", default=d.per_query, metavar="JSONL",
                   help="also write every scored query's top 10 and first relevant rank, "
                   "per method, to this file (JSON lines)")
    p.add_argument("--catalog", default=d.catalog, choices=sorted(CATALOG_LABELS),
                   help="whose val photos --feedback holds: hm (accuracy_feedback/) or another "
                   "catalog, e.g. products (accuracy_feedback_products/)")
    p.add_argument("--retype", default=d.retype, choices=RETYPINGS,
                   help="score every caption typed otherwise (bench.retyping)")
    p.add_argument("--typo-rate", type=float, default=d.typo_rate,
                   help="with --retype typos: the share of words of 5+ letters mistyped")
    p.add_argument("--unmended", action="store_true",
                   help="the words as typed: the typo mender (model.spelling) and the "
                        "courtesy filter (model.courtesy) off")
    a = p.parse_args(argv)
    return FeedbackBenchConfig(
        checkpoint=a.checkpoint, feedback=a.feedback, train_datasets=a.train_datasets,
        baselines=a.baselines, cache_dir=a.cache_dir, text_model=a.text_model,
        max_queries=a.max_queries, max_val_queries=a.max_val_queries, bootstrap=a.bootstrap,
        workers=a.workers, threads=a.threads, baseline=baseline_config(a), out_dir=a.out_dir,
        skip_model=a.skip_model, reuse=a.reuse, catalog=a.catalog, per_query=a.per_query,
        retype=a.retype or "", typo_rate=a.typo_rate, unmended=a.unmended)


def report_lines(report: dict) -> str:
    """What a run prints: the command, the machine, the tables."""
    trained = ", ".join(f"{n} {t['epochs']} epochs on {t['train_triplets']} triplets"
                        for n, t in report["baseline_training"].items() if t.get("trainable"))
    return (f"$ {report['command']}\n{machine_line()}\ncheckpoint {report['checkpoint']} "
            f"(fingerprint {report['fingerprint']}); {report['val_queries']} val entries; "
            f"baselines: {trained or 'none trained'}\n\n{format_tables(report)}")


def default_feedback(given: str | None, datasets: Sequence[str]) -> str:
    """The feedback data ``bench.accuracy`` reports on: ``given`` ('' = none), else
    DEFAULT_FEEDBACK on a run over the default datasets when that folder exists."""
    if given is not None:
        return given
    exists = DatasetSpec.parse(DEFAULT_FEEDBACK).annotations.is_dir()
    return DEFAULT_FEEDBACK if exists and list(datasets) == list(DEFAULT_DATASETS) else ""


def accuracy_argv(acc) -> list[str]:
    """This benchmark's command line for a ``bench.accuracy`` run (its AccuracyConfig): the
    same checkpoint, baselines, caches and training data, plus the feedback data."""
    train = list(dict.fromkeys([*acc.datasets, acc.feedback]))
    argv = ["--checkpoint", acc.checkpoint, "--feedback", acc.feedback,
            "--train-datasets", *train, "--baselines", *acc.baselines,
            "--cache-dir", acc.cache_dir, "--text-model", acc.text_model,
            "--workers", str(acc.workers), "--threads", str(acc.threads),
            "--batch-size", str(acc.baseline.batch_size), "--lr", str(acc.baseline.lr),
            "--embed-dim", str(acc.baseline.embed_dim), "--out-dir", acc.out_dir]
    if not acc.baseline.select_on_val:
        argv.append("--no-val-selection")
    if acc.baseline.epochs:
        argv += ["--epochs", str(acc.baseline.epochs)]
    if acc.max_queries:
        argv += ["--max-queries", str(acc.max_queries)]
    return argv


def main(argv: Sequence[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    _, report, path = run_benchmark(results_name(parse_args(argv)), argv, parse_args, run,
                                    module="bench.feedback_rows")
    print(report_lines(report))
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
