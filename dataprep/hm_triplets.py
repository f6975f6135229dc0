"""Relative-feedback triplets from H&M product shots (``shared/data/hm``): garments, not colour.

The fashion-products photos only teach colour and type; H&M's ``detail_desc`` names what a
shopper changes about a garment. Two kinds of triplet come out of it:

* ``colourway``: two articles of one product code (the same garment in another colour), so the
  target is exact; captions name the new colour in varied phrasings ("is dark blue", "in light
  beige instead", ...);
* ``attribute``: two garments of the same product type whose parsed attributes (sleeve length,
  neckline, garment length, fit, waist, closure, pattern, material, colour) differ in one or two
  places, at least one of them not the colour, and agree on every other attribute both descriptions
  name; the two captions name exactly those changes ("is black and has long sleeves").

Categories of the FashionIQ layout are H&M's product groups (upper, lower, full body); each
category's val gallery is every val article of that group. Val entries list ``relevant``: all
val articles that satisfy the request (a colourway: the product code in the target's colour; an
attribute change: same product type, the target's value on every compared attribute). Entries
carry ``tags`` (kind, then the changed attributes) so benchmarks can score each kind apart.

The train/val split is by product code (a hash, independent of the seed), so no garment is on
both sides; the seed only changes which pairs and phrasings are drawn.

    python -m dataprep.hm_triplets --data ../shared/data/hm --out data/hm
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import re
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dataprep.layout import write_json, write_metadata, write_split

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")
CATEGORIES = {"Garment Upper body": "upper", "Garment Lower body": "lower",
              "Garment Full body": "full"}
ATTRIBUTES = ("sleeve", "neckline", "length", "fit", "waist", "closure", "pattern", "material",
              "colour")
HM_ATTRIBUTES = ATTRIBUTES  # the name the package door exports
# Benchmark groups: the attributes the issue reports one by one (others count as "other").
ATTRIBUTE_GROUPS = {"sleeve": "sleeve", "neckline": "neckline", "length": "length",
                    "pattern": "pattern/material", "material": "pattern/material",
                    "fit": "fit/waist", "waist": "fit/waist", "closure": "closure",
                    "colour": "colour"}

# (value, pattern) in priority order: the first value whose pattern matches wins.
_RULES: dict[str, list[tuple[str, str]]] = {
    "sleeve": [
        ("sleeveless", r"\bsleeveless\b|\bstrapless\b|\b(?:narrow|thin|shoulder|adjustable|"
                       r"spaghetti|wide) straps\b"),
        ("three-quarter sleeves", r"3/4[- ]length sleeves|three-quarter[- ]length sleeves|"
                                  r"3/4 sleeves"),
        ("short sleeves", r"\bshort(?:,? [\w-]+){0,2} sleeves\b|\bshort-sleeved\b|\bcap sleeves\b"),
        ("long sleeves", r"\blong(?:,? [\w-]+){0,2} sleeves\b|\blong-sleeved\b"),
    ],
    "neckline": [
        ("hood", r"\bhood\b"),
        ("turtle neck", r"turtle[- ]neck|polo[- ]neck|\bhigh neck|funnel collar"),
        ("off-the-shoulder", r"off-the-shoulder"),
        ("v-neck", r"\bv-neck"),
        ("square neckline", r"square neck"),
        ("collar", r"\bcollar\b|\blapels\b"),
        ("round neck", r"round neck|crew[- ]neck"),
    ],
    "length": [
        ("cropped", r"\bcropped\b"),
        ("ankle-length", r"ankle-length|\bmaxi\b|^long (?:dress|skirt)"),
        ("calf-length", r"calf-length|\bmidi\b"),
        ("knee-length", r"knee-length"),
        ("short", r"^short\b|\bshort (?:dress|skirt)|\bmini\b"),
    ],
    "fit": [
        ("skinny", r"\bskinny\b|super-skinny"),
        ("wide legs", r"\bwide(?:,? [\w-]+)? legs\b|wide-leg|\bflared\b"),
        ("slim fit", r"\bslim[- ]fit\b|\bslim legs\b"),
        ("relaxed fit", r"\brelaxed fit\b|\boversized\b|\bloose[- ]fit|\bloose-fitting\b"),
        ("regular fit", r"\bregular fit\b|\bstraight legs\b"),
    ],
    "waist": [
        ("high waist", r"high[- ]waist|high-rise|high rise"),
        ("low waist", r"low[- ]rise|low waist"),
        ("regular waist", r"regular waist|regular-rise|mid-rise"),
    ],
    "closure": [
        ("zip", r"zip (?:down|at|in) the front|full-length zip|zip front"),
        ("buttons", r"buttons? (?:down|at) the front|button placket|double-breasted"),
        ("wrap", r"wrapover|wrap-around|wrap front"),
    ],
    "material": [
        ("denim", r"\bdenim\b"),
        ("velour", r"\bvelour\b|\bvelvet\b"),
        ("satin", r"\bsatin\b"),
        ("chiffon", r"\bchiffon\b"),
        ("lace", r"\blace\b"),
        ("corduroy", r"\bcorduroy\b"),
        ("faux leather", r"(?:faux|imitation) leather|\bleather\b"),
        ("linen", r"\blinen\b"),
        ("knit", r"\bknit\b|\bknitted\b"),
        ("sweatshirt fabric", r"sweatshirt fabric"),
        ("jersey", r"\bjersey\b"),
        ("twill", r"\btwill\b"),
        ("woven fabric", r"\bweave\b|\bwoven\b"),
    ],
}
_COMPILED = {a: [(v, re.compile(p)) for v, p in rules] for a, rules in _RULES.items()}
PATTERNS = {"Solid": "plain", "Stripe": "striped", "Check": "checked", "Dot": "dotted",
            "All over pattern": "patterned", "Lace": "lace", "Denim": "denim",
            "Melange": "melange", "Embroidery": "embroidered", "Placement print": "printed",
            "Front print": "printed", "Glittering/Metallic": "metallic",
            "Metallic": "metallic", "Sequin": "metallic", "Colour blocking": "colour-blocked",
            "Jacquard": "jacquard"}

# Two phrasings per value: caption 1 uses one, caption 2 the other (FashionIQ style).
_PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "sleeve": {"sleeveless": ("is sleeveless", "has no sleeves", "without sleeves"),
               "short sleeves": ("has short sleeves", "is short-sleeved", "with short sleeves"),
               "three-quarter sleeves": ("has three-quarter sleeves", "has 3/4-length sleeves",
                                         "with elbow-length sleeves"),
               "long sleeves": ("has long sleeves", "is long-sleeved", "with long sleeves")},
    "neckline": {"hood": ("has a hood", "is hooded", "with a hood"),
                 "turtle neck": ("has a turtle neck", "has a high neck", "with a polo neck"),
                 "off-the-shoulder": ("is off-the-shoulder", "shows the shoulders",
                                      "with an off-shoulder neckline"),
                 "v-neck": ("has a v-neck", "with a v-neckline", "has a v-shaped neckline"),
                 "square neckline": ("has a square neckline", "with a square neck",
                                     "has a squared neckline"),
                 "collar": ("has a collar", "is collared", "with a collar"),
                 "round neck": ("has a round neck", "with a crew neck", "has a round neckline")},
    "length": {"cropped": ("is cropped", "is shorter and cropped", "with a cropped cut"),
               "ankle-length": ("is ankle-length", "is a long maxi length", "reaches the ankles"),
               "calf-length": ("is calf-length", "is midi length", "reaches mid-calf"),
               "knee-length": ("is knee-length", "ends at the knee", "with a knee length"),
               "short": ("is short", "is a mini length", "is much shorter")},
    "fit": {"skinny": ("has skinny legs", "is skinny", "is tight-fitting"),
            "wide legs": ("has wide legs", "is wide-legged", "with wide legs"),
            "slim fit": ("is slim fit", "is more fitted", "has a slim cut"),
            "relaxed fit": ("has a relaxed fit", "is loose and oversized", "is looser"),
            "regular fit": ("has a regular fit", "is a regular cut", "has straight legs")},
    "waist": {"high waist": ("has a high waist", "is high-waisted", "with a high rise"),
              "low waist": ("is low-rise", "has a low waist", "sits low on the hips"),
              "regular waist": ("has a regular waist", "is mid-rise", "with a normal waist")},
    "closure": {"zip": ("has a zip down the front", "zips up the front", "with a front zip"),
                "buttons": ("has buttons down the front", "is buttoned", "with buttons"),
                "wrap": ("is a wrap style", "has a wrapover front", "wraps around")},
}


def _pattern_phrases(value: str) -> tuple[str, ...]:
    special = {"plain": ("is plain", "is a solid colour", "has no pattern"),
               "striped": ("is striped", "has stripes", "with stripes"),
               "checked": ("is checked", "has a check pattern", "is plaid"),
               "dotted": ("has polka dots", "is dotted", "with dots"),
               "patterned": ("has an all-over pattern", "is patterned", "with a pattern"),
               "embroidered": ("is embroidered", "has embroidery", "with embroidery"),
               "printed": ("has a print", "is printed", "with a printed motif"),
               "metallic": ("is shiny and metallic", "is sparkly", "has a metallic shine")}
    return special.get(value, (f"is {value}", f"has a {value} look", f"in {value}"))


def _material_phrases(value: str) -> tuple[str, ...]:
    return (f"is made of {value}", f"in {value}", f"is a {value} one")


def _colour_phrases(value: str) -> tuple[str, ...]:
    return (f"is {value}", f"in {value} instead", f"is a {value} one", f"the same but {value}",
            f"change the colour to {value}", f"make it {value}", f"{value} version",
            f"in {value}")


def phrases(attribute: str, value: str) -> tuple[str, ...]:
    """Every phrasing of 'the target has this value'; captions pick two different ones."""
    if attribute == "colour":
        return _colour_phrases(value)
    if attribute == "pattern":
        return _pattern_phrases(value)
    if attribute == "material":
        return _material_phrases(value)
    return _PHRASES[attribute][value]


@dataclass(frozen=True)
class Article:
    id: str
    product_code: str
    category: str  # upper / lower / full
    product_type: str
    title: str
    attributes: dict[str, str]  # parsed, only the ones the data names
    description: str = ""  # colour, name and H&M's detail_desc (grounding text)

    @property
    def split(self) -> str:
        return split_of(self.product_code)


def split_of(product_code: str, val_fraction: float = 0.15) -> str:
    """Fixed per product code: every colourway of a garment lands on the same side."""
    h = int(hashlib.sha256(f"hm-{product_code}".encode()).hexdigest()[:8], 16)
    return "val" if h / 0xFFFFFFFF < val_fraction else "train"


def parse_attributes(row: dict[str, str]) -> dict[str, str]:
    """Attributes a shopper would change, from the description and the structured columns."""
    desc = row.get("detail_desc", "").lower()
    out: dict[str, str] = {}
    for attribute, rules in _COMPILED.items():
        for value, pattern in rules:
            if pattern.search(desc):
                out[attribute] = value
                break
    if row.get("product_group_name") == "Garment Lower body":
        out.pop("sleeve", None)
        out.pop("neckline", None)
    pattern = PATTERNS.get(row.get("graphical_appearance_name", ""))
    if pattern:
        out["pattern"] = pattern
    colour = row.get("colour_group_name", "").strip()
    if colour and not colour.lower().startswith(("other", "unknown", "undefined")):
        out["colour"] = colour.lower()
    return out


def read_articles(data: Path) -> list[Article]:
    """Garment articles (upper, lower, full body) whose photo exists, in file order."""
    images = data / "images"
    on_disk = {p.stem for p in images.iterdir()} if images.is_dir() else set()
    out = []
    with open(data / "articles.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            category = CATEGORIES.get(row.get("product_group_name", ""))
            if category is None or row["article_id"] not in on_disk:
                continue
            desc = " ".join(row.get("detail_desc", "").split())
            out.append(Article(row["article_id"], row["product_code"], category,
                               row["product_type_name"], row["prod_name"],
                               parse_attributes(row),
                               f"{row.get('colour_group_name', '')} {row['prod_name']}. {desc}"))
    return out


@dataclass
class HMTripletsConfig:
    """Inputs and sampling knobs; the same config always writes the same files."""

    data: Path
    out: Path
    seed: int = 0
    colourway_pairs_per_code: int = 6  # ordered colourway pairs kept per product code
    attribute_targets: dict[str, int] = field(
        default_factory=lambda: {"train": 4, "val": 2})  # targets drawn per reference


def describe(changes: Sequence[tuple[str, str]], rng: np.random.Generator) -> list[str]:
    """Two captions naming exactly ``changes`` ((attribute, target value) pairs)."""
    captions = []
    picks = [rng.permutation(len(phrases(a, v)))[:2] for a, v in changes]
    for k in range(2):
        parts = [phrases(a, v)[p[k]] for (a, v), p in zip(changes, picks, strict=True)]
        captions.append(" and ".join(parts))
    return captions


def compare(ref: Article, tgt: Article) -> tuple[list[str], list[str]] | None:
    """(changed, kept) attributes of a valid attribute-change pair, else None."""
    shared = [a for a in ATTRIBUTES if a in ref.attributes and a in tgt.attributes]
    changed = [a for a in shared if ref.attributes[a] != tgt.attributes[a]]
    if not 1 <= len(changed) <= 2 or changed == ["colour"] or len(shared) == len(changed):
        return None
    return changed, [a for a in shared if a not in changed]


class Catalog:
    """Val/train articles with the indexes the pair drawing and ``relevant`` sets need."""

    def __init__(self, articles: Sequence[Article]):
        self.articles = list(articles)
        self.by_code: dict[str, list[Article]] = defaultdict(list)
        self.by_type: dict[tuple[str, str], list[Article]] = defaultdict(list)
        for a in self.articles:
            self.by_code[a.product_code].append(a)
            self.by_type[(a.split, a.product_type)].append(a)

    def relevant(self, ref: Article, tgt: Article, compared: Sequence[str]) -> list[str]:
        """Articles of the target's split and type with the target's value on ``compared``."""
        return [a.id for a in self.by_type[(tgt.split, tgt.product_type)]
                if a.category == tgt.category
                and all(a.attributes.get(k) == tgt.attributes[k] for k in compared)]


def colourway_entries(cat: Catalog, cfg: HMTripletsConfig, rng: np.random.Generator
                      ) -> list[tuple[str, dict]]:
    out = []
    for code in sorted(cat.by_code):
        arts = [a for a in cat.by_code[code] if "colour" in a.attributes]
        pairs = [(r, t) for r in arts for t in arts
                 if r.id != t.id and r.attributes["colour"] != t.attributes["colour"]]
        if not pairs:
            continue
        chosen = rng.permutation(len(pairs))[:cfg.colourway_pairs_per_code]
        for k in sorted(chosen):
            ref, tgt = pairs[k]
            entry = {"candidate": ref.id, "target": tgt.id,
                     "captions": describe([("colour", tgt.attributes["colour"])], rng),
                     "tags": ["colourway", "colour"]}
            if ref.split == "val":
                entry["relevant"] = [a.id for a in arts
                                     if a.attributes["colour"] == tgt.attributes["colour"]]
            out.append((ref.split, entry | {"category": ref.category}))
    return out


def attribute_entries(cat: Catalog, cfg: HMTripletsConfig, rng: np.random.Generator
                      ) -> list[tuple[str, dict]]:
    out = []
    for (split, _ptype), arts in sorted(cat.by_type.items()):
        for ref in arts:
            by_change: dict[tuple[str, ...], list[tuple[Article, list[str]]]] = defaultdict(list)
            for tgt in arts:
                if tgt.product_code == ref.product_code or tgt.category != ref.category:
                    continue
                cmp = compare(ref, tgt)
                if cmp is not None:
                    by_change[tuple(cmp[0])].append((tgt, cmp[0] + cmp[1]))
            keys = sorted(by_change)
            for k in rng.permutation(len(keys))[:cfg.attribute_targets[split]]:
                options = by_change[keys[k]]
                tgt, compared = options[int(rng.integers(len(options)))]
                changed = list(keys[k])
                # Colour first reads naturally: "is black and has long sleeves".
                changes = [(a, tgt.attributes[a]) for a in changed]
                entry = {"candidate": ref.id, "target": tgt.id, "category": ref.category,
                         "captions": describe(changes, rng), "tags": ["attribute", *changed]}
                if split == "val":
                    entry["relevant"] = cat.relevant(ref, tgt, compared)
                out.append((split, entry))
    return out


def build_hm_triplets(cfg: HMTripletsConfig) -> dict:
    """Write annotations, metadata.csv and stats.json under cfg.out; returns the stats."""
    rng = np.random.default_rng(cfg.seed)
    articles = read_articles(cfg.data)
    if not articles:
        raise FileNotFoundError(f"no garment articles with images under {cfg.data}")
    cat = Catalog(articles)
    entries = colourway_entries(cat, cfg, rng) + attribute_entries(cat, cfg, rng)
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    stats: dict = {"articles": len(articles), "splits": {}}
    for split in SPLITS:
        split_stats: dict = {"articles": sum(a.split == split for a in articles),
                             "kinds": Counter(), "attributes": Counter(), "changes": Counter()}
        for category in sorted(set(CATEGORIES.values())):
            rows = [e for s, e in entries if s == split and e["category"] == category]
            gallery = [a.id for a in articles if a.split == split and a.category == category]
            write_split(out, category, split, rows, gallery)
            for e in rows:
                split_stats["kinds"][e["tags"][0]] += 1
                split_stats["changes"][str(len(e["tags"]) - 1)] += 1  # str: JSON keys
                for a in e["tags"][1:]:
                    split_stats["attributes"][f"{e['tags'][0]}:{a}"] += 1
        if split == "val":
            sizes = [len(e["relevant"]) for s, e in entries if s == "val"]
            split_stats["relevant_median"] = float(np.median(sizes)) if sizes else 0.0
        stats["splits"][split] = {k: dict(v) if isinstance(v, Counter) else v
                                  for k, v in split_stats.items()}
    write_metadata(out / "metadata.csv", ["product_type", *ATTRIBUTES, "description"],
                   ((a.id, a.category, a.title,
                     [a.product_type, *(a.attributes.get(k, "") for k in ATTRIBUTES),
                      a.description]) for a in articles))
    write_json(out / "stats.json", stats, indent=2)
    return stats


def format_stats(stats: dict) -> str:
    """Markdown table: triplets per kind and changed attribute, per split."""
    keys = sorted({k for s in stats["splits"].values() for k in s["attributes"]})
    lines = ["| triplets | " + " | ".join(SPLITS) + " |", "|---|" + "---|" * len(SPLITS)]
    for kind in ("colourway", "attribute"):
        lines.append(f"| **{kind}** (all) | " + " | ".join(
            str(stats["splits"][s]["kinds"].get(kind, 0)) for s in SPLITS) + " |")
    for k in keys:
        if k.startswith("attribute:"):
            lines.append(f"| attribute change: {k.split(':', 1)[1]} | " + " | ".join(
                str(stats["splits"][s]["attributes"].get(k, 0)) for s in SPLITS) + " |")
    for n in (1, 2):
        lines.append(f"| changes named: {n} | " + " | ".join(
            str(stats["splits"][s]["changes"].get(str(n), 0)) for s in SPLITS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    p = argparse.ArgumentParser(prog="python -m dataprep.hm_triplets", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, type=Path,
                   help="the hm folder (articles.csv, images/)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    started = time.perf_counter()
    stats = build_hm_triplets(HMTripletsConfig(data=a.data, out=a.out, seed=a.seed))
    print(f"{stats['articles']} articles -> {a.out} in {time.perf_counter() - started:.1f} s")
    print(format_stats(stats))


if __name__ == "__main__":
    main()
