"""Multi-turn retrieval with a simulated shopper (ChatIR-style) on the H&M val split.

    source scripts/env.sh && .venv/bin/python -m bench.multiturn --checkpoint checkpoints/demo

An episode: a target garment and a start garment of the same product group (H&M's upper /
lower / full body) that differ in 2-4 attributes (product type, colour, sleeve, neckline,
length, fit, waist, closure, pattern, material: ``dataprep.hm_triplets``' parse, from the
dataset's metadata.csv). Each turn the shopper names one remaining difference between the
current reference and the target, written by the shared feedback generator in its held-out
phrasings (``dataprep.feedback.phrasing.phrase(change, rng, "heldout")``: none of them occurs
in training captions); the system shows its top 10 of the gallery (every val article of all
groups); the episode succeeds when the target is shown. Otherwise the shopper continues from
the shown item that agrees with the target on most attributes (ties: the higher-ranked).
Hits@10 after turn t is the share of episodes that succeeded by turn t.

Systems (each runs its own episodes from the same starts, targets and seeds, so turn 1 is the
same query for all model systems):

* no memory: a fresh ``encode_query(current reference, latest sentence)`` (the app today);
* joined: the current reference with every sentence so far joined by "and";
* memory: ``model.conversation.conversation_text`` (what ``Retriever.encode_conversation``
  encodes): the latest sentence plus the earlier absolute requests still applying;
* memory + passed-over: items already shown rank below every unseen one;
* memory + clicks: the shopper also clicks "More like this" on the item it continues from and
  "Less like this" on the shown item that agrees least with the target; the query becomes a
  Rocchio combination with those items' catalog vectors (all clicks of the episode so far);
* memory + passed-over + clicks: both;
* combiner (joined): ``bench.baselines``' CLIP4Cir combiner, trained here on the train splits
  of the accuracy datasets (as ``bench.accuracy`` trains it), given the joined sentences.

Writes ``bench/results/multiturn/<fingerprint>.json`` and ``<fingerprint>.png`` (Hits@10 by
turn). ``--latency`` instead times ``encode_conversation`` against ``encode_query`` as the app
calls them (bench/conversation_latency.py).
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

from bench._common import RESULTS, machine_line, run_benchmark, table
from dataprep.feedback.phrasing import Change, phrase
from project_settings import DEFAULT_CHECKPOINT, FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

ATTRIBUTES = ("type", "colour", "sleeve", "neckline", "length", "fit", "waist", "closure",
              "pattern", "material")
# Ordered values: a difference between two of them may be said relatively ("shorter").
ORDERS = {
    "length": (("short", "knee-length", "calf-length", "ankle-length"), ("shorter", "longer")),
    "sleeve": (("sleeveless", "short sleeves", "three-quarter sleeves", "long sleeves"),
               ("shorter", "longer")),
    "fit": (("skinny", "slim fit", "regular fit", "relaxed fit"), ("tighter", "looser")),
}
RELATIVE_SHARE = 0.5  # chance that a difference that can be said relatively is
NEGATION_SHARE = 0.5  # chance that "no sleeves" / "no hood" is said as a negation
SYSTEMS = ("no memory", "joined", "memory", "memory + passed-over", "memory + clicks",
           "memory + passed-over + clicks", "combiner (joined)")


@dataclass
class MultiturnConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    data: str = "data/hm"  # FashionIQ layout + metadata.csv with the parsed attributes
    images: str = "../shared/data/hm/images"
    episodes: int = 300
    turns: int = 5
    top_k: int = 10
    seed: int = 0
    systems: list[str] = field(default_factory=lambda: list(SYSTEMS))
    min_changes: int = 2  # start and target differ in this many attributes ...
    max_changes: int = 4  # ... up to this many
    rocchio: tuple[float, float, float] = (1.0, 0.8, 0.3)  # query, "more like", "less like"
    cache_dir: str = FEATURE_CACHE_DIR
    combiner_datasets: list[str] | None = None  # None: bench.accuracy.DEFAULT_DATASETS
    combiner_epochs: int | None = None  # None: bench.baselines.DEFAULT_EPOCHS
    slot_sentences: int = 1500  # per split, for the slot/kind accuracy of the memory (0: skip)
    threads: int = 1
    out_dir: str = str(RESULTS)


# ------------------------------------------------------------------------------- articles


def read_attributes(data: Path | str) -> dict[str, dict[str, str]]:
    """id -> {attribute: value} from metadata.csv (product_type as "type"; empty cells out)."""
    out = {}
    with open(Path(data) / "metadata.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            attrs = {a: row.get("product_type" if a == "type" else a, "") for a in ATTRIBUTES}
            out[row["id"]] = {a: v.strip().lower() for a, v in attrs.items() if v and v.strip()}
    return out


def differences(ref: dict[str, str], tgt: dict[str, str]) -> list[str]:
    """Attributes both name with different values, in ATTRIBUTES order."""
    return [a for a in ATTRIBUTES if a in ref and a in tgt and ref[a] != tgt[a]]


def agreement(item: dict[str, str], tgt: dict[str, str]) -> int:
    """How many of the target's attributes the item shares."""
    return sum(item.get(a) == v for a, v in tgt.items())


@dataclass(frozen=True)
class Episode:
    start: str
    target: str
    seed: int


def sample_episodes(gallery: Sequence[str], category: dict[str, str],
                    attrs: dict[str, dict[str, str]], cfg: MultiturnConfig) -> list[Episode]:
    """``cfg.episodes`` distinct (start, target) pairs of one group differing in
    ``min_changes``-``max_changes`` attributes, drawn with ``cfg.seed``."""
    rng = np.random.default_rng(cfg.seed)
    by_group: dict[str, list[str]] = {}
    for i in gallery:
        by_group.setdefault(category[i], []).append(i)
    targets = [i for i in gallery if i in attrs]
    chosen: dict[tuple[str, str], Episode] = {}
    for _ in range(200 * cfg.episodes):
        if len(chosen) == cfg.episodes:
            break
        tgt = targets[int(rng.integers(len(targets)))]
        starts = [s for s in by_group[category[tgt]] if s != tgt and s in attrs
                  and cfg.min_changes <= len(differences(attrs[s], attrs[tgt]))
                  <= cfg.max_changes]
        if starts:
            start = starts[int(rng.integers(len(starts)))]
            chosen.setdefault((start, tgt), Episode(start, tgt, int(rng.integers(2**31))))
    if len(chosen) < cfg.episodes:
        logger.warning("only %d distinct episodes of %d wanted", len(chosen), cfg.episodes)
    return list(chosen.values())


# ------------------------------------------------------------------------------- the shopper


def change_for(attribute: str, ref: dict[str, str], tgt: dict[str, str],
               rng: np.random.Generator) -> Change:
    """What a shopper asks for to move ``attribute`` from ``ref``'s value to ``tgt``'s:
    relatively when the values are ordered ("shorter"), as a negation for "no sleeves" / "no
    hood" (each half of the time where possible), else the target's value."""
    value, before = tgt[attribute], ref.get(attribute)
    if attribute in ORDERS and before is not None and rng.random() < RELATIVE_SHARE:
        order, (down, up) = ORDERS[attribute]
        if value in order and before in order:
            return Change(attribute, "relative", down if order.index(value) < order.index(
                before) else up)
    if rng.random() < NEGATION_SHARE:
        if attribute == "sleeve" and value == "sleeveless":
            return Change("sleeve", "negation", "sleeves")
        if attribute == "neckline" and before == "hood":
            return Change("hood", "negation", "hood")
    return Change(attribute, "absolute", value, before)


def next_request(ref: dict[str, str], tgt: dict[str, str], said: set[str],
                 rng: np.random.Generator) -> tuple[str, str]:
    """(attribute, sentence): one remaining difference, preferring one not said yet; when the
    reference already agrees on every attribute both name, one the target names that the
    reference does not (then any of the target's, said again)."""
    diff = differences(ref, tgt)
    pool = ([a for a in diff if a not in said] or diff
            or [a for a in tgt if a not in ref and a not in said] or list(tgt))
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


def rocchio(query: np.ndarray, more: np.ndarray, less: np.ndarray,
            weights: tuple[float, float, float]) -> np.ndarray:
    """normalise(a q + b mean(more) - c mean(less)) over the clicked items' catalog vectors.

    Private to the bench until the app's app/reranking.py exists; then the bench uses that."""
    a, b, c = weights
    out = a * query
    if len(more):
        out = out + b * more.mean(0)
    if len(less):
        out = out - c * less.mean(0)
    return out / max(float(np.linalg.norm(out)), 1e-12)


@dataclass
class State:
    """One episode's conversation under one system."""

    episode: Episode
    rng: np.random.Generator
    reference: str
    sentences: list[str] = field(default_factory=list)
    said: set[str] = field(default_factory=set)
    shown: set[str] = field(default_factory=set)
    more: list[int] = field(default_factory=list)  # gallery rows clicked "More like this"
    less: list[int] = field(default_factory=list)
    hit_turn: int | None = None


def run_system(system: System, episodes: Sequence[Episode], gallery: Sequence[str],
               attrs: dict[str, dict[str, str]], cfg: MultiturnConfig) -> dict:
    """Every episode under ``system``, turn by turn (each turn's queries in one batch)."""
    row = {g: k for k, g in enumerate(gallery)}
    states = [State(e, np.random.default_rng(e.seed), e.start, shown={e.start}) for e in episodes]
    for turn in range(1, cfg.turns + 1):
        active = [s for s in states if s.hit_turn is None]
        if not active:
            break
        for s in active:
            attribute, sentence = next_request(attrs[s.reference], attrs[s.episode.target],
                                               s.said, s.rng)
            s.said.add(attribute)
            s.sentences.append(sentence)
        queries = system.encode([s.reference for s in active],
                                [system.text(s.sentences) for s in active])
        for s, q in zip(active, queries, strict=True):
            if system.clicks:
                q = rocchio(q, system.gallery[s.more], system.gallery[s.less], cfg.rocchio)
            scores = system.gallery @ q
            if system.passed_over:
                scores[[row[i] for i in s.shown]] -= 4.0  # below every unseen item
            top = [gallery[k] for k in np.argsort(-scores, kind="stable")[:cfg.top_k]]
            _advance(s, top, turn, attrs, row)
    hits = [100.0 * np.mean([s.hit_turn is not None and s.hit_turn <= t for s in states])
            for t in range(1, cfg.turns + 1)]
    return {"hits@10": [round(float(h), 2) for h in hits], "episodes": len(states),
            "example": {"start": states[0].episode.start, "target": states[0].episode.target,
                        "sentences": states[0].sentences,
                        "query": system.text(states[0].sentences)} if states else {}}


def _advance(s: State, top: list[str], turn: int, attrs: dict[str, dict[str, str]],
             row: dict[str, int]) -> None:
    """Score the turn; on a miss, move to the best shown item and record the clicks."""
    s.shown.update(top)
    target = s.episode.target
    if target in top:
        s.hit_turn = turn
        return
    tgt = attrs[target]
    agree = [agreement(attrs.get(i, {}), tgt) for i in top]
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
    from model.conversation import conversation_text
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
                          passed_over="passed-over" in name, clicks="clicks" in name))
    return out


def combiner_system(cfg: MultiturnConfig, retriever, gallery: Sequence[str]) -> tuple[System,
                                                                                      dict]:
    """bench.baselines' combiner trained as bench.accuracy trains it, given joined sentences."""
    from bench.accuracy import DEFAULT_DATASETS, AccuracyConfig, load_data, val_score
    from bench.baselines import (
        BaselineConfig,
        baseline_encoders,
        build_baseline,
        pooled_image_features,
        train_baseline,
        triplet_tensors,
    )
    from bench.text_features import TextConfig, TextEmbedder

    acc = AccuracyConfig(checkpoint=cfg.checkpoint, cache_dir=cfg.cache_dir,
                         datasets=cfg.combiner_datasets or list(DEFAULT_DATASETS))
    data, bank = load_data(acc, retriever.encoder)
    images, rows = pooled_image_features(bank), bank.index
    embed = TextEmbedder(TextConfig(model=acc.text_model, cache_dir=cfg.cache_dir or None))
    train = triplet_tensors([t for d in data for t in d.train.triplets], rows, images, embed)
    bcfg = BaselineConfig(epochs=cfg.combiner_epochs)
    model = build_baseline("combiner", images.shape[1], embed.dim, bcfg)
    stats = train_baseline(model, train, bcfg, lambda m: val_score(
        data, baseline_encoders(m, rows, images, embed), 300))
    queries, encode_gallery = baseline_encoders(model, rows, images, embed)
    return System("combiner (joined)", queries, encode_gallery(list(gallery)),
                  " and ".join), stats


# ------------------------------------------------------------------------------- understanding

# The generator's slots as the memory names them (pattern and material are one group, as
# bench.accuracy groups them: H&M calls lace and denim both).
CANONICAL = {"lightness": "colour", "saturation": "colour", "hood": "neckline",
             "material": "pattern"}


def slot_accuracy(attrs: dict[str, dict[str, str]], n: int, seed: int) -> dict:
    """How often the memory reads a one-change sentence right, per split of the generator's
    phrasings and per way of deciding the slot: the slot (every clause with a slot has the
    change's slot) and the kind (relative or not)."""
    from dataprep.feedback.phrasing import RELATIVE, example_changes
    from model.conversation import (
        OTHER,
        SlotClassifier,
        is_relative,
        minilm_embedder,
        split_clauses,
    )

    values = sorted({(a, v) for item in attrs.values() for a, v in item.items()})
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
    category = {i: c for c in val.categories for i in val.gallery[c]}
    attrs = read_attributes(cfg.data)
    bank = extract_features(retriever.encoder, {i: val.image_paths[i] for i in gallery},
                            cfg.cache_dir or None)
    gallery = [i for i in gallery if i in bank.index and i in attrs]
    episodes = sample_episodes(gallery, category, attrs, cfg)
    systems = model_systems(retriever, bank, gallery, cfg.systems)
    training = None
    if "combiner (joined)" in cfg.systems:
        combiner, training = combiner_system(cfg, retriever, gallery)
        systems.append(combiner)
    results = {}
    for system in systems:
        results[system.name] = run_system(system, episodes, gallery, attrs, cfg)
        logger.info("%s: Hits@10 by turn %s", system.name, results[system.name]["hits@10"])
    understanding = (slot_accuracy({i: attrs[i] for i in gallery}, cfg.slot_sentences,
                                   cfg.seed) if cfg.slot_sentences else None)
    return {"checkpoint": cfg.checkpoint, "fingerprint": retriever.fingerprint,
            "config": asdict(cfg), "gallery": len(gallery), "episodes": len(episodes),
            "slot_accuracy": understanding,
            "changes": _histogram([len(differences(attrs[e.start], attrs[e.target]))
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
    p.add_argument("--rocchio", type=float, nargs=3, default=d.rocchio,
                   metavar=("QUERY", "MORE", "LESS"))
    p.add_argument("--cache-dir", default=d.cache_dir, help="feature cache ('' disables)")
    p.add_argument("--combiner-datasets", nargs="+", metavar="ANN[:IMAGES]",
                   help="the combiner's training data (default: bench.accuracy's datasets)")
    p.add_argument("--combiner-epochs", type=int)
    p.add_argument("--slot-sentences", type=int, default=d.slot_sentences,
                   help="sentences per split for the memory's slot accuracy (0: skip)")
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--out-dir", default=d.out_dir)
    a = p.parse_args(argv)
    return replace(d, **{**vars(a), "rocchio": tuple(a.rocchio)})


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
