"""Write the H&M feedback queries as a FashionIQ-format dataset that ``model.train`` reads,
or another catalog's val-only yardstick that ``bench.feedback_rows`` scores.

    python -m dataprep.feedback --data ../shared/data/hm --out data/hm_feedback
    python -m dataprep.feedback --catalog products --data ../shared/data/fashion-products \
        --products-split data/products --out data/products_feedback
    python -m dataprep.feedback --catalog products --products-part train \
        --data ../shared/data/fashion-products --products-split data/products \
        --out data/products_feedback_train

The products yardstick (``dataprep.feedback.products``): the val images of ``data/products``,
val queries only, held-out phrasing families only, relevant sets drawn from every item of the
reference's type and gender (no colourway links there), ``stats.json`` with each row's query
count and median relevant-set size and the share of photos with a measured lightness. With
``--products-part train`` the same relations are written on that split's *training* photos in
training phrasings (train triplets only), so a request such as "not in black" is learnt on a
second catalog's photos too, not on H&M's alone; the yardstick's val photos are never read.

Layout (``dataprep.layout``): ``captions/cap.{cat}.{split}.json``, ``image_splits/``,
``metadata.csv`` (every H&M article: product type and group, parsed attributes, colour),
``stats.json`` and ``lightness.csv`` (the measured L* cache). Images stay where they are: pass
``../shared/data/hm/images`` as the image folder, e.g.

    bash train.sh data/demo_catalog,data/products,data/hm,data/hm_feedback \\
        data/demo_catalog/images,../shared/data/fashion-products/images,\\
../shared/data/hm/images,../shared/data/hm/images 64 N

Categories: a training triplet's category is its reference's product group (upper, lower,
full, accessories, shoes, underwear, ...), so one-category batches hold comparable items; its
gallery is every training article of the group. Val categories are the query kinds
(``relative``, ``negation``, ``multi``, ``colourway``, ``type``), each ranking one gallery of
*every* val article (garments, shoes, bags, underwear, accessories, no filter): the mixed
catalog.

Captions: training triplets carry two captions in training phrasing families
(:data:`~dataprep.feedback.TRAIN_FAMILIES`); val queries one caption in one held-out family
(:data:`~dataprep.feedback.HELDOUT_FAMILIES`), named in the entry; every val colourway query
appears once per held-out family, for the per-family rows.

Every entry also carries: ``tags`` (kind, bench row, relation[, "family:NAME"], always in
that order, so a reader of ``dataprep.Triplet.tags`` finds each by position),
``relation``, ``row``, ``changes`` ([slot, kind, value, ref_value] each), ``relevant`` (every
article of the split that satisfies the request) and ``negatives`` (hard negatives: items
that look right and are not, then items of another product group in the target's colour).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dataprep.feedback.attributes import HMItem, read_items
from dataprep.feedback.lightness import CACHE_NAME, LightnessConfig, image_paths, measure
from dataprep.feedback.phrasing import HELDOUT_FAMILIES, join
from dataprep.feedback.products import read_products, split_ids
from dataprep.feedback.relations import ROWS, Catalog, Query, RelationConfig, all_queries
from dataprep.feedback.yardstick import MIN_VAL_QUERIES, format_yardstick, yardstick_stats
from dataprep.hm_triplets import ATTRIBUTES
from dataprep.layout import write_json, write_metadata, write_split

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
VAL_KINDS = ("relative", "negation", "multi", "colourway", "type")
# Kinds added after the first datasets were trained on: their phrasings and val order draw
# from a generator of their own, so the earlier kinds' captions stay exactly as they were.
LATER_KINDS = ("type",)
# Each split phrases from generators of its own, so training words can grow without moving a
# single val caption (they shared one until stage 73's lexicon: its val draws are new).
MIN_TRAIN_TRIPLETS = 300  # below this a relation is flagged as too little to train on
CATALOGS = ("hm", "products")
PRODUCTS_PARTS = ("val", "train")  # the yardstick, or training requests on training photos
# The products yardstick keeps whole relevant sets (its gallery is ~3,000 items): no cut.
PRODUCTS_MAX_RELEVANT = 100_000


@dataclass
class FeedbackConfig:
    """Inputs and knobs; the same config always writes the same files."""

    data: Path
    out: Path
    seed: int = 0
    relations: RelationConfig = field(default_factory=RelationConfig)
    lightness: LightnessConfig = field(default_factory=LightnessConfig)
    catalog: str = "hm"  # hm: train + val; products: one part of the products split
    products_split: Path | None = None  # products: the split whose images are queried
    products_part: str = "val"  # products: val (the yardstick) or train (training triplets)


def read_catalog(cfg: FeedbackConfig) -> list[HMItem]:
    """The catalog's items: every H&M article, or one part of the products split."""
    if cfg.catalog == "hm":
        return read_items(cfg.data)
    if cfg.catalog != "products":
        raise ValueError(f"unknown catalog {cfg.catalog!r}; known: {CATALOGS}")
    if cfg.products_split is None:
        raise ValueError("the products catalog needs products_split (e.g. data/products)")
    if cfg.products_part not in PRODUCTS_PARTS:
        raise ValueError(f"unknown products part {cfg.products_part!r}; known: {PRODUCTS_PARTS}")
    return read_products(cfg.data, split_ids(cfg.products_split, cfg.products_part),
                         cfg.products_part)


def _change_rows(q: Query) -> list[list[str | None]]:
    return [[c.slot, c.kind, c.value, c.ref_value] for c in q.changes]


def train_entry(q: Query, rng: np.random.Generator) -> dict:
    """Two different training phrasings of the request."""
    first = join(q.changes, rng, "train")
    second = first
    for _ in range(6):
        second = join(q.changes, rng, "train")
        if second != first:
            break
    return _entry(q, [first, second])


def val_entries(q: Query, rng: np.random.Generator) -> list[dict]:
    """One held-out phrasing (a random family); colourway queries once per family."""
    families = ([f.name for f in HELDOUT_FAMILIES] if q.relation == "colourway" else
                [HELDOUT_FAMILIES[int(rng.integers(len(HELDOUT_FAMILIES)))].name])
    return [_entry(q, [join(q.changes, rng, "heldout", f)], f) for f in families]


def _entry(q: Query, captions: list[str], family: str | None = None) -> dict:
    tags = [q.kind, q.row, q.relation] + ([f"family:{family}"] if family else [])
    entry = {"candidate": q.reference.id, "target": q.target.id, "captions": captions,
             "tags": tags, "relation": q.relation, "row": q.row,
             "changes": _change_rows(q), "relevant": q.relevant, "negatives": q.negatives}
    if family:
        entry["family"] = family
    return entry


def build_feedback(cfg: FeedbackConfig) -> dict:
    """Write the dataset under cfg.out; returns the stats (also in stats.json)."""
    yardstick = cfg.catalog != "hm" and cfg.products_part == "val"
    if yardstick:  # a yardstick keeps whole relevant sets
        cfg = replace(cfg, relations=replace(cfg.relations, max_relevant=PRODUCTS_MAX_RELEVANT))
    items = read_catalog(cfg)
    if not items:
        raise FileNotFoundError(f"no {cfg.catalog} items with images under {cfg.data}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    lightness = measure(image_paths(cfg.data, [i.id for i in items]), cfg.out / CACHE_NAME,
                        cfg.lightness)
    cat = Catalog(items, lightness, colourways=cfg.catalog == "hm")
    queries = all_queries(cat, cfg.relations, cfg.seed)
    streams = {(split, later): np.random.default_rng([cfg.seed, 98 if later else 99, k])
               for k, split in enumerate(SPLITS) for later in (False, True)}
    by_split: dict[str, dict[str, list[dict]]] = {s: {} for s in SPLITS}
    for q in queries:
        split = "train" if q.reference.split == "train" else "val"
        rng = streams[split, q.kind in LATER_KINDS]
        if split == "train":
            by_split["train"].setdefault(q.reference.group, []).append(train_entry(q, rng))
        else:
            by_split["val"].setdefault(q.kind, []).extend(val_entries(q, rng))
    for kind, entries in by_split["val"].items():  # validation caps queries: mix the order
        order = streams["val", kind in LATER_KINDS].permutation(len(entries))
        entries[:] = [entries[int(k)] for k in order]
    for group in sorted({i.group for i in items if i.split == "train"}):
        gallery = [i.id for i in items if i.split == "train" and i.group == group]
        write_split(cfg.out, group, "train", by_split["train"].get(group, []), gallery)
    val_gallery = [i.id for i in items if i.split == "val"]
    for kind in VAL_KINDS:  # a train-only build writes them empty: trained on, not scored
        write_split(cfg.out, kind, "val", by_split["val"].get(kind, []), val_gallery)
    gender = ["gender"] if cfg.catalog == "products" else []
    write_metadata(cfg.out / "metadata.csv",
                   ["product_type", "product_group", *ATTRIBUTES, "description", *gender],
                   ((i.id, i.group, i.title,
                     [i.product_type, i.group, *(i.attributes.get(k, "") for k in ATTRIBUTES),
                      i.description, *([i.gender or ""] if gender else [])]) for i in items))
    stats = _stats(items, queries, by_split, lightness, cfg)
    if yardstick:
        stats["yardstick"] = yardstick_stats(items, queries, lightness)
    write_json(cfg.out / "stats.json", stats, indent=2)
    return stats


def _stats(items, queries: Sequence[Query], by_split, lightness, cfg: FeedbackConfig) -> dict:
    triplets = {s: Counter(e["relation"] for es in by_split[s].values() for e in es)
                for s in SPLITS}
    queries_per = {s: Counter(q.relation for q in queries if q.reference.split == s)
                   for s in SPLITS}
    rows = {s: Counter(q.row for q in queries if q.reference.split == s) for s in SPLITS}
    floors = {"val": MIN_VAL_QUERIES, "train": MIN_TRAIN_TRIPLETS}
    present = {i.split for i in items}  # a one-part build is judged on its part alone
    flagged = sorted({r for r in ROWS.values() for s in present if rows[s][r] < floors[s]})
    config = {"seed": cfg.seed, "relations": asdict(cfg.relations),
              "lightness": asdict(cfg.lightness)}
    if cfg.catalog != "hm":
        config |= {"catalog": cfg.catalog, "products_split": str(cfg.products_split),
                   "products_part": cfg.products_part}
    return {"articles": len(items), "measured_lightness": len(lightness),
            "articles_per_split": dict(Counter(i.split for i in items)),
            "config": config,
            "triplets": {s: dict(triplets[s]) for s in SPLITS},
            "queries": {s: dict(queries_per[s]) for s in SPLITS},
            "rows": {s: dict(rows[s]) for s in SPLITS},
            "too_little_data": flagged,
            "thresholds": {"val_queries": MIN_VAL_QUERIES, "train_triplets":
                           MIN_TRAIN_TRIPLETS}}


def format_stats(stats: dict) -> str:
    """Markdown table: triplets (train) and queries (val) per relation and per bench row."""
    lines = ["| relation | bench row | train triplets | val queries | val entries |",
             "|---|---|---|---|---|"]
    for relation, row in ROWS.items():
        lines.append(f"| {relation} | {row} | {stats['triplets']['train'].get(relation, 0)} | "
                     f"{stats['queries']['val'].get(relation, 0)} | "
                     f"{stats['triplets']['val'].get(relation, 0)} |")
    lines += ["", "| bench row | train | val | enough data |", "|---|---|---|---|"]
    for row in dict.fromkeys(ROWS.values()):
        ok = "no: too little data" if row in stats["too_little_data"] else "yes"
        lines.append(f"| {row} | {stats['rows']['train'].get(row, 0)} | "
                     f"{stats['rows']['val'].get(row, 0)} | {ok} |")
    lines.append(f"\n(too little: under {stats['thresholds']['val_queries']} val queries or "
                 f"{stats['thresholds']['train_triplets']} training queries; val colourway "
                 "entries = queries x held-out families)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m dataprep.feedback", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--catalog", choices=CATALOGS, default="hm",
                   help="hm: training and val data; products: one part of fashion-products "
                   "(--products-part)")
    p.add_argument("--data", required=True, type=Path,
                   help="the hm folder (articles.csv, images/) or the fashion-products folder "
                   "(products.csv, images/)")
    p.add_argument("--products-split", type=Path,
                   help="products: the FashionIQ-format split whose images of --products-part "
                   "are queried (data/products)")
    p.add_argument("--products-part", choices=PRODUCTS_PARTS, default="val",
                   help="products: val = the yardstick (held-out phrasings); train = training "
                   "triplets on the split's training photos (training phrasings)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lightness-margin", type=float,
                   default=RelationConfig.lightness_margin,
                   help="L* units between reference and target of lighter / darker")
    p.add_argument("--any-colour", action="store_true",
                   help="garment relations and part negations accept another colour (by "
                   "default a relevant article also keeps the reference's colour group)")
    a = p.parse_args(argv)
    if a.catalog == "products" and a.products_split is None:
        p.error("--catalog products needs --products-split (e.g. data/products)")
    started = time.perf_counter()
    relations = RelationConfig(lightness_margin=a.lightness_margin, keep_colour=not a.any_colour)
    stats = build_feedback(FeedbackConfig(
        data=a.data, out=a.out, seed=a.seed, relations=relations, catalog=a.catalog,
        products_split=a.products_split, products_part=a.products_part))
    print(f"{stats['articles']} articles -> {a.out} in {time.perf_counter() - started:.0f} s")
    print(format_yardstick(stats) if "yardstick" in stats else format_stats(stats))


if __name__ == "__main__":
    main()
