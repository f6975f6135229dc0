"""Command line of the demo-catalog generator (``python -m dataprep.demo_catalog``)."""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from pathlib import Path

from dataprep.demo_catalog.attributes import DemoCatalogConfig
from dataprep.demo_catalog.build import build_demo_catalog, contact_sheet, default_workers

DESCRIPTION = "Procedural demo catalog: drawn garments with known attributes, in FashionIQ layout."

def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m dataprep.demo_catalog", description=DESCRIPTION
    )
    defaults = DemoCatalogConfig(out=Path("."))
    p.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--per-category", type=int, default=defaults.per_category, help="items per category"
    )
    p.add_argument("--val-fraction", type=float, default=defaults.val_fraction)
    p.add_argument("--train-triplets-per-ref", type=int, default=defaults.train_triplets_per_ref)
    p.add_argument("--val-triplets-per-ref", type=int, default=defaults.val_triplets_per_ref)
    p.add_argument(
        "--workers", type=int, default=default_workers(), help="drawing processes (same output)"
    )
    p.add_argument(
        "--contact-sheet", type=Path, default=None, help="also write a 40-item preview PNG"
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cfg = DemoCatalogConfig(
        out=args.out,
        seed=args.seed,
        per_category=args.per_category,
        val_fraction=args.val_fraction,
        train_triplets_per_ref=args.train_triplets_per_ref,
        val_triplets_per_ref=args.val_triplets_per_ref,
    )
    started = time.perf_counter()
    stats = build_demo_catalog(cfg, workers=args.workers)
    if args.contact_sheet:
        contact_sheet(cfg.out, args.contact_sheet)
    print(f"demo catalog written to {cfg.out} in {time.perf_counter() - started:.1f} s")
    for cat, s in stats["categories"].items():
        print(
            f"  {cat:7s} train: {s['train']['images']} images, {s['train']['triplets']} triplets"
            f" | val: {s['val']['images']} images, {s['val']['triplets']} triplets"
        )

