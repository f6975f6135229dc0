"""H&M triplet builder: attribute parsing, colourway and attribute-change rules, split by product
code, relevant sets, tags, determinism. A tiny hand-made articles.csv covers every rule; the
real data (``shared/data/hm``) is checked too when it is present."""

from __future__ import annotations

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest
from PIL import Image

from dataprep import hm_triplets as hm
from dataprep import load_fashioniq

HM = Path(os.environ.get("HM_DIR", Path(__file__).resolve().parents[2] / "shared/data/hm"))

COLUMNS = ["article_id", "product_code", "prod_name", "product_type_name", "product_group_name",
           "graphical_appearance_name", "colour_group_name", "detail_desc"]
# (product type, group, appearance, description) per product code; colours come per article.
FULL, LOWER, UPPER = "Garment Full body", "Garment Lower body", "Garment Upper body"
DESIGNS = [
    ("Dress", FULL, "Solid", "Short dress in jersey with a V-neck and long sleeves."),
    ("Dress", FULL, "Solid", "Short dress in jersey with a V-neck and short sleeves."),
    ("Dress", FULL, "Stripe", "Short dress in jersey with a V-neck and long sleeves."),
    ("Dress", FULL, "Solid", "Calf-length dress in satin with a collar and long sleeves."),
    ("Trousers", LOWER, "Solid", "Jeans in denim with a high waist and skinny legs."),
    ("Trousers", LOWER, "Solid", "Jeans in denim with a regular waist and skinny legs."),
    ("Trousers", LOWER, "Solid", "Jeans in denim with a high waist and wide legs."),
    ("T-shirt", UPPER, "Solid", "T-shirt in cotton jersey with short sleeves and a round neck."),
    ("T-shirt", UPPER, "Solid", "T-shirt in cotton jersey with long sleeves and a round neck."),
    ("Earring", "Accessories", "Solid", "Metal earrings."),
]
COLOURS = ["Black", "White", "Dark Blue", "Light Pink"]


def write_hm(root: Path, copies: int = 6) -> Path:
    """copies x DESIGNS product codes, each in 2-3 colourways, with 8x8 images."""
    (root / "images").mkdir(parents=True)
    rows = []
    for c in range(copies):
        for d, (ptype, group, look, desc) in enumerate(DESIGNS):
            code = f"{100000 + 100 * c + d}"
            for k, colour in enumerate(COLOURS[: 2 + (c + d) % 2]):
                article = f"0{code}{k + 1:03d}"
                rows.append([article, code, f"{ptype} {c}", ptype, group, look, colour, desc])
                Image.new("RGB", (8, 8), (k * 60, 20, 20)).save(root / "images" / f"{article}.jpg")
    with open(root / "articles.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    return root


def _entries(out: Path, split: str) -> list[dict]:
    return [e for p in sorted((out / "captions").glob(f"cap.*.{split}.json"))
            for e in json.loads(p.read_text())]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data = write_hm(tmp_path_factory.mktemp("hm"))
    out = tmp_path_factory.mktemp("out")
    stats = hm.build_hm_triplets(hm.HMTripletsConfig(data=data, out=out))
    return data, out, stats


def test_parse_attributes_reads_description_and_columns():
    row = {"detail_desc": "Calf-length dress in velour with a deep V-neck and long, wide sleeves.",
           "product_group_name": "Garment Full body", "graphical_appearance_name": "Stripe",
           "colour_group_name": "Dark Blue"}
    assert hm.parse_attributes(row) == {"sleeve": "long sleeves", "neckline": "v-neck",
                                        "length": "calf-length", "material": "velour",
                                        "pattern": "striped", "colour": "dark blue"}
    lower = {"detail_desc": "Jeans with a high waist, zip fly and skinny legs, long sleeves.",
             "product_group_name": "Garment Lower body", "colour_group_name": "Other Blue"}
    assert hm.parse_attributes(lower) == {"waist": "high waist", "fit": "skinny"}


def test_only_garments_and_split_by_product_code(built):
    data, out, stats = built
    meta = {r["id"]: r for r in csv.DictReader(open(out / "metadata.csv", encoding="utf-8"))}
    assert meta and all(r["category"] in {"upper", "lower", "full"} for r in meta.values())
    sides = {}
    for split in hm.SPLITS:
        for p in (out / "image_splits").glob(f"split.*.{split}.json"):
            for i in json.loads(p.read_text()):
                sides.setdefault(i[1:7], set()).add(split)
    assert all(len(s) == 1 for s in sides.values()), "a product code is on both sides"
    assert {s for v in sides.values() for s in v} == {"train", "val"}


def test_colourway_and_attribute_rules(built):
    data, out, _ = built
    meta = {r["id"]: r for r in csv.DictReader(open(out / "metadata.csv", encoding="utf-8"))}
    kinds = set()
    for split in hm.SPLITS:
        for e in _entries(out, split):
            ref, tgt = meta[e["candidate"]], meta[e["target"]]
            kind, changed = e["tags"][0], e["tags"][1:]
            kinds.add(kind)
            assert len(e["captions"]) == 2 and e["captions"][0] != e["captions"][1]
            if kind == "colourway":
                assert e["candidate"][:7] == e["target"][:7] and ref["colour"] != tgt["colour"]
                assert all(tgt["colour"] in c for c in e["captions"])
            else:
                assert ref["product_type"] == tgt["product_type"]
                assert e["candidate"][:7] != e["target"][:7]
                assert 1 <= len(changed) <= 2 and changed != ["colour"]
                for a in hm.ATTRIBUTES:
                    if ref[a] and tgt[a]:
                        assert (ref[a] != tgt[a]) == (a in changed), (a, ref, tgt)
            if split == "val":
                assert e["target"] in e["relevant"]
            else:
                assert "relevant" not in e
    assert kinds == {"colourway", "attribute"}


def test_loader_reads_tags_and_relevant(built):
    data, out, _ = built
    val = load_fashioniq(out, data / "images", "val")
    assert val.triplets and all(t.tags and t.relevant for t in val.triplets)
    assert set(val.gallery) <= {"upper", "lower", "full"}


def test_deterministic_and_stats_table(built, tmp_path):
    data, out, stats = built
    again = tmp_path / "again"
    assert hm.build_hm_triplets(hm.HMTripletsConfig(data=data, out=again)) == stats
    for p in sorted(out.rglob("*.json")) + [out / "metadata.csv"]:
        q = again / p.relative_to(out)
        assert hashlib.sha256(p.read_bytes()).digest() == hashlib.sha256(q.read_bytes()).digest()
    table = hm.format_stats(stats)
    assert "| **colourway** (all) |" in table and "attribute change: sleeve" in table


@pytest.mark.slow
@pytest.mark.skipif(not (HM / "articles.csv").is_file(), reason="shared/data/hm is absent")
def test_real_hm_data(tmp_path):
    stats = hm.build_hm_triplets(hm.HMTripletsConfig(data=HM, out=tmp_path))
    for split in hm.SPLITS:
        kinds = stats["splits"][split]["kinds"]
        assert kinds["colourway"] > 500 and kinds["attribute"] > 1500
        assert stats["splits"][split]["attributes"]["attribute:sleeve"] > 100
