"""Measured lightness of each article: mean CIE L* over the product's foreground pixels.

H&M's ``perceived_colour_value_name`` is not a lightness scale ("Dusty" means muted; Dark Blue
appears under Dark, Medium Dusty and Bright), so "lighter" and "darker" are measured on the
photo instead. The shots are on a plain white or light-grey background: the background colour
is the median of the image border, a pixel is foreground when one channel differs from it by
more than ``threshold``, and a photo whose foreground is under ``min_share`` or over
``max_share`` of the frame (a white garment lost in the background, a photo without one) gets
no value rather than a wrong one.

Values are computed once per article and kept in a CSV (``lightness.csv`` in the output
folder), keyed by article id and the image's size and modification time, so a rebuild reads
them back and a changed photo is measured again.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

logger = logging.getLogger(__name__)

CACHE_NAME = "lightness.csv"


@dataclass(frozen=True)
class LightnessConfig:
    threshold: float = 18.0  # max channel difference (0-255) from the background colour
    min_share: float = 0.04  # foreground share of the frame below which L* is unknown
    max_share: float = 0.95  # above it the "background" is not one (a full-frame photo)


def srgb_to_lstar(rgb: np.ndarray) -> np.ndarray:
    """CIE L* (0-100, D65) of sRGB values in 0-255, shape (..., 3) -> (...)."""
    c = rgb.astype(np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    y = linear @ np.array([0.2126, 0.7152, 0.0722])
    f = np.where(y > 216 / 24389, np.cbrt(y), (24389 / 27 * y + 16) / 116)
    return 116.0 * f - 16.0


def foreground_lightness(rgb: np.ndarray, cfg: LightnessConfig = LightnessConfig()
                         ) -> tuple[float | None, float]:
    """(mean L* of the foreground or None, foreground share) of an (H, W, 3) uint8 image."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.float64)
    background = np.median(border, axis=0)
    mask = np.abs(rgb.astype(np.float64) - background).max(axis=-1) > cfg.threshold
    share = float(mask.mean())
    if not cfg.min_share <= share <= cfg.max_share:
        return None, share
    return float(srgb_to_lstar(rgb[mask]).mean()), share


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}-{int(st.st_mtime)}"


def measure(images: dict[str, Path], cache: Path | None,
            cfg: LightnessConfig = LightnessConfig()) -> dict[str, float]:
    """id -> L* for every image with a measurable foreground, reusing ``cache`` rows whose
    stamp matches and writing the cache back (all rows, measured or not)."""
    known: dict[str, tuple[str, str, str]] = {}
    if cache is not None and cache.is_file():
        with cache.open(newline="", encoding="utf-8") as f:
            known = {r["id"]: (r["stamp"], r["lstar"], r["share"]) for r in csv.DictReader(f)}
    rows: dict[str, tuple[str, str, str]] = {}
    todo = []
    for item_id, path in images.items():
        stamp = _stamp(path)
        if item_id in known and known[item_id][0] == stamp:
            rows[item_id] = known[item_id]
        else:
            todo.append((item_id, path, stamp))
    for item_id, path, stamp in tqdm(todo, desc="measuring lightness", unit="img",
                                     disable=len(todo) < 200):
        with Image.open(path) as img:
            value, share = foreground_lightness(np.asarray(img.convert("RGB")), cfg)
        rows[item_id] = (stamp, "" if value is None else f"{value:.2f}", f"{share:.3f}")
    if cache is not None and todo:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with cache.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "stamp", "lstar", "share"])
            for item_id in sorted(rows):
                writer.writerow([item_id, *rows[item_id]])
    logger.info("lightness: %d measured, %d from the cache, %d without a foreground",
                len(todo), len(rows) - len(todo), sum(not r[1] for r in rows.values()))
    return {i: float(r[1]) for i, r in rows.items() if r[1]}


def image_paths(data: Path, ids: Iterable[str]) -> dict[str, Path]:
    """id -> ``data/images/{id}.jpg`` for the ids whose photo exists."""
    return {i: p for i in ids if (p := data / "images" / f"{i}.jpg").is_file()}
