"""What the demo catalog's garments can be: categories, attribute values, colours, titles."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CATEGORIES = ("dress", "shirt", "toptee")
ATTRIBUTE_NAMES = ("colour", "pattern", "sleeve", "neckline", "length")

# name -> sRGB. Chosen to be nameable at a glance on a light background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (28, 28, 32),
    "white": (250, 250, 247),
    "grey": (135, 136, 140),
    "navy": (30, 42, 88),
    "blue": (38, 92, 196),
    "light blue": (150, 190, 232),
    "teal": (18, 128, 128),
    "green": (40, 132, 62),
    "olive": (112, 116, 48),
    "yellow": (242, 204, 48),
    "orange": (238, 122, 34),
    "red": (200, 30, 42),
    "maroon": (118, 22, 40),
    "pink": (238, 146, 176),
    "purple": (112, 52, 144),
    "brown": (122, 78, 46),
    "beige": (216, 196, 160),
}
PATTERNS = ("solid", "striped", "dotted", "checked", "floral")

# Ordinal attributes are listed short -> long so comparatives ("is shorter") can be checked.
ATTRIBUTES: dict[str, dict[str, tuple[str, ...]]] = {
    "dress": {
        "colour": tuple(COLOURS),
        "pattern": PATTERNS,
        "sleeve": ("sleeveless", "short", "long"),
        "neckline": ("round", "v-neck", "square"),
        "length": ("mini", "knee", "maxi"),
    },
    "shirt": {
        "colour": tuple(COLOURS),
        "pattern": PATTERNS,
        "sleeve": ("short", "three-quarter", "long"),
        "neckline": ("pointed collar", "mandarin collar", "camp collar"),
        "length": ("cropped", "regular", "longline"),
    },
    "toptee": {
        "colour": tuple(COLOURS),
        "pattern": PATTERNS,
        "sleeve": ("sleeveless", "short", "long"),
        "neckline": ("round", "v-neck", "boat"),
        "length": ("cropped", "regular", "tunic"),
    },
}
NOUNS = {"dress": "dress", "shirt": "shirt", "toptee": "top"}


@dataclass
class DemoCatalogConfig:
    """Everything that determines the output; the same config always gives the same bytes."""

    out: Path
    seed: int = 0
    per_category: int = 800  # items per category (train + val): val galleries of 240
    val_fraction: float = 0.3  # share of items in the val gallery
    train_triplets_per_ref: int = 8  # queries per train reference image
    val_triplets_per_ref: int = 2  # queries per val reference image
    image_size: int = 256  # output pixels (square)
    supersample: int = 2  # drawn at image_size * supersample, then box-downscaled (anti-aliasing)
    jpeg_quality: int = 90


@dataclass(frozen=True)
class Item:
    id: str
    category: str
    split: str
    attrs: dict[str, str]

    @property
    def title(self) -> str:
        return item_title(self.category, self.attrs)


def item_title(category: str, attrs: dict[str, str]) -> str:
    """Human product title, e.g. 'Navy striped long-sleeve v-neck maxi dress'."""
    pattern = {"solid": "", "dotted": "polka-dot"}.get(attrs["pattern"], attrs["pattern"])
    sleeve = {"sleeveless": "sleeveless", "three-quarter": "three-quarter-sleeve"}.get(
        attrs["sleeve"], f"{attrs['sleeve']}-sleeve"
    )
    neck = attrs["neckline"].replace(" ", "-")
    length = {"knee": "knee-length", "regular": ""}.get(attrs["length"], attrs["length"])
    words = [attrs["colour"], pattern, sleeve, neck, length, NOUNS[category]]
    text = " ".join(w for w in words if w)
    return text[0].upper() + text[1:]
