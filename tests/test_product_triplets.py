"""Real-photo triplet builder: change kinds, captions, relevant sets, fixed split, determinism.

The tests on the real photos skip when ``shared/data/fashion-products`` is absent (it is not part
of the project); a tiny hand-made products folder covers the same rules everywhere.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from dataprep import load_fashioniq
from dataprep import product_triplets as pt

DATA = Path(
    os.environ.get(
        "FASHION_PRODUCTS_DIR",
        Path(__file__).resolve().parents[2] / "shared/data/fashion-products",
    )
)
SLICE = 2500  # rows of products.csv used by the real-data tests


def _metadata(root: Path) -> dict[str, dict[str, str]]:
    with (root / "metadata.csv").open(encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.json"))
        if p.name != "stats.json"
    } | {"metadata.csv": hashlib.sha256((root / "metadata.csv").read_bytes()).hexdigest()}


def _check_rules(out: Path, images: Path) -> int:
    """Assert every triplet follows the change rules; returns the number checked."""
    meta = _metadata(out)
    colour_words = {m["colour"] for m in meta.values()} | {"multicoloured"}
    checked = 0
    for split in ("train", "val"):
        ds = load_fashioniq(out, images, split, check="exists")
        assert not ds.missing
        raw = {}
        for family in ds.gallery:
            for e in json.loads((out / f"captions/cap.{family}.{split}.json").read_text()):
                raw[(e["candidate"], e["target"])] = e
        for t in ds.triplets:
            ref, tgt = meta[t.candidate], meta[t.target]
            kind = raw[(t.candidate, t.target)]["kind"]
            assert ref["category"] == tgt["category"] == t.category
            assert ref["gender"] == tgt["gender"]
            same = {a for a in ("type", "colour", "pattern") if ref[a] == tgt[a]}
            expected_same = {
                "colour": {"type", "pattern"},
                "pattern": {"type", "colour"},
                "colour+pattern": {"type"},
                "type": {"colour", "pattern"},
            }[kind]
            assert same == expected_same, (kind, ref, tgt)
            if "pattern" in kind:
                assert ref["pattern"] and tgt["pattern"]
            if "colour" in kind:
                assert not pt._similar(ref["colour"], tgt["colour"])
            for caption in t.captions:
                words = caption.lower()
                if "colour" in kind:
                    assert pt._COLOUR_WORDS.get(tgt["colour"], tgt["colour"]) in words
                else:  # an unchanged colour is never mentioned
                    assert not any(re.search(rf"\b{c}\b", words) for c in colour_words), caption
                if kind == "type":
                    assert pt._noun(tgt["type"]) in words
            assert len(t.captions) == 2 and t.captions[0] != t.captions[1]
            if split == "val":
                gallery = ds.gallery[t.category]
                key = lambda i: tuple(meta[i][a] for a in ("gender", "type", "colour", "pattern"))  # noqa: E731
                assert t.target in t.relevant
                assert sorted(t.relevant) == sorted(g for g in gallery if key(g) == key(t.target))
            checked += 1
    return checked


# ----------------------------------------------------------------------------- hand-made data


@pytest.fixture
def tiny_products(tmp_path: Path) -> Path:
    rows = []
    n = 0
    for gender in ("men", "women"):
        for type_ in ("tshirt", "shirt", "jeans"):
            for colour in ("black", "navy blue", "red", "white", "off white"):
                for pattern in ("", "striped", "checked"):
                    n += 1
                    rows.append([str(1000 + n), gender, type_, colour, pattern, f"T {n}"])
    rows.append(["9998", "men", "sari", "red", "", "not in a family? (sari is)"])
    rows.append(["9999", "men", "socks", "red", "", "type outside the families"])
    rows.append(["9997", "men", "tshirt", "", "", "no colour"])
    root = tmp_path / "products"
    (root / "images").mkdir(parents=True)
    with (root / "products.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "gender", "type", "color", "pattern", "title"])
        w.writerows(rows)
    for r in rows:
        if r[0] != "1001":  # one product without its photo
            Image.new("RGB", (6, 8), (200, 0, 0)).save(root / "images" / f"{r[0]}.jpg")
    return root


def test_tiny_dataset_follows_the_rules(tiny_products: Path, tmp_path: Path) -> None:
    cfg = pt.ProductTripletsConfig(data=tiny_products, out=tmp_path / "out", val_fraction=0.4)
    stats = pt.build_product_triplets(cfg)
    assert stats["dropped"] == {"image missing": 1, "type outside families": 1, "no colour": 1}
    assert set(stats["families"]) == {"tops", "bottoms", "ethnic"}
    assert _check_rules(tmp_path / "out", tiny_products / "images") > 50
    kinds = {k for f in stats["families"].values() for s in f.values() for k in s["kinds"]}
    assert kinds == {"colour", "pattern", "colour+pattern", "type"}


def test_similar_colours_are_not_changes() -> None:
    assert pt._similar("white", "off white") and pt._similar("grey", "grey melange")
    assert not pt._similar("blue", "navy blue")


def test_split_is_fixed_by_id() -> None:
    ids = [str(i) for i in range(10000, 12000)]
    val = [i for i in ids if pt.split_of(i, 0.2) == "val"]
    assert 300 < len(val) < 500
    assert val == [i for i in reversed(ids) if pt.split_of(i, 0.2) == "val"][::-1]


def test_type_phrases_are_grammatical_for_plural_garments() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    seen = {pt._type_phrase("trousers", "jeans", rng) for _ in range(200)}
    assert "is jeans" not in seen and "is a jeans" not in " ".join(seen)
    assert "jeans instead of trousers" in seen
    assert {pt._type_phrase("tshirt", "shirt", rng) for _ in range(200)} >= {
        "is a shirt instead of a t-shirt"
    }


# ----------------------------------------------------------------------------- real photos

needs_data = pytest.mark.skipif(
    not (DATA / "products.csv").is_file(), reason=f"fashion-products not found at {DATA}"
)


@needs_data
@pytest.mark.slow
def test_real_slice_follows_the_rules_and_is_deterministic(tmp_path: Path) -> None:
    cfg = pt.ProductTripletsConfig(data=DATA, out=tmp_path / "a", limit=SLICE)
    stats = pt.build_product_triplets(cfg)
    assert stats["products_used"] > 0.9 * SLICE
    assert _check_rules(tmp_path / "a", DATA / "images") > SLICE
    pt.build_product_triplets(pt.ProductTripletsConfig(data=DATA, out=tmp_path / "b", limit=SLICE))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


@needs_data
@pytest.mark.slow
def test_real_slice_split_does_not_depend_on_the_seed(tmp_path: Path) -> None:
    for seed in (0, 1):
        pt.main(
            [
                "--data",
                str(DATA),
                "--out",
                str(tmp_path / f"s{seed}"),
                "--seed",
                str(seed),
                "--limit",
                str(SLICE),
            ]
        )
    splits = lambda d: {p.name: p.read_text() for p in (d / "image_splits").iterdir()}  # noqa: E731
    assert splits(tmp_path / "s0") == splits(tmp_path / "s1")
    caps = lambda d: (d / "captions/cap.tops.train.json").read_text()  # noqa: E731
    assert caps(tmp_path / "s0") != caps(tmp_path / "s1")
    train = json.loads((tmp_path / "s0/image_splits/split.tops.train.json").read_text())
    val = json.loads((tmp_path / "s0/image_splits/split.tops.val.json").read_text())
    assert train and val and not set(train) & set(val)
