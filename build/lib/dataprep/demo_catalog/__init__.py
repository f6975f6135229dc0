"""Procedural demo catalog: drawn garments with known attributes, in FashionIQ layout.

The project must run end to end without downloading anything, so the embedded default dataset is
drawn here: dresses, shirts and tops/tees with colour, pattern, sleeve, neckline and length,
rendered like product photos (plain light background, soft shadow, shading, outlines), with
relative captions written from attribute differences. Because every attribute is known, each
val query has exactly one correct target in its category's gallery (val items of a category
have pairwise-distinct attribute combinations), and captions describe the whole difference.

    python -m dataprep.demo_catalog --out DIR --seed S --per-category N

writes ``DIR/images/*.jpg``, ``DIR/image_splits/split.{cat}.{train,val}.json``,
``DIR/captions/cap.{cat}.{train,val}.json`` (val entries carry ``relevant: [target]``),
``DIR/metadata.csv`` and ``DIR/stats.json``. Output is a pure function of (seed, options).

Parts: ``attributes`` (what a garment can be), ``drawing`` (pixels), ``captions`` (words),
``planning`` (items and query pairs), ``build`` (writing the dataset), ``cli`` (the command).
"""

from dataprep.demo_catalog.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    CATEGORIES,
    COLOURS,
    PATTERNS,
    DemoCatalogConfig,
    Item,
    item_title,
)
from dataprep.demo_catalog.build import build_demo_catalog, contact_sheet
from dataprep.demo_catalog.captions import describe_difference
from dataprep.demo_catalog.cli import main
from dataprep.demo_catalog.drawing import render_item
from dataprep.demo_catalog.planning import check_unique_targets, make_triplets, plan_items

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_NAMES", "CATEGORIES", "COLOURS", "PATTERNS", "DemoCatalogConfig",
    "Item", "build_demo_catalog", "check_unique_targets", "contact_sheet", "describe_difference",
    "item_title", "main", "make_triplets", "plan_items", "render_item",
]
