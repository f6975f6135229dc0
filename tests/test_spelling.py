"""Typos mended before the text model reads a query (model.spelling)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from model import load_retriever
from model.checkpoint import CheckpointError
from model.fashion_words import FASHION_WORDS
from model.spelling import (
    META_KEY,
    SpellingCorrector,
    caption_words,
    catalog_words,
    corrector_for,
    english_words,
    one_edit_away,
    write_caption_words,
)

ENGLISH = {"water": 900, "sweater": 40, "black": 500, "sleeves": 60, "goodie": 30, "lighter": 80}
CAPTIONS = {"sweater": 12, "black": 30, "hoodie": 5, "sleeves": 8}


@pytest.fixture
def corrector() -> SpellingCorrector:
    return SpellingCorrector(CAPTIONS, frozenset({"make", "the", "darker"}), ENGLISH)


def test_a_known_word_is_never_changed(corrector):
    text = "Make the hoodie Darker, lighter and black"
    assert corrector(text) == text  # captions' words, English, the vocabulary, any case


def test_a_typo_becomes_the_known_word_one_edit_away(corrector):
    assert corrector("a blak one without slevees") == "a black one without sleeves"
    # the training captions' word wins over a commoner English one at the same distance
    assert corrector("as a swater") == "as a sweater"
    # a garment word the captions know is not "corrected" into English
    assert corrector("hoodei") == "hoodie"


def test_garment_words_no_english_list_knows_are_kept_and_mended_to(corrector):
    english = {"short": 900, "filet": 50, "shirt": 700}
    mender = SpellingCorrector({}, frozenset(), english)
    assert mender("a skort or a gilet, a tshirt") == "a skort or a gilet, a tshirt"
    assert mender("a gliet") == "a gilet"  # model.fashion_words are known words
    assert {"skort", "gilet", "tshirt", "pyjama", "colour"} <= FASHION_WORDS


def test_what_cannot_be_mended_stays_as_typed(corrector):
    assert corrector("qzxwv and kurta") == "qzxwv and kurta"  # nothing known one edit away
    assert corrector("blk") == "blk"  # shorter than MIN_LENGTH: too little to go on
    assert corrector("no-punctuation, 42 cm!") == "no-punctuation, 42 cm!"


def test_the_catalogs_words_are_kept_and_mended_to(corrector):
    english = {"hands": 900, "mini": 300, "basics": 200}
    plain = SpellingCorrector({"black": 30}, frozenset(), english)
    assert plain("hanes or gini") == "hands or mini"  # a shop's brands, mended into others
    shop = plain.with_catalog(catalog_words(["Gini & Jony Girls Dress", "Hanes", "Asics"]))
    assert shop("hanes or gini, asics") == "hanes or gini, asics"
    assert shop("hnaes, blakc") == "hanes, black"  # a typo of a catalog word becomes it
    assert plain.catalog == frozenset() and shop.caption_words == plain.caption_words
    # a catalog word one edit from a caption word is taken for the catalog's own slip
    assert plain.with_catalog({"blakc", "hanes"})("blakc hanes") == "black hanes"
    # and the captions' word wins over a catalog word at the same distance
    assert plain.with_catalog({"blake"})("blakc blake") == "black blake"
    assert catalog_words(["Vero Moda 42 kurta", "A-line kurta"]) == {
        "kurta": 2, "vero": 1, "moda": 1, "line": 1}


def test_a_word_of_another_alphabet_is_one_word_and_left_as_typed(corrector):
    assert corrector("a piqué collar, broderie anglaise") == "a piqué collar, broderie anglaise"
    assert corrector("appliqué slevees") == "appliqué sleeves"
    assert caption_words(["Appliqué détails"]) == {"appliqué": 1, "détails": 1}


def test_one_edit_away_covers_the_four_slips():
    edits = one_edit_away("blak")
    assert {"bla", "balk", "black", "blank", "blok"} <= edits and "blakk" in edits


def test_english_list_comes_from_the_package():
    words = english_words()
    assert words["sweater"] > 0 and words["black"] > words["sweater"] and "blak" not in words


def test_caption_words_are_counted_lower_case():
    assert caption_words(["Make it Black", "make it red"]) == {
        "make": 2, "it": 2, "black": 1, "red": 1}


def test_caption_words_need_a_checkpoint_to_go_to(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*expected config.json"):
        write_caption_words(tmp_path / "missing", [])


def test_without_caption_words_a_checkpoint_reads_words_as_typed(tiny_retriever):
    assert corrector_for({}, tiny_retriever.tokenizer) is None
    mender = corrector_for({META_KEY: {"sleeves": 3}}, tiny_retriever.tokenizer)
    assert mender("slevees") == "sleeves" and "the" in mender.vocabulary


@pytest.mark.slow
def test_a_checkpoint_with_caption_words_mends_its_queries(tiny_checkpoint, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoint, ckpt)
    data = tmp_path / "data"
    (data / "captions").mkdir(parents=True)
    (data / "image_splits").mkdir()
    (data / "images").mkdir()
    for k in range(2):
        Image.new("RGB", (64, 64), (40 * k, 80, 120)).save(data / "images" / f"i{k}.jpg")
    (data / "image_splits" / "split.dress.train.json").write_text(json.dumps(["i0", "i1"]))
    (data / "captions" / "cap.dress.train.json").write_text(json.dumps([
        {"candidate": "i0", "target": "i1", "captions": ["is black", "has long sleeves"]}]))
    before = json.loads((ckpt / "config.json").read_text())
    words = write_caption_words(ckpt, [str(data)])
    after = json.loads((ckpt / "config.json").read_text())
    assert words == {"is": 1, "black": 1, "has": 1, "long": 1, "sleeves": 1}
    assert after["meta"][META_KEY] == words
    assert after["fingerprint"] == before["fingerprint"] and after["model"] == before["model"]

    retriever = load_retriever(ckpt, engine="eager")
    image = Image.new("RGB", (96, 96), (200, 30, 30))
    typed = retriever.encode_query(image, "is blakc with long slevees")
    right = retriever.encode_query(image, "is black with long sleeves")
    np.testing.assert_array_equal(typed, right)
    assert retriever.mend(["is blakc"]) == ["is black"]
    turns = [(image, "is blakc"), (image, "with long slevees")]
    np.testing.assert_array_equal(
        retriever.encode_conversation(turns),
        retriever.encode_conversation([(image, "is black"), (image, "with long sleeves")]))
    shop = frozenset({"hanes"})
    retriever.use_catalog_words(shop)
    mender = retriever.spelling
    retriever.use_catalog_words(shop)  # the same words again: nothing rebuilt
    assert retriever.spelling is mender and retriever.mend(["hnaes blakc"]) == ["hanes black"]
    retriever.spelling = None  # the mender off: the typo is read as typed
    assert not np.array_equal(retriever.encode_query(image, "is blakc with long slevees"), typed)
