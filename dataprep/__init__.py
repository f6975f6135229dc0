"""Data preparation: dataset readers, generators and triplet builders (apart from ``model/``).

The one door: ``from dataprep import load_fashioniq, build_demo_catalog, ...``. Exports are
resolved lazily, so reading FashionIQ does not import the demo-catalog drawing code, and
``python -m dataprep.product_triplets`` runs its module once, not twice.

Rooms: ``fashioniq`` (the reader every dataset goes through), ``layout`` (the files a dataset
folder holds: one writer each, one image-folder scanner, one image-file -> id rule),
``demo_catalog`` (the procedural default catalog), ``product_triplets`` (real product photos:
colour and type changes), ``hm_triplets`` (H&M product shots: colourways and garment
changes), ``feedback`` (shopper feedback as people say it: relative, negated and several
changes; the shared phrasing generator).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOME = {
    "FASHIONIQ_CATEGORIES": "dataprep.fashioniq",
    "FashionIQSplit": "dataprep.fashioniq",
    "Triplet": "dataprep.fashioniq",
    "dataset_paths": "dataprep.fashioniq",
    "eval_caption": "dataprep.fashioniq",
    "load_fashioniq": "dataprep.fashioniq",
    "train_caption": "dataprep.fashioniq",
    "IMAGE_EXTENSIONS": "dataprep.layout",
    "ImageScan": "dataprep.layout",
    "image_id": "dataprep.layout",
    "read_looks": "dataprep.layout",
    "read_metadata_column": "dataprep.layout",
    "scan_images": "dataprep.layout",
    "write_json": "dataprep.layout",
    "write_metadata": "dataprep.layout",
    "write_split": "dataprep.layout",
    "DemoCatalogConfig": "dataprep.demo_catalog",
    "build_demo_catalog": "dataprep.demo_catalog",
    "ProductTripletsConfig": "dataprep.product_triplets",
    "build_product_triplets": "dataprep.product_triplets",
    "HMTripletsConfig": "dataprep.hm_triplets",
    "build_hm_triplets": "dataprep.hm_triplets",
    "HM_ATTRIBUTES": "dataprep.hm_triplets",
    "Change": "dataprep.feedback",
    "FEEDBACK_ROWS": "dataprep.feedback",
    "HMItem": "dataprep.feedback",
    "RELATIVE": "dataprep.feedback",
    "change_between": "dataprep.feedback",
    "example_changes": "dataprep.feedback",
    "phrase": "dataprep.feedback",
    "read_items": "dataprep.feedback",
}
__all__ = [
    "DemoCatalogConfig", "FASHIONIQ_CATEGORIES", "FashionIQSplit", "HMTripletsConfig",
    "IMAGE_EXTENSIONS", "ImageScan", "build_hm_triplets", "HM_ATTRIBUTES", "Change",
    "FEEDBACK_ROWS", "HMItem", "RELATIVE", "change_between", "example_changes", "phrase",
    "read_items",
    "ProductTripletsConfig", "Triplet", "build_demo_catalog", "build_product_triplets",
    "dataset_paths", "eval_caption", "image_id", "load_fashioniq", "read_looks",
    "read_metadata_column", "scan_images", "train_caption", "write_json",
    "write_metadata", "write_split",
]

if TYPE_CHECKING:
    from dataprep.demo_catalog import DemoCatalogConfig, build_demo_catalog
    from dataprep.fashioniq import (
        FASHIONIQ_CATEGORIES,
        FashionIQSplit,
        Triplet,
        dataset_paths,
        eval_caption,
        load_fashioniq,
        train_caption,
    )
    from dataprep.feedback import (
        FEEDBACK_ROWS,
        RELATIVE,
        Change,
        HMItem,
        change_between,
        example_changes,
        phrase,
        read_items,
    )
    from dataprep.hm_triplets import HM_ATTRIBUTES, HMTripletsConfig, build_hm_triplets
    from dataprep.layout import (
        IMAGE_EXTENSIONS,
        ImageScan,
        image_id,
        read_looks,
        read_metadata_column,
        scan_images,
        write_json,
        write_metadata,
        write_split,
    )
    from dataprep.product_triplets import ProductTripletsConfig, build_product_triplets


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'dataprep' has no attribute {name!r}")
