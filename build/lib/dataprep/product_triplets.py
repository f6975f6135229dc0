"""Relative-feedback triplets from real product photos (``shared/data/fashion-products``).

The demo catalog teaches the model drawn garments; this builder gives it (and the benchmarks)
real photos. Each triplet pairs a reference with a target that differs in what a shopper would
ask to change, and its captions name only that change:

* ``colour``: same gender, type and pattern, another colour ("is navy blue");
* ``pattern``: same gender, type and colour, another named pattern ("is striped");
* ``colour+pattern``: same gender and type, both changed ("is red and checked");
* ``type``: same gender, colour and pattern, another type of the same family
  ("is a shirt instead of a t-shirt").

Categories of the FashionIQ layout are garment families (:data:`FAMILIES`), so a type change
stays within comparable garments and each family's val gallery is all its val items. Photo
titles do not identify one exact target, so every val entry also lists ``relevant``: all val
items of the family with the target's (gender, type, colour, pattern), the target included;
benchmarks report attribute-match recall from it beside exact-target recall.

Images stay where they are: OUT holds ``captions/``, ``image_splits/``, ``metadata.csv`` and
``stats.json``; pass ``DATA/images`` as the images folder. The train/val split is fixed per item
(a hash of its id, independent of the seed); the seed only changes which pairs are drawn.

    python -m dataprep.product_triplets --data ../shared/data/fashion-products --out DIR [--seed S]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dataprep.layout import scan_images, write_json, write_metadata, write_split

logger = logging.getLogger(__name__)

# Garment families = FashionIQ categories; a type change stays inside one family.
FAMILIES: dict[str, tuple[str, ...]] = {
    "tops": ("tshirt", "shirt", "top", "sweatshirt", "sweater"),
    "ethnic": ("kurta", "kurti", "tunic", "sari"),
    "bottoms": (
        "jeans",
        "trousers",
        "track pants",
        "lounge pants",
        "shorts",
        "capris",
        "leggings",
        "skirt",
    ),
    "dresses": ("dress", "nightdress", "jumpsuit"),
    "outerwear": ("jacket", "blazer", "waistcoat", "shrug"),
}
FAMILY_OF = {t: fam for fam, types in FAMILIES.items() for t in types}
KNOWN_PATTERNS = ("striped", "checked", "printed", "graphic", "solid")  # "" = title names none
# Colour names that a 60x80 photo cannot tell apart: never a "change" between them.
SIMILAR_COLOURS = (
    {"white", "off white", "cream"},
    {"grey", "grey melange"},
    {"brown", "coffee brown", "mushroom brown"},
    {"beige", "cream", "nude"},
    {"turquoise blue", "teal"},
)
KIND_WEIGHTS = {"colour": 0.4, "type": 0.25, "pattern": 0.2, "colour+pattern": 0.15}
SPLITS = ("train", "val")
METADATA_ATTRIBUTES = ("gender", "type", "colour", "pattern")  # metadata.csv columns after title


@dataclass
class ProductTripletsConfig:
    """Inputs and sampling knobs; the same config always writes the same files."""

    data: Path  # folder with products.csv and images/
    out: Path
    seed: int = 0
    val_fraction: float = 0.2  # share of items (by id hash) in val
    train_per_ref: int = 3  # triplets drawn per train reference
    val_per_ref: int = 2  # triplets drawn per val reference
    limit: int | None = None  # only the first N rows of products.csv (tests, quick looks)


@dataclass(frozen=True)
class Product:
    id: str
    gender: str
    type: str
    colour: str
    pattern: str
    title: str

    @property
    def family(self) -> str:
        return FAMILY_OF[self.type]

    @property
    def key(self) -> tuple[str, str, str, str]:
        """The attributes a target must match to be relevant."""
        return (self.gender, self.type, self.colour, self.pattern)


def split_of(item_id: str, val_fraction: float) -> str:
    """Fixed split by item: a hash of the id, so it never depends on row order or seed."""
    h = int.from_bytes(hashlib.sha1(item_id.encode()).digest()[:8], "big") / 2**64
    return "val" if h < val_fraction else "train"


def read_products(data: Path, limit: int | None = None) -> tuple[list[Product], dict[str, int]]:
    """Usable products (type in a family, colour named, image on disk) and drop counts."""
    data = Path(data)
    csv_path = data / "products.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(
            f"{str(csv_path)!r} not found; pass --data the fashion-products folder"
        )
    on_disk = scan_images(data / "images", recursive=False, extensions=(".jpg",)).by_id
    dropped: dict[str, int] = defaultdict(int)
    products = []
    with csv_path.open(encoding="utf-8", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if limit is not None and i >= limit:
                break
            if row["type"] not in FAMILY_OF:
                dropped["type outside families"] += 1
            elif not row["color"]:
                dropped["no colour"] += 1
            elif row["id"] not in on_disk:
                dropped["image missing"] += 1
            else:
                products.append(
                    Product(
                        row["id"],
                        row["gender"],
                        row["type"],
                        row["color"],
                        row["pattern"],
                        row["title"],
                    )
                )
    if dropped.get("image missing"):
        logger.warning("%d products have no image file; skipped", dropped["image missing"])
    return products, dict(dropped)


def _similar(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in SIMILAR_COLOURS)


class _Index:
    """Lookups from 'everything but one attribute' to the items per value of that attribute."""

    def __init__(self, items: Sequence[Product]):
        self.by_colour: dict[tuple, dict[str, list[Product]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.by_pattern: dict[tuple, dict[str, list[Product]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.by_both: dict[tuple, dict[tuple[str, str], list[Product]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.by_type: dict[tuple, dict[str, list[Product]]] = defaultdict(lambda: defaultdict(list))
        self.by_key: dict[tuple, list[Product]] = defaultdict(list)
        for p in items:
            self.by_colour[(p.gender, p.type, p.pattern)][p.colour].append(p)
            if p.pattern:
                self.by_pattern[(p.gender, p.type, p.colour)][p.pattern].append(p)
                self.by_both[(p.gender, p.type)][(p.colour, p.pattern)].append(p)
            self.by_type[(p.gender, p.colour, p.pattern)][p.type].append(p)
            self.by_key[p.key].append(p)

    def options(self, ref: Product, kind: str) -> dict:
        """value -> candidate targets for one kind of change from ``ref``."""
        if kind == "colour":
            groups = self.by_colour.get((ref.gender, ref.type, ref.pattern), {})
            return {c: ps for c, ps in groups.items() if not _similar(c, ref.colour)}
        if kind == "pattern":
            if not ref.pattern:
                return {}
            groups = self.by_pattern.get((ref.gender, ref.type, ref.colour), {})
            return {p: ps for p, ps in groups.items() if p != ref.pattern}
        if kind == "colour+pattern":
            if not ref.pattern:
                return {}
            groups = self.by_both.get((ref.gender, ref.type), {})
            return {
                cp: ps
                for cp, ps in groups.items()
                if cp[1] != ref.pattern and not _similar(cp[0], ref.colour)
            }
        groups = self.by_type.get((ref.gender, ref.colour, ref.pattern), {})
        return {t: ps for t, ps in groups.items() if t != ref.type}


# ----------------------------------------------------------------------------- captions

_PLURAL_TYPES = {"jeans", "trousers", "track pants", "lounge pants", "shorts", "capris", "leggings"}
_TYPE_WORDS = {"tshirt": "t-shirt"}
_COLOUR_WORDS = {"multi": "multicoloured"}
_COLOUR_TEMPLATES = (
    "is {c}",
    "is in {c}",
    "{c} instead of {r}",
    "change the colour to {c}",
    "make it {c}",
    "a {c} one",
    "is {c} not {r}",
    "should be {c}",
    "has a {c} colour",
)
_PATTERN_PHRASES = {
    "striped": ("is striped", "has stripes", "with stripes", "striped instead of {r}"),
    "checked": ("is checked", "has checks", "has a check pattern", "checked instead of {r}"),
    "printed": ("is printed", "has a print", "with a print on it", "printed instead of {r}"),
    "graphic": ("has a graphic print", "has a graphic on it", "with a graphic print", "is graphic"),
    "solid": ("is solid", "is plain", "has no print", "is a solid colour", "plain instead of {r}"),
}


def _noun(t: str) -> str:
    return _TYPE_WORDS.get(t, t)


def _noun_phrase(t: str) -> str:
    word = _noun(t)
    if t in _PLURAL_TYPES:
        return word
    return ("an " if word[0] in "aeiou" else "a ") + word


def _colour_phrase(ref: str, tgt: str, rng: np.random.Generator) -> str:
    c, r = _COLOUR_WORDS.get(tgt, tgt), _COLOUR_WORDS.get(ref, ref)
    return _COLOUR_TEMPLATES[int(rng.integers(len(_COLOUR_TEMPLATES)))].format(c=c, r=r)


def _pattern_phrase(ref: str, tgt: str, rng: np.random.Generator) -> str:
    options = _PATTERN_PHRASES[tgt]
    return options[int(rng.integers(len(options)))].format(r=ref or "patterned")


def _type_phrase(ref: str, tgt: str, rng: np.random.Generator) -> str:
    options = [
        f"{_noun(tgt)} instead of {_noun(ref)}",
        f"make it {_noun_phrase(tgt)}",
        f"should be {_noun_phrase(tgt)}",
        f"change it to {_noun_phrase(tgt)}",
        f"I want {_noun_phrase(tgt)}",
    ]
    if tgt not in _PLURAL_TYPES:
        options += [
            f"is {_noun_phrase(tgt)}",
            f"is {_noun_phrase(tgt)} instead of {_noun_phrase(ref)}",
        ]
    return options[int(rng.integers(len(options)))]


def describe_change(ref: Product, tgt: Product, kind: str, rng: np.random.Generator) -> list[str]:
    """Two differently worded captions naming only what changes (and every change)."""
    captions: list[str] = []
    for _ in range(2):
        for _attempt in range(20):
            if kind == "colour":
                text = _colour_phrase(ref.colour, tgt.colour, rng)
            elif kind == "pattern":
                text = _pattern_phrase(ref.pattern, tgt.pattern, rng)
            elif kind == "type":
                text = _type_phrase(ref.type, tgt.type, rng)
            else:
                parts = [
                    _colour_phrase(ref.colour, tgt.colour, rng),
                    _pattern_phrase(ref.pattern, tgt.pattern, rng),
                ]
                if rng.random() < 0.4:
                    parts.reverse()
                text = (" and " if rng.random() < 0.7 else ", ").join(parts)
            if text not in captions:
                break
        captions.append(text)
    return captions


# ----------------------------------------------------------------------------- sampling


def draw_triplets(
    items: Sequence[Product], per_ref: int, rng: np.random.Generator
) -> list[tuple[Product, Product, str]]:
    """(reference, target, kind) triples: per reference, up to ``per_ref`` distinct targets.

    Kind first (weighted, among the kinds this reference allows), then the new value uniformly
    (so common colours do not crowd out rare ones), then one item with it.
    """
    index = _Index(items)
    kinds = list(KIND_WEIGHTS)
    out: list[tuple[Product, Product, str]] = []
    for ref in sorted(items, key=lambda p: p.id):
        available = {k: index.options(ref, k) for k in kinds}
        available = {k: v for k, v in available.items() if v}
        used: set[str] = {ref.id}
        for _ in range(per_ref):
            if not available:
                break
            names = list(available)
            w = np.array([KIND_WEIGHTS[k] for k in names])
            kind = names[int(rng.choice(len(names), p=w / w.sum()))]
            values = sorted(available[kind])
            value = values[int(rng.integers(len(values)))]
            candidates = [p for p in available[kind][value] if p.id not in used]
            if not candidates:
                del available[kind][value]
                if not available[kind]:
                    del available[kind]
                continue
            tgt = candidates[int(rng.integers(len(candidates)))]
            used.add(tgt.id)
            out.append((ref, tgt, kind))
    return out


# ----------------------------------------------------------------------------- writing


def build_product_triplets(cfg: ProductTripletsConfig) -> dict:
    """Write annotations, metadata.csv and stats.json under cfg.out; returns the stats."""
    products, dropped = read_products(cfg.data, cfg.limit)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    split = {p.id: split_of(p.id, cfg.val_fraction) for p in products}
    stats: dict = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "products_used": len(products),
        "dropped": dropped,
        "families": {},
    }
    families = [f for f in FAMILIES if any(p.family == f for p in products)]
    for fi, family in enumerate(tqdm(families, desc="building triplets", unit="family")):
        fam_stats = {}
        for si, name in enumerate(SPLITS):
            members = sorted(
                (p for p in products if p.family == family and split[p.id] == name),
                key=lambda p: p.id,
            )
            per_ref = cfg.train_per_ref if name == "train" else cfg.val_per_ref
            rng = np.random.default_rng([cfg.seed, fi, si])
            triples = draw_triplets(members, per_ref, rng)
            by_key: dict[tuple, list[str]] = defaultdict(list)
            for p in members:
                by_key[p.key].append(p.id)
            entries = []
            kinds: dict[str, int] = defaultdict(int)
            for ref, tgt, kind in triples:
                entry = {
                    "candidate": ref.id,
                    "target": tgt.id,
                    "captions": describe_change(ref, tgt, kind, rng),
                    "kind": kind,
                }
                if name == "val":
                    entry["relevant"] = by_key[tgt.key]
                entries.append(entry)
                kinds[kind] += 1
            write_split(out, family, name, entries, [p.id for p in members])
            fam_stats[name] = {
                "images": len(members),
                "triplets": len(entries),
                "kinds": dict(kinds),
            }
            if name == "val" and entries:
                sizes = [len(e["relevant"]) for e in entries]
                fam_stats[name]["relevant_median"] = float(np.median(sizes))
        stats["families"][family] = fam_stats
    write_metadata(out / "metadata.csv", METADATA_ATTRIBUTES,
                   ((p.id, p.family, p.title, (p.gender, p.type, p.colour, p.pattern))
                    for p in products))
    write_json(out / "stats.json", stats, indent=2)
    return stats


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m dataprep.product_triplets", description=__doc__.split("\n\n")[0]
    )
    d = ProductTripletsConfig(data=Path("."), out=Path("."))
    p.add_argument("--data", type=Path, required=True, help="fashion-products folder")
    p.add_argument("--out", type=Path, required=True, help="folder for the annotations")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction)
    p.add_argument("--train-per-ref", type=int, default=d.train_per_ref)
    p.add_argument("--val-per-ref", type=int, default=d.val_per_ref)
    p.add_argument("--limit", type=int, default=None, help="use only the first N products")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = ProductTripletsConfig(
        data=args.data,
        out=args.out,
        seed=args.seed,
        val_fraction=args.val_fraction,
        train_per_ref=args.train_per_ref,
        val_per_ref=args.val_per_ref,
        limit=args.limit,
    )
    started = time.perf_counter()
    stats = build_product_triplets(cfg)
    print(
        f"{stats['products_used']} products -> {cfg.out} in {time.perf_counter() - started:.1f} s"
        f" (images stay in {Path(cfg.data) / 'images'})"
    )
    for family, s in stats["families"].items():
        print(
            f"  {family:9s} train: {s['train']['images']} images, {s['train']['triplets']} triplets"
            f" | val: {s['val']['images']} images, {s['val']['triplets']} triplets"
        )


if __name__ == "__main__":
    main()
