"""Catalog discovery: metadata CSVs (demo and products.csv layouts), FashionIQ split files,
category filters and stable shards."""

from __future__ import annotations

import json

import pytest

from indexer import DEFAULT_CATEGORY, discover, parse_shard, shard_of


def touch_images(folder, ids):
    folder.mkdir(parents=True, exist_ok=True)
    for i in ids:
        (folder / f"{i}.jpg").write_bytes(b"x")


def test_products_csv_maps_category_from_type_or_a_chosen_column(tmp_path):
    touch_images(tmp_path / "images", ["1", "2"])
    csv = tmp_path / "products.csv"
    csv.write_text("id,gender,type,color,pattern,title\n"
                   "1,men,shirt,navy blue,checked,Navy Shirt\n2,women,dress,red,,Red Dress\n")
    items = {it.id: it for it in discover(tmp_path / "images", [csv]).items}
    assert items["1"].category == "shirt" and items["1"].title == "Navy Shirt"
    assert items["1"].attributes == {"gender": "men", "color": "navy blue", "pattern": "checked"}
    assert items["2"].attributes == {"gender": "women", "color": "red"}
    by_gender = discover(tmp_path / "images", [csv], category_column="gender").items
    assert {it.category for it in by_gender} == {"men", "women"}
    with pytest.raises(ValueError, match="--category-column 'fit'"):
        discover(tmp_path / "images", [csv], category_column="fit")


def test_fashioniq_split_files_give_the_category_and_report_missing_images(tmp_path):
    touch_images(tmp_path / "images", ["B001", "B002", "B003"])
    splits = tmp_path / "image_splits"
    splits.mkdir()
    (splits / "split.dress.val.json").write_text(json.dumps(["B001", "B002"]))
    (splits / "split.shirt.val.json").write_text(json.dumps(["B003", "B404"]))
    cat = discover(tmp_path / "images", [splits])
    assert {it.id: it.category for it in cat.items} == {"B001": "dress", "B002": "dress",
                                                         "B003": "shirt"}
    assert [p[0] for p in cat.problems] == ["B404"]
    only = discover(tmp_path / "images", [splits / "split.shirt.val.json"], category="shirt")
    assert [it.id for it in only.items] == ["B003"]


def test_without_metadata_every_image_is_an_item(tmp_path):
    touch_images(tmp_path / "imgs" / "sub", ["a", "b"])
    (tmp_path / "imgs" / "notes.txt").write_text("x")
    cat = discover(tmp_path / "imgs")
    assert sorted(it.id for it in cat.items) == ["a", "b"] and cat.ignored_files == 1
    assert {it.category for it in cat.items} == {DEFAULT_CATEGORY}
    assert {it.category for it in discover(tmp_path / "imgs", category="dress").items} == {
        "dress"}


def test_demo_layout_finds_metadata_beside_the_images_folder(tmp_path):
    touch_images(tmp_path / "images", ["x1"])
    (tmp_path / "metadata.csv").write_text("id,category,title,colour\nx1,toptee,Top,red\n")
    for folder in (tmp_path, tmp_path / "images"):
        (item,) = discover(folder).items
        assert (item.category, item.attributes) == ("toptee", {"colour": "red"})


def test_shards_partition_the_catalog_stably(tmp_path):
    ids = [f"id{i}" for i in range(200)]
    touch_images(tmp_path, ids)
    parts = [{it.id for it in discover(tmp_path, shard=(i, 3)).items} for i in range(3)]
    assert set().union(*parts) == set(ids) and sum(map(len, parts)) == 200
    assert all(len(p) > 40 for p in parts)
    assert shard_of("id7", 3) == shard_of("id7", 3) == 2  # fixed across runs and machines


@pytest.mark.parametrize("bad", ["3/3", "1", "a/b", "-1/2"])
def test_bad_shard_spec_is_refused(bad):
    with pytest.raises(ValueError, match="--shard"):
        parse_shard(bad)
    assert parse_shard("1/4") == (1, 4)
