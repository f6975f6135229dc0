"""Which items the catalog holds and which (reference, target) pairs become its queries."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np

from dataprep.demo_catalog.attributes import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    CATEGORIES,
    DemoCatalogConfig,
    Item,
)


def item_seed(seed: int, item_id: str) -> int:
    return int(np.random.SeedSequence([seed, zlib.crc32(item_id.encode())]).generate_state(1)[0])


def plan_items(cfg: DemoCatalogConfig) -> list[Item]:
    """Attributes per item. Val items of a category get pairwise-distinct attribute tuples."""
    items: list[Item] = []
    for ci, cat in enumerate(CATEGORIES):
        rng = np.random.default_rng([cfg.seed, 1, ci])
        values = [ATTRIBUTES[cat][a] for a in ATTRIBUTE_NAMES]
        n_combos = math.prod(len(v) for v in values)
        n_val = max(2, round(cfg.per_category * cfg.val_fraction))
        n_train = cfg.per_category - n_val
        if n_val > n_combos:
            raise ValueError(f"{cat}: {n_val} val items but only {n_combos} attribute combinations")
        codes = (
            rng.permutation(n_combos)[:n_val].tolist() + rng.integers(0, n_combos, n_train).tolist()
        )
        order = ["val"] * n_val + ["train"] * n_train
        for k, (code, split) in enumerate(zip(codes, order, strict=True)):
            attrs, rest = {}, int(code)
            for name, vals in zip(ATTRIBUTE_NAMES, values, strict=True):
                attrs[name] = vals[rest % len(vals)]
                rest //= len(vals)
            items.append(Item(f"{cat}_{split}_{k:05d}", cat, split, attrs))
    return items


def _codes(items: Sequence[Item]) -> np.ndarray:
    """(N, A) attribute value indices, for vectorised difference counting."""
    return np.array(
        [[ATTRIBUTES[it.category][a].index(it.attrs[a]) for a in ATTRIBUTE_NAMES] for it in items],
        dtype=np.int16,
    )


def make_triplets(
    items: Sequence[Item], per_ref: int, rng: np.random.Generator
) -> list[tuple[Item, Item]]:
    """(reference, target) pairs differing in 1 or 2 attributes, balanced over which attributes.

    The changed-attribute set is drawn first (so sleeve/neckline/length changes are as common as
    colour changes), then a target with exactly that difference.
    """
    codes = _codes(items)
    n_attr = len(ATTRIBUTE_NAMES)
    diff_sets = [(a,) for a in range(n_attr)] + [
        (a, b) for a in range(n_attr) for b in range(a + 1, n_attr)
    ]
    pairs: list[tuple[Item, Item]] = []
    for i, ref in enumerate(items):
        differs = codes != codes[i]  # (N, A)
        chosen: set[int] = set()
        for want in rng.permutation(len(diff_sets)).tolist():
            if len(chosen) >= per_ref:
                break
            wanted = np.zeros(n_attr, bool)
            wanted[list(diff_sets[want])] = True
            match = np.flatnonzero((differs == wanted).all(axis=1))
            match = [m for m in match.tolist() if m not in chosen]
            if match:
                chosen.add(match[int(rng.integers(len(match)))])
        pairs += [(ref, items[t]) for t in sorted(chosen, key=lambda t: items[t].id)]
    return pairs


def check_unique_targets(gallery: Sequence[Item], pairs: Sequence[tuple[Item, Item]]) -> None:
    """Raise unless every target's attributes match exactly one gallery item."""
    counts: dict[tuple, int] = {}
    for it in gallery:
        key = tuple(it.attrs[a] for a in ATTRIBUTE_NAMES)
        counts[key] = counts.get(key, 0) + 1
    for _, tgt in pairs:
        key = tuple(tgt.attrs[a] for a in ATTRIBUTE_NAMES)
        if counts.get(key) != 1:
            raise AssertionError(f"target {tgt.id} is not the unique match of its attributes")
