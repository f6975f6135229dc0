"""Every H&M article (garments, shoes, bags, underwear, accessories) with the attributes the
feedback relations order or negate.

Garment attributes come from ``dataprep.hm_triplets.parse_attributes`` (the same parser and
the same product-code split as the H&M triplets, so a val garment is never trained on here
either), with three things made stricter because a relation is only as good as its order:

* **length** is kept only for garments whose length a shopper shortens (dresses, skirts,
  jumpsuits); H&M calls a cropped top "Short top", and "Short-sleeved shirt" is not a length;
* **fit** is read into three ranks (fitted < regular < loose) from words that say it
  ("skinny", "slim fit", "close-fitting", "fitted silhouette" / "regular fit", "straight
  legs" / "relaxed fit", "oversized", "loose fit", "boxy", "wide legs"); "loose knit" or a
  "fitted waist" are not a fit;
* **pattern** is H&M's graphical appearance, split into solid, patterned (a print, stripes,
  checks, dots, embroidery, ...) and textures (denim, melange, ...) that are neither plain nor
  busy, which the plainer/busier relation leaves out.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dataprep.hm_triplets as hm

# H&M product groups -> short category names (garments keep the H&M triplets' names).
GROUPS = {**hm.CATEGORIES, "Accessories": "accessories", "Underwear": "underwear",
          "Swimwear": "swimwear", "Socks & Tights": "socks", "Shoes": "shoes",
          "Nightwear": "nightwear", "Bags": "bags"}
OTHER_GROUP = "other"  # Unknown, Items, Stationery, care products
GARMENT_GROUPS = frozenset(hm.CATEGORIES.values())

LENGTH_TYPES = frozenset({"Dress", "Skirt", "Jumpsuit/Playsuit"})
LENGTH_ORDER = ("short", "knee-length", "calf-length", "ankle-length")
SLEEVE_ORDER = ("sleeveless", "short sleeves", "three-quarter sleeves", "long sleeves")
FIT_ORDER = ("fitted", "regular", "loose")

_FIT_RULES = (  # (rank, pattern), first match wins: "loose" words are the most specific
    ("loose", r"relaxed fit|\boversized\b|\bloose[- ]fit|\bloose-fitting\b|\bboxy\b|"
              r"\bwide(?:,? [\w-]+)? legs\b|\bwide-leg\b|\bloose,? (?:top|dress|shirt|blouse|"
              r"trousers|sweater|jumper|cardigan|t-shirt|jacket|shorts)\b"),
    ("fitted", r"\bskinny\b|\bslim[- ]fit\b|\bslim legs\b|\bclose-fitting\b|"
               r"\btight-fitting\b|\bfitted silhouette\b|(?:^|, )fitted\b(?! waist)|"
               r"(?<!semi-)(?<!gently )\bfitted (?:top|dress|shirt|blouse|jacket|t-shirt|"
               r"vest top|body|bodysuit|polo-neck top)\b"),
    ("regular", r"\bregular fit\b|\bstraight legs\b|\bsemi-fitted\b|\bgently fitted\b"),
)
_FIT = [(rank, re.compile(p)) for rank, p in _FIT_RULES]
_SHORT_SLEEVED_START = re.compile(r"^short[- ]sleeved")

# H&M graphical appearance -> the pattern word a shopper would remove.
PATTERNED = {"All over pattern": "pattern", "Stripe": "stripes", "Check": "checks",
             "Dot": "dots", "Placement print": "print", "Front print": "print",
             "Embroidery": "embroidery", "Colour blocking": "colour blocks",
             "Jacquard": "pattern", "Mixed solid/pattern": "pattern", "Other pattern": "pattern",
             "Sequin": "sequins", "Application/3D": "appliqués", "Lace": "lace pattern"}
SOLID = "Solid"


@dataclass(frozen=True)
class HMItem:
    """One catalog item of any product group: an H&M article, or a fashion-products item
    (``dataprep.feedback.products``), which has no colourway links (its product code is its
    own id), a gender that every relevant item must share, and its catalog's own split."""

    id: str
    product_code: str
    group: str  # short product group: upper, lower, full, accessories, shoes, ...
    product_type: str  # H&M's product type: Dress, Trousers, Gloves, Bag, ...
    title: str
    colour: str | None  # H&M colour group, lower case; None when "Other"/"Unknown"
    colour_value: str  # perceived colour value: Dark, Light, Dusty Light, Bright, ...
    appearance: str  # graphical appearance: Solid, Stripe, Denim, ...
    attributes: dict[str, str] = field(default_factory=dict)  # parsed; only what is named
    description: str = ""
    gender: str | None = None  # men, women, ...: relevant items share it; None: not named
    catalog_split: str | None = None  # the catalog's own split; None: H&M's product-code split

    @property
    def split(self) -> str:
        """train / val: the catalog's own split, else by product code exactly as the H&M
        triplets split."""
        return self.catalog_split or hm.split_of(self.product_code)

    @property
    def garment(self) -> bool:
        return self.group in GARMENT_GROUPS

    @property
    def patterned(self) -> bool | None:
        """True for a print/stripes/checks..., False for solid, None for textures."""
        if self.appearance == SOLID:
            return False
        return True if self.appearance in PATTERNED else None


def parse_fit(description: str) -> str | None:
    """fitted / regular / loose when the description says so, else None."""
    text = description.lower()
    for rank, pattern in _FIT:
        if pattern.search(text):
            return rank
    return None


def parse_item_attributes(row: dict[str, str]) -> dict[str, str]:
    """hm_triplets' attributes with length, fit and pattern made strict (module docstring)."""
    out = hm.parse_attributes(row)
    desc = row.get("detail_desc", "").lower()
    group = GROUPS.get(row.get("product_group_name", ""), OTHER_GROUP)
    if group not in GARMENT_GROUPS:  # sleeves, necklines, lengths of socks and bags: no
        out = {k: v for k, v in out.items() if k in ("colour", "pattern", "material")}
    if row.get("product_type_name") not in LENGTH_TYPES or out.get("length") not in LENGTH_ORDER \
            or (out.get("length") == "short" and _SHORT_SLEEVED_START.search(desc)):
        out.pop("length", None)
    out.pop("fit", None)
    fit = parse_fit(desc) if group in GARMENT_GROUPS else None
    if fit:
        out["fit"] = fit
    return out


def read_items(data: Path, ids: Iterable[str] | None = None) -> list[HMItem]:
    """Every article of ``data/articles.csv`` whose photo exists (all product groups)."""
    images = data / "images"
    on_disk = {p.stem for p in images.iterdir()} if images.is_dir() else set()
    wanted = set(ids) if ids is not None else None
    out = []
    with open(data / "articles.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["article_id"] not in on_disk or wanted is not None \
                    and row["article_id"] not in wanted:
                continue
            colour = row.get("colour_group_name", "").strip()
            known = colour and not colour.lower().startswith(("other", "unknown", "undefined"))
            desc = " ".join(row.get("detail_desc", "").split())
            out.append(HMItem(
                id=row["article_id"], product_code=row["product_code"],
                group=GROUPS.get(row.get("product_group_name", ""), OTHER_GROUP),
                product_type=row["product_type_name"], title=row["prod_name"],
                colour=colour.lower() if known else None,
                colour_value=row.get("perceived_colour_value_name", ""),
                appearance=row.get("graphical_appearance_name", ""),
                attributes=parse_item_attributes(row),
                description=f"{colour} {row['prod_name']}. {desc}"))
    return out
