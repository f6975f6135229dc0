"""Writing the demo catalog: draw every item (in parallel), then its annotations and metadata.

The dataset appears only when complete (built in a hidden sibling folder, then renamed).
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from dataprep.demo_catalog.attributes import ATTRIBUTE_NAMES, CATEGORIES, DemoCatalogConfig, Item
from dataprep.demo_catalog.captions import describe_difference
from dataprep.demo_catalog.drawing import render_item
from dataprep.demo_catalog.planning import (
    check_unique_targets,
    item_seed,
    make_triplets,
    plan_items,
)
from dataprep.layout import write_json, write_metadata, write_split


def _draw_and_save(job: tuple[Item, DemoCatalogConfig]) -> None:
    it, cfg = job
    img = render_item(it.category, it.attrs, item_seed(cfg.seed, it.id), cfg)
    img.save(Path(cfg.out) / "images" / f"{it.id}.jpg", quality=cfg.jpeg_quality)


def default_workers() -> int:
    """Drawing is CPU-bound and embarrassingly parallel; a few processes are plenty."""
    return max(1, min(4, os.cpu_count() or 1))


def build_demo_catalog(cfg: DemoCatalogConfig, workers: int = 1) -> dict:
    """Write the whole dataset under cfg.out; returns the stats also saved to stats.json.

    ``workers`` processes draw the images; the output is identical for any worker count.
    A new (absent or empty) cfg.out appears only when complete: the dataset is built in a
    hidden sibling folder and renamed, so an interrupted first start never leaves a half
    catalog that later looks finished.
    """
    final = Path(cfg.out)
    if final.is_dir() and any(final.iterdir()):
        return _build_into(cfg, workers)
    partial = final.with_name(f".{final.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    stats = _build_into(replace(cfg, out=partial), workers, recorded_out=final)
    if final.is_dir():
        final.rmdir()
    partial.rename(final)
    return stats


def _build_into(cfg: DemoCatalogConfig, workers: int, recorded_out: Path | None = None) -> dict:
    out = Path(cfg.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    items = plan_items(cfg)
    started = time.perf_counter()
    jobs = [(it, cfg) for it in items]
    progress = tqdm(total=len(items), desc="drawing demo catalog", unit="img")
    if workers <= 1:
        for job in jobs:
            _draw_and_save(job)
            progress.update()
    else:  # every item has its own seed, so the bytes do not depend on the worker count
        with ProcessPoolExecutor(workers) as pool:
            for _ in pool.map(_draw_and_save, jobs, chunksize=32):
                progress.update()
    progress.close()
    render_s = time.perf_counter() - started

    recorded = asdict(replace(cfg, out=recorded_out or cfg.out))
    stats: dict = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in recorded.items()}}
    stats["categories"] = {}
    for ci, cat in enumerate(CATEGORIES):
        cat_stats = {}
        for si, split in enumerate(("train", "val")):
            members = [it for it in items if it.category == cat and it.split == split]
            per_ref = cfg.train_triplets_per_ref if split == "train" else cfg.val_triplets_per_ref
            rng = np.random.default_rng([cfg.seed, 2, ci, si])
            pairs = make_triplets(members, per_ref, rng)
            if split == "val":
                check_unique_targets(members, pairs)
            entries = []
            for ref, tgt in pairs:
                entry = {
                    "candidate": ref.id,
                    "target": tgt.id,
                    "captions": describe_difference(cat, ref.attrs, tgt.attrs, rng),
                }
                if split == "val":
                    entry["relevant"] = [tgt.id]
                entries.append(entry)
            write_split(out, cat, split, entries, [it.id for it in members])
            cat_stats[split] = {"images": len(members), "triplets": len(entries)}
        stats["categories"][cat] = cat_stats
    write_metadata(out / "metadata.csv", ATTRIBUTE_NAMES,
                   ((it.id, it.category, it.title, [it.attrs[a] for a in ATTRIBUTE_NAMES])
                    for it in items))
    stats["render_seconds"] = round(render_s, 1)
    write_json(out / "stats.json", stats, indent=2)
    return stats


def contact_sheet(
    dataset: Path, out: Path, n: int = 40, columns: int = 8, thumb: int = 160
) -> Path:
    """A grid of the first ``n`` val items (evenly over categories) with their titles."""
    rows = list(csv.DictReader((Path(dataset) / "metadata.csv").open(encoding="utf-8")))
    by_cat = {c: [r for r in rows if "_val_" in r["id"] and r["category"] == c] for c in CATEGORIES}
    picked: list[dict] = []
    i = 0
    while len(picked) < n and any(i < len(v) for v in by_cat.values()):
        picked += [v[i] for v in by_cat.values() if i < len(v)][: n - len(picked)]
        i += 1
    label_h = 42
    n_rows = math.ceil(len(picked) / columns)
    sheet = Image.new("RGB", (columns * thumb, n_rows * (thumb + label_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for k, row in enumerate(picked):
        x, y = (k % columns) * thumb, (k // columns) * (thumb + label_h)
        img = Image.open(Path(dataset) / "images" / f"{row['id']}.jpg").resize(
            (thumb, thumb), Image.Resampling.LANCZOS
        )
        sheet.paste(img, (x, y))
        words, lines = row["title"].split(), [""]
        for w in words:
            if len(lines[-1]) + len(w) > 26 and lines[-1]:
                lines.append("")
            lines[-1] = (lines[-1] + " " + w).strip()
        draw.multiline_text(
            (x + 4, y + thumb + 1), "\n".join(lines[:3]), fill=(40, 40, 40), font=font, spacing=1
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
