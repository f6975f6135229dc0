"""The fashion-products feedback yardstick: the adapter (products.csv rows -> relation items),
the relevant-set rules on a catalog without colourway links (gender agrees, an unknown pattern
is in no pattern relation, every other named attribute agrees), val queries in held-out
phrasings only, and the bench's separate results folder. A tiny hand-made products.csv with
drawn 60x80 photos covers the rules; the real photos are checked when present."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import feedback_rows as fr
from dataprep.feedback import HELDOUT_FAMILIES, heldout_markers_in
from dataprep.feedback import products as fp
from dataprep.feedback import triplets as ft
from dataprep.feedback.relations import RelationConfig
from model.data import load_dataset

DATA = Path(os.environ.get("FASHION_PRODUCTS_DIR",
                           Path(__file__).resolve().parents[2] / "shared/data/fashion-products"))
COLOURS = {"black": (20, 20, 20), "navy blue": (25, 35, 95), "red": (215, 25, 35),
           "pink": (240, 170, 185), "yellow": (240, 220, 60)}
TYPES = ("tshirt", "shirt", "jeans")
GENDERS = ("men", "women")
PATTERNS = ("", "solid", "striped", "printed")  # "" = the title names none: unknown
MARGIN = 12.0
PATTERN_RELATIONS = ("plainer", "busier", "remove pattern")


def draw(colour: tuple[int, int, int]) -> Image.Image:
    """A 60x80 product photo: the garment on a white studio background."""
    img = np.full((80, 60, 3), 255, np.uint8)
    img[12:70, 12:48] = colour
    return Image.fromarray(img)


def write_products(root: Path) -> tuple[Path, Path]:
    """(data folder, split folder): every type x gender x colour x pattern, plus rows the
    adapter must leave out (a train id, an unknown type, a missing photo)."""
    (root / "data" / "images").mkdir(parents=True)
    rows, val = [], []
    for t in TYPES:
        for g in GENDERS:
            for c, rgb in COLOURS.items():
                for p in PATTERNS:
                    item = str(10000 + len(rows))
                    rows.append([item, g, t, c, p, f"Brand {g.title()} {p} {c} {t}"])
                    draw(rgb).save(root / "data" / "images" / f"{item}.jpg")
                    val.append(item)
    train_id, sock_id, no_photo = "90001", "90002", "90003"
    rows += [[train_id, "men", "tshirt", "black", "solid", "Train Men Black Tshirt"],
             [sock_id, "men", "socks", "black", "", "Men Black Socks"],
             [no_photo, "men", "tshirt", "red", "", "Men Red Tshirt"]]
    for i in (train_id, sock_id):
        draw(COLOURS["black"]).save(root / "data" / "images" / f"{i}.jpg")
    with open(root / "data" / "products.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "gender", "type", "color", "pattern", "title"])
        w.writerows(rows)
    split = root / "split" / "image_splits"
    split.mkdir(parents=True)
    (split / "split.tops.val.json").write_text(json.dumps(val[:60] + [sock_id, no_photo]))
    (split / "split.bottoms.val.json").write_text(json.dumps(val[60:]))
    (split / "split.tops.train.json").write_text(json.dumps([train_id]))
    return root / "data", root / "split"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data, split = write_products(tmp_path_factory.mktemp("products"))
    out = tmp_path_factory.mktemp("products_feedback")
    stats = ft.build_feedback(ft.FeedbackConfig(
        data=data, out=out, catalog="products", products_split=split,
        relations=RelationConfig(lightness_margin=MARGIN)))
    return data, out, stats


def _entries(out: Path) -> list[dict]:
    return [e for p in sorted((out / "captions").glob("cap.*.json"))
            for e in json.loads(p.read_text())]


def _meta(out: Path) -> dict[str, dict]:
    with open(out / "metadata.csv", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_adapter_maps_a_row_to_a_relation_item():
    item = fp.item_of({"id": "7", "gender": "Women", "type": "track pants", "color": "navy blue",
                       "pattern": "striped", "title": "Brand  Women Striped Track Pants"}, "val")
    assert (item.group, item.product_type, item.colour, item.gender) == (
        "lower", "Track pants", "navy blue", "women")
    assert item.attributes == {"colour": "navy blue", "pattern": "striped"}
    assert item.patterned is True and item.split == "val" and item.garment
    assert item.product_code == "7" and item.title == "Brand Women Striped Track Pants"
    unknown = fp.item_of({"id": "8", "gender": "men", "type": "tshirt", "color": "multi",
                          "pattern": "", "title": "x"}, "val")
    assert unknown.patterned is None and "pattern" not in unknown.attributes  # never solid
    assert unknown.colour is None and "colour" not in unknown.attributes
    solid = fp.item_of({"id": "9", "gender": "men", "type": "dress", "color": "red",
                        "pattern": "solid", "title": "x"}, "val")
    assert solid.patterned is False and solid.attributes["pattern"] == "plain"
    assert solid.group == "full"
    assert fp.item_of({"id": "10", "gender": "men", "type": "socks", "color": "red",
                       "pattern": "", "title": "x"}, "val") is None


def test_read_products_keeps_val_items_with_a_photo(tmp_path):
    data, split = write_products(tmp_path)
    ids = fp.split_ids(split)
    items = fp.read_products(data, ids)
    assert len(items) == len(TYPES) * len(GENDERS) * len(COLOURS) * len(PATTERNS)
    kept = {i.id for i in items}
    assert not {"90001", "90002", "90003"} & kept  # train id, unknown type, no photo
    assert all(i.split == "val" for i in items)
    with pytest.raises(FileNotFoundError):
        fp.split_ids(tmp_path / "nowhere")


def test_relevant_sets_follow_the_rules(built):
    _, out, _ = built
    meta = _meta(out)
    light = {r["id"]: float(r["lstar"]) for r in csv.DictReader(
        open(out / "lightness.csv", encoding="utf-8")) if r["lstar"]}
    relations = set()
    for e in _entries(out):
        ref, relation = meta[e["candidate"]], e["relation"]
        relations.add(relation)
        assert e["target"] in e["relevant"] and e["candidate"] not in e["relevant"]
        if relation in PATTERN_RELATIONS:
            assert ref["pattern"]  # an unknown pattern is never a pattern reference
        for i in e["relevant"]:
            c = meta[i]
            assert c["gender"] == ref["gender"], (relation, i)
            if relation != "type change":
                assert c["product_type"] == ref["product_type"]
            if relation in PATTERN_RELATIONS:
                assert c["pattern"], (relation, i)  # ... nor a relevant item
                assert c["colour"] == ref["colour"]
            if relation == "plainer" or relation == "remove pattern":
                assert c["pattern"] == "plain" and ref["pattern"] != "plain"
            if relation == "busier":
                assert c["pattern"] != "plain" and ref["pattern"] == "plain"
            if relation in ("lighter", "darker", "not colour"):
                assert c["colour"] != ref["colour"]
                if ref["pattern"] and c["pattern"]:  # every other attribute both name agrees
                    assert c["pattern"] == ref["pattern"]
            if relation == "lighter":
                assert light[i] - light[e["candidate"]] >= MARGIN
            if relation == "darker":
                assert light[e["candidate"]] - light[i] >= MARGIN
    assert {"lighter", "darker", "plainer", "busier", "remove pattern", "not colour",
            "multi-change", "type change"} <= relations
    assert "colourway" not in relations  # no colourway links in this catalog


def test_the_yardstick_never_cuts_a_relevant_set(built):
    _, _, stats = built
    assert stats["config"]["relations"]["max_relevant"] == ft.PRODUCTS_MAX_RELEVANT


def test_relevant_sets_are_broader_than_colourways(built):
    """Without colourway links a colour relation relates every item of the type and gender
    in another colour: relevant sets hold more than one item."""
    _, out, stats = built
    rows = stats["yardstick"]["rows"]
    assert rows["negation"]["relevant_median"] > 1
    assert rows["lighter"]["queries"] > 0 and rows["darker"]["queries"] > 0


def test_val_only_in_heldout_families(built):
    _, out, stats = built
    assert not list((out / "captions").glob("*.train.json"))
    assert stats["articles_per_split"] == {"val": len(_meta(out))}
    names = {f.name for f in HELDOUT_FAMILIES}
    entries = _entries(out)
    assert entries
    for e in entries:
        assert len(e["captions"]) == 1 and heldout_markers_in(e["captions"][0]), e
        assert e["family"] in names and f"family:{e['family']}" in e["tags"]


def test_the_train_part_writes_training_requests_on_training_photos_only(tmp_path):
    """--products-part train: the same relations on the split's training photos, two training
    phrasings each, no val query, relevant sets cut as H&M's training sets are; a loader reads
    the folder as a dataset that trains and is not scored."""
    data, split = write_products(tmp_path)
    val = json.loads((split / "image_splits" / "split.tops.val.json").read_text())
    (split / "image_splits" / "split.tops.train.json").write_text(json.dumps(val[:40]))
    out = tmp_path / "train_part"
    stats = ft.build_feedback(ft.FeedbackConfig(
        data=data, out=out, catalog="products", products_split=split, products_part="train",
        relations=RelationConfig(lightness_margin=MARGIN)))
    assert stats["articles_per_split"] == {"train": 40}
    assert stats["config"]["products_part"] == "train" and "yardstick" not in stats
    assert stats["config"]["relations"]["max_relevant"] == RelationConfig.max_relevant
    assert not any(json.loads(p.read_text()) for p in (out / "captions").glob("*.val.json"))
    entries = _entries(out)
    assert {"lighter", "darker", "not colour"} <= {e["relation"] for e in entries}
    assert {i for e in entries for i in (e["candidate"], *e["relevant"])} <= set(val[:40])
    for e in entries:
        assert len(e["captions"]) == 2 and "family" not in e
        assert not any(heldout_markers_in(c) for c in e["captions"]), e["captions"]
    dataset = load_dataset(str(out), str(data / "images"))
    assert dataset.train.triplets and not dataset.val.triplets
    with pytest.raises(ValueError, match="unknown products part 'test'"):
        ft.read_catalog(ft.FeedbackConfig(data=data, out=out, catalog="products",
                                          products_split=split, products_part="test"))


def test_yardstick_stats_flag_thin_rows(built):
    _, out, stats = built
    y = stats["yardstick"]
    assert y["lightness_usable_share"] == 100.0  # every drawn garment stands out of the white
    assert {"colourway", "shorter", "sleeve length"} <= set(y["too_few_queries"])
    # a val-only build is flagged by its val rows: none for having no training part
    assert "negation" not in stats["too_little_data"]
    assert stats["too_little_data"] == y["too_few_queries"]
    assert stats == json.loads((out / "stats.json").read_text())
    assert "too few" in ft.format_yardstick(stats)


def test_bench_files_another_catalog_apart():
    assert fr.results_name(fr.parse_args([])) == "accuracy_feedback"
    cfg = fr.parse_args(["--catalog", "products", "--feedback", "x:y"])
    assert fr.results_name(cfg) == "accuracy_feedback_products"


def test_an_unknown_catalog_is_refused_by_name(capsys):
    with pytest.raises(SystemExit):
        fr.parse_args(["--catalog", "zalando"])
    assert "invalid choice: 'zalando'" in capsys.readouterr().err


@pytest.mark.skipif(not (DATA / "products.csv").is_file(),
                    reason=f"fashion-products not found at {DATA}")
@pytest.mark.slow
def test_real_photos(tmp_path):
    """Lightness is measurable on the real 60x80 photos, and the rules hold on them."""
    with open(DATA / "products.csv", newline="", encoding="utf-8") as f:
        ids = [r["id"] for _, r in zip(range(1500), csv.DictReader(f), strict=False)]
    split = tmp_path / "split" / "image_splits"
    split.mkdir(parents=True)
    (split / "split.all.val.json").write_text(json.dumps(ids))
    out = tmp_path / "out"
    stats = ft.build_feedback(ft.FeedbackConfig(data=DATA, out=out, catalog="products",
                                                products_split=split.parent))
    assert stats["yardstick"]["lightness_usable_share"] > 95
    meta = _meta(out)
    # The foreground of a worn garment holds skin and other clothes too: the measure is
    # compressed (black ~39, white ~68 L* on val) but keeps the colour names' order.
    light = {r["id"]: float(r["lstar"]) for r in csv.DictReader(
        open(out / "lightness.csv", encoding="utf-8")) if r["lstar"]}
    named = {c: [v for i, v in light.items() if meta[i]["colour"] == c]
             for c in ("black", "navy blue", "white", "yellow")}
    dark, pale = named["black"] + named["navy blue"], named["white"] + named["yellow"]
    assert np.mean(np.array(pale)[:, None] > np.array(dark)[None, :]) > 0.9
    for e in _entries(out):
        assert heldout_markers_in(e["captions"][0])
        assert all(meta[i]["gender"] == meta[e["candidate"]]["gender"] for i in e["relevant"])
        if e["relation"] in PATTERN_RELATIONS:
            assert all(meta[i]["pattern"] for i in [e["candidate"], *e["relevant"]])


def test_bad_products_inputs_are_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        ft.main(["--catalog", "products", "--data", str(tmp_path), "--out", str(tmp_path / "o")])
    assert "--catalog products needs --products-split" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs products_split"):
        ft.read_catalog(ft.FeedbackConfig(data=tmp_path, out=tmp_path, catalog="products"))
    with pytest.raises(ValueError, match="unknown catalog 'zalando'"):
        ft.read_catalog(ft.FeedbackConfig(data=tmp_path, out=tmp_path, catalog="zalando"))
    with pytest.raises(FileNotFoundError, match="no image_splits/split.*val.json"):
        fp.split_ids(tmp_path)
