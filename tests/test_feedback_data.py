"""H&M feedback data: measured lightness, strict attributes, the relation rules (relevant sets,
hard negatives, positive evidence only), the product-code split, phrasing splits and the
FashionIQ layout that model.train reads. A tiny hand-made articles.csv with drawn photos
(a coloured garment on a white background) covers every rule."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataprep import load_fashioniq
from dataprep.feedback import HELDOUT_FAMILIES, heldout_markers_in, phrasing
from dataprep.feedback import attributes as fa
from dataprep.feedback import lightness as fl
from dataprep.feedback import triplets as ft
from dataprep.feedback.relations import RelationConfig
from dataprep.hm_triplets import split_of

COLUMNS = ["article_id", "product_code", "prod_name", "product_type_name", "product_group_name",
           "graphical_appearance_name", "colour_group_name", "perceived_colour_value_name",
           "detail_desc"]
FULL, UPPER, LOWER = "Garment Full body", "Garment Upper body", "Garment Lower body"
# (type, group, appearance, description); each design is drawn in every colour below.
DESIGNS = [
    ("Dress", FULL, "Solid", "Short dress in jersey with a V-neck and long sleeves."),
    ("Dress", FULL, "Solid", "Knee-length dress in jersey with a V-neck and long sleeves."),
    ("Dress", FULL, "Solid", "Calf-length dress in jersey with a V-neck and long sleeves."),
    ("Dress", FULL, "Solid", "Calf-length dress in jersey with a V-neck and narrow shoulder "
                             "straps."),
    ("Dress", FULL, "All over pattern", "Short dress in jersey with a V-neck and long sleeves."),
    ("Top", UPPER, "Solid", "Short-sleeved top in jersey with a round neck."),
    ("Top", UPPER, "Solid", "Fitted top in jersey with a round neck and long sleeves."),
    ("Top", UPPER, "Solid", "Top in jersey with a round neck."),  # sleeve unknown
    ("Hoodie", UPPER, "Solid", "Hoodie in sweatshirt fabric with a hood and long sleeves."),
    ("Sweater", UPPER, "Solid", "Sweater in sweatshirt fabric with a round neck and long "
                                "sleeves."),
    ("Trousers", LOWER, "Denim", "Trousers in denim with a high waist."),
    ("Trousers", LOWER, "Solid", "Trousers in twill with a high waist."),
    ("Gloves", "Accessories", "Solid", "Knitted gloves."),
    ("Sneakers", "Shoes", "Solid", "Trainers in faux leather."),
]
COLOURS = {"Black": ((20, 20, 20), "Dark"), "Light Pink": ((240, 170, 185), "Dusty Light"),
           "Dark Blue": ((25, 35, 95), "Dark"), "Dark Grey": ((45, 45, 45), "Dark"),
           "Red": ((215, 25, 35), "Bright"),
           "White": ((250, 250, 250), "Light")}  # white on white: lightness unknown


MARGIN = 12.0  # dark grey and dark blue are 1.8 L* apart: a near-tie the margin must drop


def draw(colour: tuple[int, int, int]) -> Image.Image:
    img = np.full((60, 40, 3), 245, np.uint8)
    img[10:50, 8:32] = colour
    return Image.fromarray(img)


def write_hm(root: Path, copies: int = 7) -> Path:
    (root / "images").mkdir(parents=True)
    rows = []
    for c in range(copies):
        for d, (ptype, group, look, desc) in enumerate(DESIGNS):
            code = f"{200000 + 100 * c + d}"
            for k, (colour, (rgb, value)) in enumerate(COLOURS.items()):
                if (c + d + k) % 4 == 3:  # not every colour of every design
                    continue
                article = f"0{code}{k + 1:03d}"
                rows.append([article, code, f"{ptype} {c}", ptype, group, look, colour, value,
                             desc])
                draw(rgb).save(root / "images" / f"{article}.jpg")
    with open(root / "articles.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = write_hm(tmp_path_factory.mktemp("hm"))
    out = tmp_path_factory.mktemp("feedback")
    stats = ft.build_feedback(ft.FeedbackConfig(
        data=data, out=out, relations=RelationConfig(lightness_margin=MARGIN)))
    return data, out, stats


def _entries(out: Path, split: str) -> list[dict]:
    return [e for p in sorted((out / "captions").glob(f"cap.*.{split}.json"))
            for e in json.loads(p.read_text())]


def _meta(out: Path) -> dict[str, dict]:
    with open(out / "metadata.csv", encoding="utf-8") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def _lightness(out: Path) -> dict[str, float]:
    with open(out / fl.CACHE_NAME, encoding="utf-8") as f:
        return {r["id"]: float(r["lstar"]) for r in csv.DictReader(f) if r["lstar"]}


def test_lightness_of_the_foreground_only():
    dark = np.asarray(draw((20, 20, 20)))
    light = np.asarray(draw((240, 170, 185)))
    l_dark, share = fl.foreground_lightness(dark)
    assert l_dark is not None and l_dark < 15 and 0.3 < share < 0.5
    assert fl.foreground_lightness(light)[0] > l_dark + 50
    assert fl.foreground_lightness(np.asarray(draw((250, 250, 250))))[0] is None
    assert fl.srgb_to_lstar(np.array([255, 255, 255])) == pytest.approx(100, abs=0.01)
    assert fl.srgb_to_lstar(np.array([0, 0, 0])) == pytest.approx(0, abs=0.01)


def test_lightness_cache_is_reused_and_refreshed(tmp_path):
    paths = {}
    for i, rgb in enumerate([(20, 20, 20), (200, 200, 90)]):
        paths[str(i)] = tmp_path / f"{i}.jpg"
        draw(rgb).save(paths[str(i)])
    cache = tmp_path / "lightness.csv"
    first = fl.measure(paths, cache)
    cache.write_text(cache.read_text().replace(f"{first['0']:.2f}", "55.55"))
    assert fl.measure(paths, cache)["0"] == 55.55  # read back, not measured again
    draw((240, 240, 60)).save(paths["1"])  # a changed photo is measured again
    os.utime(paths["1"], (1, 1))
    assert fl.measure(paths, cache)["1"] != first["1"]


def test_strict_attributes():
    def parse(desc: str, ptype: str = "Dress", group: str = FULL) -> dict:
        return fa.parse_item_attributes({"detail_desc": desc, "product_type_name": ptype,
                                         "product_group_name": group,
                                         "graphical_appearance_name": "Solid",
                                         "colour_group_name": "Black"})
    assert parse("Short dress in jersey.")["length"] == "short"
    assert "length" not in parse("Short-sleeved top in jersey.", "Top", UPPER)
    assert "length" not in parse("Short top in jersey.", "Top", UPPER)
    assert parse("Jeans with skinny legs.", "Trousers", LOWER)["fit"] == "fitted"
    assert parse("Top in a relaxed fit.", "Top", UPPER)["fit"] == "loose"
    assert "fit" not in parse("Cardigan in a soft, loose knit.", "Cardigan", UPPER)
    assert "fit" not in parse("Dress with a fitted waist.")
    socks = parse("Socks with long sleeves, a hood and a V-neck.", "Socks", "Socks & Tights")
    assert set(socks) <= {"colour", "pattern", "material"}


def test_split_by_product_code_and_val_never_trained(built):
    _, out, _ = built
    meta = _meta(out)
    seen = {"train": set(), "val": set()}
    for split in ("train", "val"):
        for e in _entries(out, split):
            ids = [e["candidate"], e["target"], *e["relevant"], *e["negatives"]]
            assert {split_of(i[1:7]) for i in ids} == {split}, e
            seen[split].update(ids)
    assert seen["train"] and seen["val"] and not seen["train"] & seen["val"]
    gallery = json.loads((out / "image_splits" / "split.colourway.val.json").read_text())
    assert set(gallery) == {i for i in meta if split_of(i[1:7]) == "val"}
    assert {meta[i]["product_group"] for i in gallery} >= {"full", "upper", "accessories"}


def test_relevant_sets_follow_the_rules(built):
    _, out, stats = built
    meta, light = _meta(out), _lightness(out)
    margin = MARGIN
    order = {"length": fa.LENGTH_ORDER, "sleeve": fa.SLEEVE_ORDER}
    relations = set()
    for split in ("train", "val"):
        for e in _entries(out, split):
            ref, relation = meta[e["candidate"]], e["relation"]
            relations.add(relation)
            assert e["target"] in e["relevant"] and e["candidate"] not in e["relevant"]
            assert not set(e["negatives"]) & set(e["relevant"])
            for i in e["relevant"]:
                c = meta[i]
                if relation in ("lighter", "darker", "not colour", "colourway"):
                    assert i[:7] == e["candidate"][:7] and c["colour"] != ref["colour"]
                if relation == "lighter":
                    assert light[i] - light[e["candidate"]] >= margin
                if relation == "darker":
                    assert light[e["candidate"]] - light[i] >= margin
                if relation in ("shorter", "longer", "shorter sleeves", "longer sleeves"):
                    attribute = "length" if relation in ("shorter", "longer") else "sleeve"
                    step = np.sign(order[attribute].index(c[attribute])
                                   - order[attribute].index(ref[attribute]))
                    assert step == (-1 if relation.startswith("shorter") else 1)
                    assert c["product_type"] == ref["product_type"]
                    for a in ("colour", "neckline", "material", "length", "sleeve"):
                        if a != attribute and ref[a] and c[a]:
                            assert ref[a] == c[a], (relation, a)
                if relation == "without sleeves":
                    assert c["sleeve"] == "sleeveless"  # positive evidence, never unknown
                if relation == "no hood":
                    assert c["neckline"] and c["neckline"] != "hood"
                if relation == "not material":
                    assert c["material"] and c["material"] != ref["material"]
            if relation == "without sleeves":
                assert all(meta[n]["sleeve"] != "sleeveless" for n in e["negatives"])
    assert {"lighter", "darker", "shorter", "longer", "shorter sleeves", "without sleeves",
            "no hood", "remove pattern", "not colour", "not material", "colourway",
            "multi-change", "plainer", "busier"} <= relations
    gloves = {i for i, r in meta.items() if r["product_type"] == "Gloves"}
    assert any(set(e["negatives"]) & gloves for e in _entries(out, "train")
               if e["relation"] == "without sleeves")


def test_type_changes_cross_types_within_a_group(built):
    _, out, _ = built
    meta = _meta(out)
    entries = [e for split in ("train", "val") for e in _entries(out, split)
               if e["relation"] == "type change"]
    assert entries
    kept_type = 0
    for e in entries:
        ref, tgt = meta[e["candidate"]], meta[e["target"]]
        assert tgt["product_type"] != ref["product_type"]
        assert tgt["product_group"] == ref["product_group"]
        assert ["type", "absolute", tgt["product_type"].lower()] in [c[:3] for c in e["changes"]]
        assert 1 <= len(e["changes"]) <= 4
        assert all(meta[i]["product_type"] == tgt["product_type"] for i in e["relevant"])
        kept_type += any(meta[n]["product_type"] == ref["product_type"] for n in e["negatives"])
    assert kept_type  # the words asked for another type: the reference's is a hard negative


def test_a_later_kind_leaves_earlier_captions_alone(built, tmp_path, monkeypatch):
    """Datasets already trained on keep every caption when a kind of request is added."""
    data, out, _ = built
    every_kind = ft.all_queries
    monkeypatch.setattr(ft, "all_queries", lambda *a, **k: [
        q for q in every_kind(*a, **k) if q.kind not in ft.LATER_KINDS])
    before = tmp_path / "before"
    ft.build_feedback(ft.FeedbackConfig(data=data, out=before,
                                        relations=RelationConfig(lightness_margin=MARGIN)))
    for path in sorted((before / "captions").glob("*.json")):
        now = [e for e in json.loads((out / "captions" / path.name).read_text())
               if e["tags"][0] not in ft.LATER_KINDS]
        assert json.loads(path.read_text()) == now, path.name


def test_new_training_words_leave_every_val_caption_alone(built, tmp_path, monkeypatch):
    """The training lexicon can grow (stage 73's did) without moving a val caption: each split
    phrases from generators of its own."""
    data, out, _ = built
    grown = {key: {**lex, "train": [*lex["train"], "in a wholly new way"]}
             for key, lex in phrasing.RELATIVE.items()}
    monkeypatch.setattr(phrasing, "RELATIVE", grown)
    again = tmp_path / "again"
    ft.build_feedback(ft.FeedbackConfig(data=data, out=again,
                                        relations=RelationConfig(lightness_margin=MARGIN)))
    val = sorted((out / "captions").glob("*.val.json"))
    assert val
    for path in val:
        assert (again / "captions" / path.name).read_text() == path.read_text(), path.name
    train = [e["captions"] for e in _entries(again, "train")]
    assert any("in a wholly new way" in c for pair in train for c in pair)


def test_train_and_val_phrasings_are_apart(built):
    _, out, _ = built
    for e in _entries(out, "train"):
        assert len(e["captions"]) == 2 and "family" not in e
        assert not any(heldout_markers_in(c) for c in e["captions"]), e["captions"]
    colourways: dict[tuple[str, str], set[str]] = {}
    for e in _entries(out, "val"):
        assert len(e["captions"]) == 1 and heldout_markers_in(e["captions"][0]), e
        assert f"family:{e['family']}" in e["tags"]
        if e["relation"] == "colourway":
            colourways.setdefault((e["candidate"], e["target"]), set()).add(e["family"])
    assert colourways and all(f == {x.name for x in HELDOUT_FAMILIES}
                              for f in colourways.values())


def test_fashioniq_reader_and_stats(built):
    data, out, stats = built
    train = load_fashioniq(out, data / "images", "train")
    val = load_fashioniq(out, data / "images", "val")
    assert {"full", "upper", "accessories", "shoes"} <= set(train.categories)
    assert set(val.categories) == set(ft.VAL_KINDS)
    assert all(t.tags and t.relevant for t in val.triplets)
    assert stats["too_little_data"]  # a tiny catalog cannot give 150 val queries per row
    table = ft.format_stats(stats)
    assert "too little data" in table and "| lighter |" in table
    assert stats == json.loads((out / "stats.json").read_text())


def test_same_config_same_files(built, tmp_path):
    data, out, _ = built
    again = tmp_path / "again"
    ft.build_feedback(ft.FeedbackConfig(data=data, out=again,
                                        relations=RelationConfig(lightness_margin=MARGIN)))
    for path in sorted((out / "captions").glob("*.json")):
        assert path.read_text() == (again / "captions" / path.name).read_text(), path.name
