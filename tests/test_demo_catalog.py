"""Procedural demo catalog: layout, determinism, unique val targets, captions, drawings."""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataprep import demo_catalog as dc
from dataprep import load_fashioniq
from imaging import load_image

PER_CATEGORY = 24


def _build(out: Path, seed: int = 0, workers: int = 1) -> dict:
    cfg = dc.DemoCatalogConfig(out=out, seed=seed, per_category=PER_CATEGORY)
    return dc.build_demo_catalog(cfg, workers=workers)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "stats.json"  # stats.json holds the timing
    }


def _metadata(root: Path) -> dict[str, dict[str, str]]:
    with (root / "metadata.csv").open(encoding="utf-8") as f:
        return {row["id"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    _build(out)
    return out


def test_layout_is_readable_as_fashioniq(catalog: Path) -> None:
    for split in ("train", "val"):
        ds = load_fashioniq(catalog, catalog / "images", split, check="decode")
        assert sorted(ds.gallery) == ["dress", "shirt", "toptee"]
        assert not ds.missing
        assert ds.triplets
        n_val = round(PER_CATEGORY * 0.3)
        expected = n_val if split == "val" else PER_CATEGORY - n_val
        assert all(len(ids) == expected for ids in ds.gallery.values())
    img = load_image(next((catalog / "images").glob("*.jpg")))
    assert img.size == (256, 256)


def test_metadata_csv_has_id_category_title_and_attributes(catalog: Path) -> None:
    with (catalog / "metadata.csv").open(encoding="utf-8") as f:
        header = next(csv.reader(f))
    assert header == [
        "id",
        "category",
        "title",
        "colour",
        "pattern",
        "sleeve",
        "neckline",
        "length",
    ]
    rows = _metadata(catalog)
    assert len(rows) == 3 * PER_CATEGORY
    assert {p.stem for p in (catalog / "images").glob("*.jpg")} == set(rows)
    for row in rows.values():
        assert row["title"].lower().startswith(row["colour"])
        assert row["title"].endswith(
            {"dress": "dress", "shirt": "shirt", "toptee": "top"}[row["category"]]
        )


def test_every_val_target_is_the_unique_match_in_its_gallery(catalog: Path) -> None:
    meta = _metadata(catalog)
    ds = load_fashioniq(catalog, catalog / "images", "val")
    attrs = lambda i: tuple(meta[i][a] for a in dc.ATTRIBUTE_NAMES)  # noqa: E731
    for t in ds.triplets:
        gallery = ds.gallery[t.category]
        assert t.candidate in gallery and t.target in gallery
        matches = [g for g in gallery if attrs(g) == attrs(t.target)]
        assert matches == [t.target]
        assert t.relevant == [t.target]


def test_triplets_differ_in_one_or_two_attributes_and_captions_say_which(catalog: Path) -> None:
    meta = _metadata(catalog)
    colour_words = re.compile(r"\b(" + "|".join(dc.COLOURS) + r")\b")
    for split in ("train", "val"):
        for t in load_fashioniq(catalog, catalog / "images", split).triplets:
            ref, tgt = meta[t.candidate], meta[t.target]
            assert ref["category"] == tgt["category"] == t.category
            changed = [a for a in dc.ATTRIBUTE_NAMES if ref[a] != tgt[a]]
            assert 1 <= len(changed) <= 2
            assert len(t.captions) == 2 and t.captions[0] != t.captions[1]
            for caption in t.captions:
                if "colour" in changed:
                    assert re.search(rf"\b{tgt['colour']}\b", caption), caption
                else:
                    assert not colour_words.search(caption), caption


@pytest.mark.slow
def test_deterministic_for_a_seed_and_worker_count(tmp_path: Path, catalog: Path) -> None:
    again = tmp_path / "again"
    _build(again, workers=2)
    assert _digest(again) == _digest(catalog)
    other = tmp_path / "other"
    _build(other, seed=1)
    assert _digest(other) != _digest(catalog)


def test_same_attributes_do_not_give_identical_pixels() -> None:
    cfg = dc.DemoCatalogConfig(out=Path("unused"))
    attrs = {
        "colour": "red",
        "pattern": "solid",
        "sleeve": "short",
        "neckline": "round",
        "length": "knee",
    }
    a = np.asarray(dc.render_item("dress", attrs, 1, cfg), np.int16)
    b = np.asarray(dc.render_item("dress", attrs, 2, cfg), np.int16)
    assert np.abs(a - b).mean() > 1.0


@pytest.mark.parametrize("category", dc.CATEGORIES)
def test_drawing_is_a_garment_of_the_named_colour_on_a_light_background(category: str) -> None:
    cfg = dc.DemoCatalogConfig(out=Path("unused"))
    attrs = {name: values[0] for name, values in dc.ATTRIBUTES[category].items()}
    attrs.update(colour="red", pattern="solid")
    img = np.asarray(dc.render_item(category, attrs, 7, cfg), np.float32)
    corners = np.concatenate([img[:8, :8], img[:8, -8:], img[-8:, :8], img[-8:, -8:]])
    assert corners.min() > 215  # plain light studio background
    red = (img[..., 0] > 140) & (img[..., 1] < 80) & (img[..., 2] < 90)
    assert 0.08 < red.mean() < 0.6  # a garment-sized red region, not a full-frame fill


def test_patterns_are_visible() -> None:
    cfg = dc.DemoCatalogConfig(out=Path("unused"))
    attrs = {
        "colour": "navy",
        "pattern": "solid",
        "sleeve": "long",
        "neckline": "round",
        "length": "regular",
    }
    crop = lambda im: np.asarray(im, np.float32)[100:160, 100:160]  # noqa: E731 - torso
    solid = crop(dc.render_item("toptee", attrs, 3, cfg))
    for pattern in ("striped", "dotted", "checked", "floral"):
        patterned = crop(dc.render_item("toptee", {**attrs, "pattern": pattern}, 3, cfg))
        assert patterned.std() > solid.std() + 20, pattern


def test_describe_difference_rejects_no_change_and_three_changes() -> None:
    rng = np.random.default_rng(0)
    a = {
        "colour": "red",
        "pattern": "solid",
        "sleeve": "short",
        "neckline": "round",
        "length": "knee",
    }
    with pytest.raises(ValueError):
        dc.describe_difference("dress", a, dict(a), rng)
    b = {**a, "colour": "blue", "pattern": "striped", "sleeve": "long"}
    with pytest.raises(ValueError):
        dc.describe_difference("dress", a, b, rng)


def test_comparatives_only_when_they_pin_down_the_value() -> None:
    rng = np.random.default_rng(0)
    base = {"colour": "red", "pattern": "solid", "sleeve": "short", "neckline": "round"}
    seen = set()
    for _ in range(300):
        # maxi -> knee: "is shorter" would also fit mini, so it must never be used
        seen.update(
            dc.describe_difference(
                "dress", {**base, "length": "maxi"}, {**base, "length": "knee"}, rng
            )
        )
    assert not any("shorter" in c for c in seen)
    seen = set()
    for _ in range(300):
        seen.update(
            dc.describe_difference(
                "dress", {**base, "length": "knee"}, {**base, "length": "mini"}, rng
            )
        )
    assert "is shorter" in seen


def test_cli_writes_dataset_and_contact_sheet(tmp_path: Path, capsys) -> None:
    sheet = tmp_path / "sheet.png"
    dc.main(
        [
            "--out",
            str(tmp_path / "d"),
            "--seed",
            "3",
            "--per-category",
            "10",
            "--workers",
            "1",
            "--contact-sheet",
            str(sheet),
        ]
    )
    assert "dress" in capsys.readouterr().out
    assert (tmp_path / "d/captions/cap.toptee.val.json").is_file()
    assert Image.open(sheet).size[0] == 8 * 160


def test_a_new_catalog_appears_only_when_complete(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (tmp_path / "fresh", empty):
        cfg = dc.DemoCatalogConfig(out=out, per_category=4)
        stats = dc.build_demo_catalog(cfg)
        assert (out / "metadata.csv").is_file() and (out / "stats.json").is_file()
        assert stats["config"]["out"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "fresh"]  # no .partial left
