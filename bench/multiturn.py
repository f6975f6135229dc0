"""Multi-turn retrieval with a simulated shopper (ChatIR-style) on the H&M val split.

    source scripts/env.sh && .venv/bin/python -m bench.multiturn --checkpoint checkpoints/demo

An episode: a target garment and a start garment of the same product group (H&M's upper / lower
/ full body) that differ in 2-4 attributes (product type, colour, sleeve, neckline, length, fit,
waist, closure, pattern, material: the feedback generator's parse,
``dataprep.feedback.attributes``). The gallery is every val article (split by product code as
``dataprep.hm_triplets`` splits; nothing of the training side). Each turn the shopper names one
remaining difference between the current reference and the target as the shared generator writes
it (``dataprep.feedback.relations``' multi-change rule: relative for lengths and fit, negations
for "no sleeves"/"no hood"/"no print" half of the time), in its held-out phrasings
(``phrase(change, rng, "heldout")``: no training caption uses their templates or synonyms); the
system shows its top 10, leaving out the current reference as the app leaves out a catalog
reference (every system; ``model.evaluate`` does the same for single queries); the episode
succeeds when the target is shown. Otherwise the shopper continues from the shown item that
agrees with the target on most attributes (ties: the higher-ranked). Hits@10 after turn t: the
share of episodes that succeeded by turn t.

Systems (each runs its own episodes from the same starts, targets and seeds, so turn 1 is the
same query for every FashionVLP system but those that hide the start garment):

* no memory: a fresh ``encode_query(current reference, latest sentence)`` (the app before
  issue 36);
* joined: the current reference with every sentence so far joined by "and";
* memory: what ``Retriever.encode_conversation`` computes: the current reference with the
  latest sentence plus the earlier absolute requests still applying
  (``model.conversation.conversation_text``), moved away from the catalog vectors of the
  earlier turns' references (``model.conversation.away_from``) until the shopper clicks, and
  those references left out as the current one is (``app.memory.moved_on_from``);
* memory + passed-over: items already shown (and the start garment) rank below every unseen
  one (``app.reranking.penalised``, as the app demotes them);
* memory + clicks: the shopper also clicks "More like this" on the item it continues from and
  "Less like this" on the shown item that agrees least with the target; the query becomes
  ``app.reranking.rocchio`` of the query and those items' catalog vectors (every click of the
  episode so far), with the app's weights;
* memory + passed-over + clicks: both;
* combiner (joined): ``bench.baselines``' CLIP4Cir combiner, trained here on the train splits
  of the accuracy datasets (as ``bench.accuracy`` trains it), given the joined sentences.

Also measures how the memory reads one-change sentences of the generator (slot and kind, train
and held-out phrasings, by lexicon / text-model embedding / both). Writes
``bench/results/multiturn/<fingerprint>.json`` and ``<fingerprint>.png`` (Hits@10 by turn).
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from app import reranking
from bench._common import RESULTS, machine_line, run_benchmark, table
from dataprep import HM_ATTRIBUTES, Change, HMItem, change_between, phrase, read_items
from model.conversation import away_from, conversation_text
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

ATTRIBUTES = ("type", *HM_ATTRIBUTES)
SYSTEMS = ("no memory", "joined", "memory", "memory + passed-over", "memory + clicks",
           "memory + passed-over + clicks", "combiner (joined)")


@dataclass
class MultiturnConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    data: str = "data/hm"  # the triplets' FashionIQ layout: the val split and its galleries
    images: str = "../shared/data/hm/images"
    articles: str = "../shared/data/hm"  # articles.csv, read by dataprep.feedback.attributes
    # (without one: the attributes of DATA/metadata.csv)
    episodes: int = 300
    turns: int = 5
    top_k: int = 10
    seed: int = 0
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    min_changes: int = 2  # start and target differ in this many attributes ...
    max_changes: int = 4  # ... up to this many
    like_weight: float = reranking.LIKE_WEIGHT  # app.reranking.rocchio's, as the app clicks
    dislike_weight: float = reranking.DISLIKE_WEIGHT
    cache_dir: str = FEATURE_CACHE_DIR
    combiner_datasets: list[str] | None = None  # None: bench.datasets.DEFAULT_DATASETS
    combiner_epochs: int | None = None  # None: bench.baselines.DEFAULT_EPOCHS
    slot_sentences: int = 1500  # per split, for the slot/kind accuracy of the memory (0: skip)
    threads: int = 1
    out_dir: str = str(RESULTS)


# ------------------------------------------------------------------------------- articles


def read_garments(cfg: MultiturnConfig, ids: Sequence[str]) -> dict[str, HMItem]:
    """id -> article with its attributes: the feedback generator's parse of articles.csv
    (dataprep.feedback.attributes), else DATA/metadata.csv's columns (a dataset without
    H&M's articles.csv, such as the tests' tiny one)."""
    if (Path(cfg.articles) / "articles.csv").is_file():
        return {i.id: i for i in read_items(Path(cfg.articles), ids)}
    out = {}
    with open(Path(cfg.data) / "metadata.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            attrs = {a: row[a].strip().lower() for a in HM_ATTRIBUTES
                     if row.get(a, "").strip()}
            out[row["id"]] = HMItem(row["id"], row["id"], row["category"],
                                    row.get("product_type", ""), row.get("title", ""),
                                    attrs.get("colour"), "", "", attrs)
    return {i: out[i] for i in ids if i in out}


def look(item: HMItem) -> dict[str, str]:
    """The attributes a shopper compares: the parsed ones and the product type."""
    return {"type": item.product_type.lower(), **item.attributes} if item.product_type \
        else dict(item.attributes)


def differences(ref: HMItem, tgt: HMItem) -> list[str]:
    """Attributes both name with different values, in ATTRIBUTES order."""
    r, t = look(ref), look(tgt)
    return [a for a in ATTRIBUTES if a in r and a in t and r[a] != t[a]]


def agreement(item: HMItem, tgt: HMItem) -> int:
    """How many of the target's attributes the item shares."""
    i = look(item)
    return sum(i.get(a) == v for a, v in look(tgt).items())


@dataclass(frozen=True)
class Episode:
    start: str
    target: str
    seed: int


def sample_episodes(gallery: Sequence[str], items: dict[str, HMItem], cfg: MultiturnConfig
                    ) -> list[Episode]:
    """``cfg.episodes`` distinct (start, target) pairs of one product group differing in
    ``min_changes``-``max_changes`` attributes, drawn with ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    by_group: dict[str, list[str]] = {}
    for i in gallery:
        by_group.setdefault(items[i].group, []).append(i)
    chosen: dict[tuple[str, str], Episode] = {}
    for _ in range(200 * cfg.episodes):
        if len(chosen) == cfg.episodes:
            break
        tgt = gallery[int(rng.integers(len(gallery)))]
        starts = [s for s in by_group[items[tgt].group] if s != tgt and cfg.min_changes
                  <= len(differences(items[s], items[tgt])) <= cfg.max_changes]
        if starts:
            start = starts[int(rng.integers(len(starts)))]
            chosen.setdefault((start, tgt), Episode(start, tgt, int(rng.integers(2**31))))
    if len(chosen) < cfg.episodes:
        logger.warning("only %d distinct episodes of %d wanted", len(chosen), cfg.episodes)
    return list(chosen.values())


# ------------------------------------------------------------------------------- the shopper


def change_for(attribute: str, ref: HMItem, tgt: HMItem, rng: np.random.Generator) -> Change:
    """What a shopper asks for to move ``attribute`` from ``ref``'s value to ``tgt``'s: the
    feedback generator's rule (relative for lengths and fit, a negation for "no sleeves" /
    "no hood" / "no print" half of the time, the product type as the target's, ...); a value
    the reference does not name as the target's value."""
    said = change_between(attribute, ref, tgt, rng)
    if said is not None:
        return said[0]
    before = look(ref).get(attribute)
    return Change(attribute, "absolute", look(tgt)[attribute],
                  before if before and rng.random() < 0.2 else None)


def next_request(ref: HMItem, tgt: HMItem, said: set[str], rng: np.random.Generator
                 ) -> tuple[str, str]:
    """(attribute, sentence): one remaining difference, preferring one not said yet; when the
    reference already agrees on every attribute both name, one the target names that the
    reference does not (then any of the target's, said again)."""
    diff = differences(ref, tgt)
    r, t = look(ref), look(tgt)
    pool = ([a for a in diff if a not in said] or diff
            or [a for a in t if a not in r and a not in said] or list(t))
    attribute = pool[int(rng.integers(len(pool)))]
    return attribute, phrase(change_for(attribute, ref, tgt, rng), rng, "heldout")


# ------------------------------------------------------------------------------- systems

QueryEncoder = Callable[[Sequence[str], Sequence[str]], np.ndarray]  # (ref ids, texts) -> (Q, D)


@dataclass
class System:
    """How a turn's query is made and its ranking adjusted."""

    name: str
    encode: QueryEncoder
    gallery: np.ndarray  # (N, D) the catalog vectors this system ranks
    text: Callable[[list[str]], str]  # the sentences so far -> the query text
    passed_over: bool = False
    clicks: bool = False
    memory: bool = False  # remembers the earlier references: away from them while nothing is
    # clicked (model.conversation.away_from), and left out as the current one is


@dataclass
class State:
    """One episode's conversation under one system."""

    episode: Episode
    rng: np.random.Generator
    reference: str
    references: list[str] = field(default_factory=list)  # each turn's, oldest first
    sentences: list[str] = field(default_factory=list)
    said: set[str] = field(default_factory=set)
    shown: set[str] = field(default_factory=set)
    more: list[int] = field(default_factory=list)  # gallery rows clicked "More like this"
    less: list[int] = field(default_factory=list)
    hit_turn: int | None = None


def run_system(system: System, episodes: Sequence[Episode], gallery: Sequence[str],
               items: dict[str, HMItem], cfg: MultiturnConfig) -> dict:
    """Every episode under ``system``, turn by turn (each turn's queries in one batch)."""
    row = {g: k for k, g in enumerate(gallery)}
    states = [State(e, np.random.default_rng(e.seed), e.start, shown={e.start}) for e in episodes]
    for turn in range(1, cfg.turns + 1):
        active = [s for s in states if s.hit_turn is None]
        if not active:
            break
        for s in active:
            attribute, sentence = next_request(items[s.reference], items[s.episode.target],
                                               s.said, s.rng)
            s.said.add(attribute)
            s.sentences.append(sentence)
            s.references.append(s.reference)
        queries = system.encode([s.reference for s in active],
                                [system.text(s.sentences) for s in active])
        for s, q in zip(active, queries, strict=True):
            scores = system.gallery @ steered(system, s, q, row, cfg)
            scores[[row[i] for i in left_out(system, s)]] = -np.inf
            if system.passed_over:  # as the app demotes items seen (app.reranking)
                seen = np.zeros(len(gallery), dtype=bool)
                seen[[row[i] for i in s.shown]] = True
                scores = reranking.penalised(scores, seen)
            top = [gallery[k] for k in np.argsort(-scores, kind="stable")[:cfg.top_k]]
            _advance(s, top, turn, items, row)
    hits = [100.0 * np.mean([s.hit_turn is not None and s.hit_turn <= t for s in states])
            for t in range(1, cfg.turns + 1)]
    return {"hits@10": [round(float(h), 2) for h in hits], "episodes": len(states),
            "example": {"start": states[0].episode.start, "target": states[0].episode.target,
                        "sentences": states[0].sentences,
                        "query": system.text(states[0].sentences)} if states else {}}


def left_out(system: System, s: State) -> list[str]:
    """The references ``system`` leaves out of its ranking, as the app leaves out the catalog
    references of its chain (``app.memory.moved_on_from``): the shopper asked for something
    different from each. Every system leaves out the current one; with memory, earlier ones too."""
    return list(dict.fromkeys(s.references)) if system.memory else [s.reference]


def steered(system: System, s: State, query: np.ndarray, row: dict[str, int],
            cfg: MultiturnConfig) -> np.ndarray:
    """The turn's query as the app moves it: away from the earlier turns' references
    (``Retriever.encode_conversation``) until the shopper clicks, then by the clicks
    (``app.pipeline.run_query``)."""
    earlier = list(dict.fromkeys(s.references[:-1]))
    clicked = system.clicks and bool(s.more or s.less)  # _advance records them for every system
    if system.memory and earlier and not clicked:
        query = away_from(query, system.gallery[[row[i] for i in earlier]])
    if system.clicks:
        query = reranking.rocchio(query, system.gallery[s.more], system.gallery[s.less],
                                  like_weight=cfg.like_weight, dislike_weight=cfg.dislike_weight)
    return query


def _advance(s: State, top: list[str], turn: int, items: dict[str, HMItem],
             row: dict[str, int]) -> None:
    """Score the turn; on a miss, move to the best shown item and record the clicks."""
    s.shown.update(top)
    target = s.episode.target
    if target in top:
        s.hit_turn = turn
        return
    agree = [agreement(items[i], items[target]) for i in top]
    best = int(np.argmax(agree))  # first of the ties: the higher-ranked
    worst = len(agree) - 1 - int(np.argmin(agree[::-1]))  # last of the ties
    s.reference = top[best]
    s.more.append(row[top[best]])
    if worst != best:
        s.less.append(row[top[worst]])


# ------------------------------------------------------------------------------- encoders


def model_systems(retriever, bank, gallery: Sequence[str], names: Sequence[str]
                  ) -> list[System]:
    """The FashionVLP systems over the val bank (its gallery vectors encoded once)."""
    from model.evaluate import model_encoders

    queries, encode_gallery = model_encoders(retriever, bank)
    vectors = encode_gallery(list(gallery))
    texts = {"no memory": lambda s: s[-1], "joined": " and ".join,
             "memory": conversation_text}
    out = []
    for name in names:
        if name == "combiner (joined)":
            continue
        base = name.split(" + ")[0]
        out.append(System(name, queries, vectors, texts[base],
                          passed_over="passed-over" in name, clicks="clicks" in name,
                          memory=base == "memory"))
    return out


def pooled_features(encoder, paths: dict[str, Path], cache_dir: str | None
                    ) -> tuple[dict[str, int], torch.Tensor]:
    """(id -> row, (N, C) pooled image features) as ``bench.baselines.pooled_image_features``
    computes them, read one cached file at a time: the combiner needs only the pooled vector,
    and a FeatureBank of every training image holds 4 GB of tokens (twice that while built)."""
    from bench.baselines import IMAGE_CHANNELS, pooled_image_features
    from imaging import file_sha256
    from model.feature_cache import FeatureCache, extract_features

    cache = FeatureCache(cache_dir, encoder.cache_key) if cache_dir else None
    grid = encoder.grid * encoder.grid
    rows: dict[str, int] = {}
    out: list[torch.Tensor] = []
    missing = {}
    for i, path in tqdm(paths.items(), desc="pooled features", unit="img", mininterval=10):
        tokens = cache.load(file_sha256(path)) if cache else None
        if tokens is None:
            missing[i] = path
            continue
        rows[i] = len(out)
        out.append(torch.from_numpy(tokens[:grid, :IMAGE_CHANNELS]).float().mean(0))
    if missing:
        bank = extract_features(encoder, missing, cache_dir)
        pooled = pooled_image_features(bank)
        for i, r in bank.index.items():
            rows[i] = len(out)
            out.append(pooled[r])
    return rows, torch.stack(out)


def combiner_system(cfg: MultiturnConfig, retriever, gallery: Sequence[str]) -> tuple[System,
                                                                                      dict]:
    """bench.baselines' combiner trained as bench.accuracy trains it (the train splits of its
    datasets, the best epoch on their val splits), given the joined sentences."""
    from types import SimpleNamespace

    from bench.baselines import (
        BaselineConfig,
        baseline_encoders,
        build_baseline,
        train_baseline,
        triplet_tensors,
    )
    from bench.datasets import (
        DEFAULT_DATASETS,
        image_paths,
        read_splits,
        restrict,
        train_record,
        val_score,
    )
    from bench.text_features import TextConfig, TextEmbedder

    data = read_splits(cfg.combiner_datasets or DEFAULT_DATASETS)
    paths = image_paths(data)
    rows, images = pooled_features(retriever.encoder, paths, cfg.cache_dir or None)
    restrict(data, SimpleNamespace(index=rows,
                                   failed={i: "no features" for i in paths if i not in rows}))
    embed = TextEmbedder(TextConfig(cache_dir=cfg.cache_dir or None))
    train = triplet_tensors([t for d in data for t in d.train.triplets], rows, images, embed)
    bcfg = BaselineConfig(epochs=cfg.combiner_epochs)
    model = build_baseline("combiner", images.shape[1], embed.dim, bcfg)
    val_queries = train_record(retriever.meta).get("max_val_queries") or 1000  # as there
    stats = train_baseline(model, train, bcfg, lambda m: val_score(
        data, baseline_encoders(m, rows, images, embed), val_queries))
    queries, encode_gallery = baseline_encoders(model, rows, images, embed)
    return System("combiner (joined)", queries, encode_gallery(list(gallery)),
                  " and ".join), stats


# ------------------------------------------------------------------------------- understanding

# The generator's slots as the memory names them (pattern and material are one group, as
# bench.accuracy groups them: H&M calls lace and denim both).
CANONICAL = {"lightness": "colour", "saturation": "colour", "hood": "neckline",
             "material": "pattern"}


def slot_accuracy(items: Sequence[HMItem], n: int, seed: int) -> dict:
    """How often the memory reads a one-change sentence right, per split of the generator's
    phrasings and per way of deciding the slot: the slot (every clause with a slot has the
    change's slot) and the kind (relative or not)."""
    from dataprep import RELATIVE, example_changes
    from model.conversation import (
        OTHER,
        SlotClassifier,
        is_relative,
        minilm_embedder,
        split_clauses,
    )

    values = sorted({(a, v) for item in items for a, v in look(item).items()})
    pool = [Change(a, "absolute", v) for a, v in values]
    pool += [Change(slot, "relative", v) for slot, v in RELATIVE]
    pool += [c for c in example_changes() if c.kind == "negation"]
    embed, memo = minilm_embedder(), {}

    def cached(texts: Sequence[str]) -> np.ndarray:  # one text-model pass per distinct clause
        new = [t for t in dict.fromkeys(texts) if t not in memo]
        if new:
            memo.update(zip(new, embed(new), strict=True))
        return np.stack([memo[t] for t in texts])

    out: dict[str, dict] = {}
    for split in ("train", "heldout"):
        rng = np.random.default_rng(seed)
        changes = [pool[int(rng.integers(len(pool)))] for _ in range(n)]
        clauses = [split_clauses(phrase(c, rng, split)) for c in changes]
        kind = [any(map(is_relative, cl)) == (c.kind == "relative")
                for c, cl in zip(changes, clauses, strict=True)]
        out[split] = {"sentences": n, "kind": round(100.0 * float(np.mean(kind)), 2)}
        for mode in ("lexicon", "embedding", "lexicon+embedding"):
            classifier = SlotClassifier(embed=cached, mode=mode)
            right = [{CANONICAL.get(s, s) for s in classifier.slots(cl) if s != OTHER}
                     == {CANONICAL.get(c.slot, c.slot)}
                     for c, cl in zip(changes, clauses, strict=True)]
            out[split][f"slot ({mode})"] = round(100.0 * float(np.mean(right)), 2)
    return out


# ------------------------------------------------------------------------------- run


def run(cfg: MultiturnConfig) -> dict:
    from dataprep import load_fashioniq
    from model import load_retriever
    from model.feature_cache import extract_features

    torch.set_num_threads(cfg.threads)
    retriever = load_retriever(cfg.checkpoint)
    val = load_fashioniq(cfg.data, cfg.images, "val")
    gallery = list(dict.fromkeys(i for c in val.categories for i in val.gallery[c]))
    items = read_garments(cfg, gallery)
    bank = extract_features(retriever.encoder, {i: val.image_paths[i] for i in gallery},
                            cfg.cache_dir or None)
    gallery = [i for i in gallery if i in bank.index and i in items]
    episodes = sample_episodes(gallery, items, cfg)
    systems = model_systems(retriever, bank, gallery, cfg.systems)
    training = None
    if "combiner (joined)" in cfg.systems:
        combiner, training = combiner_system(cfg, retriever, gallery)
        systems.append(combiner)
    results = {}
    for system in systems:
        results[system.name] = run_system(system, episodes, gallery, items, cfg)
        logger.info("%s: Hits@10 by turn %s", system.name, results[system.name]["hits@10"])
    understanding = (slot_accuracy([items[i] for i in gallery], cfg.slot_sentences, cfg.seed)
                     if cfg.slot_sentences else None)
    return {"checkpoint": cfg.checkpoint, "fingerprint": retriever.fingerprint,
            "config": asdict(cfg), "gallery": len(gallery), "episodes": len(episodes),
            "slot_accuracy": understanding,
            "changes": _histogram([len(differences(items[e.start], items[e.target]))
                                   for e in episodes]),
            "results": results, "combiner_training": training}


def _histogram(values: Sequence[int]) -> dict[str, int]:
    return {str(v): int(n) for v, n in zip(*np.unique(values, return_counts=True), strict=True)}


def format_table(report: dict) -> str:
    turns = report["config"]["turns"]
    rows = [(name, *[f"{h:.1f}" for h in r["hits@10"]])
            for name, r in report["results"].items()]
    return table(rows, ("system", *[f"turn {t}" for t in range(1, turns + 1)]))


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    turns = range(1, report["config"]["turns"] + 1)
    for name, r in report["results"].items():
        ax.plot(turns, r["hits@10"], marker="o", label=name)
    ax.set_xlabel("turn")
    ax.set_ylabel("Hits@10 (%)")
    ax.set_xticks(list(turns))
    ax.set_ylim(0, 100)
    ax.set_title(f"H&M val, {report['episodes']} simulated shoppers, "
                 f"checkpoint {report['fingerprint']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None) -> MultiturnConfig:
    d = MultiturnConfig()
    p = argparse.ArgumentParser(prog="python -m bench.multiturn", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=d.checkpoint)
    p.add_argument("--data", default=d.data)
    p.add_argument("--images", default=d.images)
    p.add_argument("--episodes", type=int, default=d.episodes)
    p.add_argument("--turns", type=int, default=d.turns)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--systems", nargs="+", default=d.systems, choices=SYSTEMS)
    p.add_argument("--min-changes", type=int, default=d.min_changes)
    p.add_argument("--max-changes", type=int, default=d.max_changes)
    p.add_argument("--articles", default=d.articles)
    p.add_argument("--like-weight", type=float, default=d.like_weight)
    p.add_argument("--dislike-weight", type=float, default=d.dislike_weight)
    p.add_argument("--cache-dir", default=d.cache_dir, help="feature cache ('' disables)")
    p.add_argument("--combiner-datasets", nargs="+", metavar="ANN[:IMAGES]",
                   help="the combiner's training data (default: bench.accuracy's datasets)")
    p.add_argument("--combiner-epochs", type=int)
    p.add_argument("--slot-sentences", type=int, default=d.slot_sentences,
                   help="sentences per split for the memory's slot accuracy (0: skip)")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out-dir", default=d.out_dir)
    a = p.parse_args(argv)
    return replace(d, **vars(a))


def main(argv: Sequence[str] | None = None) -> dict:
    cfg, report, path = run_benchmark("multiturn", argv, parse_args, run)
    report_png = path.with_suffix(".png")
    plot(report, report_png)
    print(f"\n$ {report['command']}\n{machine_line()}\n{report['episodes']} episodes over a "
          f"gallery of {report['gallery']} val articles; changes per episode "
          f"{report['changes']}; Hits@{cfg.top_k} after each turn (%):\n")
    print(format_table(report))
    if report["slot_accuracy"]:
        print("\nthe memory's reading of one-change sentences (% right):")
        acc = report["slot_accuracy"]
        keys = [k for k in acc["heldout"] if k != "sentences"]
        print(table([(split, *[f"{acc[split][k]:.1f}" for k in keys]) for split in acc],
                    ("phrasings", *keys)))
    print(f"\nwrote {path} and {report_png}")
    return report


if __name__ == "__main__":
    main()
