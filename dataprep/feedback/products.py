"""fashion-products items as feedback-relation items: the second real catalog's yardstick.

``../shared/data/fashion-products/products.csv`` names, per photo, a gender, a type, a colour
and (for about four in ten) a pattern, parsed from the product title. Each row becomes the
:class:`~dataprep.feedback.attributes.HMItem` the relations read:

* **group / product type** from ``type``: upper (t-shirts, shirts, kurtas, sweaters, jackets,
  ...), lower (jeans, trousers, shorts, leggings, ...), full (dresses, nightdresses, jumpsuits,
  saris); the product type is the shopper's word ("T-shirt", "Track pants");
* **colour** from ``color`` ("multi" is not a colour a shopper can ask to keep or drop: none);
* **pattern** from ``pattern``: solid -> plain, striped, checked, printed / graphic ->
  printed, written as the H&M graphical appearance the relations already read (so
  plainer / busier and "remove the print" work unchanged); an empty pattern is *unknown*,
  not solid: such an item has no pattern attribute and no appearance, so it is in no pattern
  relation, neither as relevant nor as reference;
* **gender** kept as the attribute every relevant item must share;
* **split**: the items of ``data/products``' val image splits for the yardstick (never a
  training image of the shipped checkpoints), or of its train image splits for training
  requests on this catalog's photos; there are no colourway links, every item is its own
  product.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from dataprep.feedback.attributes import HMItem

logger = logging.getLogger(__name__)

# products type -> (group, the shopper's word for the product type)
TYPES = {
    "tshirt": ("upper", "T-shirt"), "shirt": ("upper", "Shirt"), "top": ("upper", "Top"),
    "kurta": ("upper", "Kurta"), "kurti": ("upper", "Kurti"), "tunic": ("upper", "Tunic"),
    "sweatshirt": ("upper", "Sweatshirt"), "sweater": ("upper", "Sweater"),
    "jacket": ("upper", "Jacket"), "blazer": ("upper", "Blazer"),
    "waistcoat": ("upper", "Waistcoat"), "shrug": ("upper", "Shrug"),
    "jeans": ("lower", "Jeans"), "shorts": ("lower", "Shorts"),
    "trousers": ("lower", "Trousers"), "track pants": ("lower", "Track pants"),
    "capris": ("lower", "Capris"), "leggings": ("lower", "Leggings"),
    "skirt": ("lower", "Skirt"), "lounge pants": ("lower", "Lounge pants"),
    "dress": ("full", "Dress"), "nightdress": ("full", "Nightdress"),
    "jumpsuit": ("full", "Jumpsuit"), "sari": ("full", "Sari"),
}
# products pattern -> (H&M graphical appearance, the pattern attribute); "" is unknown.
PATTERNS = {"solid": ("Solid", "plain"), "striped": ("Stripe", "striped"),
            "checked": ("Check", "checked"), "printed": ("Placement print", "printed"),
            "graphic": ("Front print", "printed")}
NO_COLOUR = frozenset({"", "multi"})


def split_ids(products_split: Path, part: str = "val") -> set[str]:
    """Every image id of the split folder's ``image_splits/split.*.{part}.json``."""
    files = sorted((products_split / "image_splits").glob(f"split.*.{part}.json"))
    if not files:
        raise FileNotFoundError(f"no image_splits/split.*.{part}.json under {products_split}")
    return {str(i) for f in files for i in json.loads(f.read_text())}


def item_of(row: dict[str, str], split: str) -> HMItem | None:
    """The relations' item of one products.csv row; None for a type outside TYPES."""
    kind = TYPES.get(row.get("type", "").strip().lower())
    if kind is None:
        return None
    group, product_type = kind
    colour = row.get("color", "").strip().lower()
    appearance, pattern = PATTERNS.get(row.get("pattern", "").strip().lower(), ("", None))
    attributes = {"colour": colour} if colour not in NO_COLOUR else {}
    if pattern:
        attributes["pattern"] = pattern
    title = " ".join(row.get("title", "").split())
    return HMItem(id=row["id"], product_code=row["id"], group=group, product_type=product_type,
                  title=title, colour=colour if colour not in NO_COLOUR else None,
                  colour_value="", appearance=appearance, attributes=attributes,
                  description=title, gender=row.get("gender", "").strip().lower() or None,
                  catalog_split=split)


def read_products(data: Path, ids: set[str], split: str = "val") -> list[HMItem]:
    """The items of ``data/products.csv`` among ``ids`` whose photo exists, in file order."""
    images = data / "images"
    out, skipped = [], 0
    with open(data / "products.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["id"] not in ids or not (images / f"{row['id']}.jpg").is_file():
                continue
            item = item_of(row, split)
            if item is None:
                skipped += 1
                continue
            out.append(item)
    if skipped:
        logger.warning("fashion-products: %d items of an unknown type left out", skipped)
    return out
