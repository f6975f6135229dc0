"""FashionIQ reader: both layouts, missing/corrupt images, caption combination."""

from __future__ import annotations

import json
import logging
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataprep import Triplet, dataset_paths, eval_caption, load_fashioniq, train_caption


def _write_image(path: Path, color=(10, 120, 200)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path)


def _dump(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def official(tmp_path: Path) -> tuple[Path, Path]:
    """Annotations and images in separate folders; d4 missing, d5 corrupt, s2 is a .png."""
    ann, img = tmp_path / "ann", tmp_path / "imgs"
    for i in ("d1", "d2", "d3", "s1", "s3"):
        _write_image(img / f"{i}.jpg")
    _write_image(img / "s2.png")
    (img / "d5.jpg").write_bytes(b"this is not a jpeg")
    (img / "notes.txt").write_text("ignored")
    _dump(
        ann / "captions/cap.dress.val.json",
        [
            {"candidate": "d1", "target": "d2", "captions": ["is red.", "has long sleeves"]},
            {"candidate": "d2", "target": "d4", "captions": ["is blue", "shorter"]},
            {"candidate": "d5", "target": "d1", "captions": ["is green", "is plain"]},
            {
                "candidate": "d3",
                "target": "d1",
                "captions": ["is black", "has dots"],
                "relevant": ["d1", "d4"],
            },
        ],
    )
    _dump(ann / "image_splits/split.dress.val.json", ["d1", "d2", "d3", "d4", "d5"])
    _dump(
        ann / "captions/cap.shirt.val.json",
        [{"candidate": "s1", "target": "s2", "captions": ["is striped", "is navy"]}],
    )
    _dump(ann / "image_splits/split.shirt.val.json", ["s1", "s2", "s3"])
    _dump(
        ann / "captions/cap.shirt.train.json",
        [{"candidate": "s3", "target": "s1", "captions": ["a", "b"]}],
    )
    return ann, img


def test_official_layout_reads_triplets_and_galleries(official, caplog) -> None:
    ann, img = official
    with caplog.at_level(logging.WARNING, logger="dataprep.fashioniq"):
        ds = load_fashioniq(ann, img, "val")
    assert sorted(ds.gallery) == ["dress", "shirt"]
    assert ds.gallery["dress"] == ["d1", "d2", "d3"]
    assert ds.gallery["shirt"] == ["s1", "s2", "s3"]
    assert ds.triplets == [
        Triplet("d1", "d2", ["is red.", "has long sleeves"], "dress", None),
        Triplet("d3", "d1", ["is black", "has dots"], "dress", ["d1"]),
        Triplet("s1", "s2", ["is striped", "is navy"], "shirt", None),
    ]
    assert ds.image_paths["s2"].name == "s2.png"
    assert ds.image_paths["d1"].parent == img
    assert ds.missing == {"d4", "d5"}
    assert ds.unreadable == {"d5"}
    assert ds.skipped_triplets == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "2 of 8 images" in message and "d4" in message and "skipped 2 of 5" in message


def test_official_layout_category_selection(official) -> None:
    ann, img = official
    ds = load_fashioniq(ann, img, "val", categories=["shirt"])
    assert list(ds.gallery) == ["shirt"]
    assert [t.category for t in ds.triplets] == ["shirt"]
    train = load_fashioniq(ann, img, "train")
    assert [(t.candidate, t.target) for t in train.triplets] == [("s3", "s1")]
    with pytest.raises(FileNotFoundError, match="cap.dress.train.json"):
        load_fashioniq(ann, img, "train", categories=["dress"])


def test_no_warning_when_everything_is_present(official, caplog) -> None:
    ann, img = official
    with caplog.at_level(logging.WARNING, logger="dataprep.fashioniq"):
        ds = load_fashioniq(ann, img, "val", categories=["shirt"])
    assert not ds.missing
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def test_decode_check_catches_truncated_image(tmp_path: Path) -> None:
    img = tmp_path / "images"
    _write_image(img / "a.jpg")
    noise = Image.effect_noise((64, 64), 60).convert("RGB")
    noise.save(img / "b.png")
    data = (img / "b.png").read_bytes()
    (img / "b.png").write_bytes(data[: len(data) // 2])
    _dump(tmp_path / "val.json", [{"candidate": "a", "target": "b", "captions": ["x", "y"]}])
    assert load_fashioniq(tmp_path, img, "val", check="header").missing == set()
    ds = load_fashioniq(tmp_path, img, "val", check="decode")
    assert ds.missing == {"b"} and ds.triplets == []


def test_flat_layout(tmp_path: Path, caplog) -> None:
    img = tmp_path / "images"
    for i in ("a", "b", "c", "e"):
        _write_image(img / f"{i}.jpg")
    (img / "f.jpg").write_bytes(b"")  # zero-byte file counts as unreadable
    _dump(
        tmp_path / "val.json",
        [
            {"candidate": "a", "target": "b", "captions": ["is red", "red"]},
            {"candidate": "b", "target": "c", "captions": ["x", "y"], "category": "shirt"},
            {"candidate": "c", "target": "d", "captions": ["x", "y"]},  # d missing
            {"candidate": "f", "target": "e", "captions": ["x", "y"]},  # f empty
            {"candidate": "e", "target": "a", "captions": ["x", "y"], "relevant": ["a", "d"]},
        ],
    )
    with caplog.at_level(logging.WARNING, logger="dataprep.fashioniq"):
        ds = load_fashioniq(tmp_path, img, "val")
    assert [(t.candidate, t.target, t.category) for t in ds.triplets] == [
        ("a", "b", "all"),
        ("b", "c", "shirt"),
        ("e", "a", "all"),
    ]
    assert ds.triplets[-1].relevant == ["a"]
    assert ds.gallery == {"all": ["a", "b", "c", "e"], "shirt": ["b", "c"]}
    assert ds.missing == {"d", "f"}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    only_shirt = load_fashioniq(tmp_path / "val.json", img, "val", categories=["shirt"])
    assert [(t.candidate, t.target) for t in only_shirt.triplets] == [("b", "c")]


def test_absent_annotations_give_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(FileNotFoundError, match="val.json"):
        load_fashioniq(tmp_path, tmp_path / "images", "val")
    _dump(tmp_path / "val.json", [])
    with pytest.raises(FileNotFoundError, match="image folder"):
        load_fashioniq(tmp_path, tmp_path / "nowhere", "val")


def test_eval_caption_matches_clip4cir_formula() -> None:
    assert eval_caption(["is red.", "has long sleeves?"]) == "Is red and has long sleeves"
    assert eval_caption([" IS Navy, ", "shorter."]) == "Is navy and shorter"
    assert eval_caption(["only one."]) == "Only one"
    c1, c2 = "is darker, and sleeveless.", "more formal?"
    assert eval_caption([c1, c2]) == c1.strip(".?, ").capitalize() + " and " + c2.strip(".?, ")


def test_train_caption_draws_all_four_forms() -> None:
    captions = ["is red.", "has stripes"]
    rng = random.Random(0)
    seen = Counter(train_caption(captions, rng) for _ in range(4000))
    assert set(seen) == {
        "Is red and has stripes",
        "Has stripes and is red",
        "Is red",
        "Has stripes",
    }
    assert min(seen.values()) > 800  # roughly uniform
    gen = np.random.default_rng(0)
    assert train_caption(captions, gen) in seen
    assert train_caption(["just this."], rng) == "Just this"
    with pytest.raises(ValueError):
        eval_caption([])


def test_a_dataset_named_on_a_command_line() -> None:
    assert dataset_paths("data/hm:../shared/data/hm/images") == (
        Path("data/hm"), Path("../shared/data/hm/images"))
    assert dataset_paths("data/demo") == (Path("data/demo"), Path("data/demo/images"))
