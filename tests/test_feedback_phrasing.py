"""The shared phrasing generator: held-out families and words never reach a training caption,
every family writes every kind of change, and the API refuses what it cannot write."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dataprep import hm_triplets, product_triplets
from dataprep.demo_catalog import captions as demo_captions
from dataprep.feedback import (
    HELDOUT_FAMILIES,
    HELDOUT_MARKERS,
    TRAIN_FAMILIES,
    Change,
    heldout_markers_in,
    join,
    phrase,
)
from dataprep.feedback import phrasing as ph

ROOT = Path(__file__).resolve().parents[1]
EXISTING_DATA = [ROOT / "data" / name for name in ("demo_catalog", "products", "hm",
                                                  "hm_feedback")]


def _strings(value) -> list[str]:
    """Every string inside a module constant (dicts, lists, tuples, nested)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in _strings(v)]
    return []


def _builder_templates() -> list[str]:
    """The caption templates of the existing builders (demo catalog, products, H&M)."""
    out = _strings([demo_captions._PHRASES, demo_captions._COMPARE,
                    demo_captions._PATTERN_WORDS, demo_captions._PATTERN_NOUNS,
                    product_triplets._COLOUR_TEMPLATES, product_triplets._PATTERN_PHRASES])
    for attribute, values in hm_triplets._PHRASES.items():
        for value in values:
            out += list(hm_triplets.phrases(attribute, value))
    for value in ("navy", "light pink"):
        out += list(hm_triplets.phrases("colour", value))
    return out


def _existing_train_captions() -> list[str]:
    out = []
    for root in EXISTING_DATA:
        for path in sorted((root / "captions").glob("cap.*.train.json")):
            out += [c for e in json.loads(path.read_text()) for c in e["captions"]]
    return out


@pytest.fixture(scope="module")
def train_captions() -> list[str]:
    return ph.sample_captions("train", 20000, seed=3) + [
        phrase(c, np.random.default_rng(i), "train", f.name)
        for i, c in enumerate(ph.example_changes()) for f in TRAIN_FAMILIES]


def test_families_are_disjoint_and_enough():
    train = {f.name for f in TRAIN_FAMILIES}
    heldout = {f.name for f in HELDOUT_FAMILIES}
    assert len(HELDOUT_FAMILIES) >= 8 and not train & heldout
    assert not {t for f in TRAIN_FAMILIES for t in f.templates} & {
        t for f in HELDOUT_FAMILIES for t in f.templates}


def test_every_heldout_template_and_synonym_carries_a_marker():
    for fam in HELDOUT_FAMILIES:
        assert fam.markers, fam.name
        for template in fam.templates:
            if template != "{J}":  # the swap family's words are its imperatives
                assert heldout_markers_in(template, fam.markers), (fam.name, template)
        for connector in fam.connectors:
            assert connector.strip() in ("and", ",", "") or heldout_markers_in(connector), \
                (fam.name, connector)
    lexicons = list(ph.RELATIVE.values()) + list(ph.NEGATION.values()) + list(
        ph.ABSOLUTE.values()) + list(ph.ABSOLUTE_VALUES.values())
    for lex in lexicons:
        for entry in lex["heldout"]:
            assert heldout_markers_in(entry.replace("{v}", "x")), entry
    for entry in _strings(list(ph._IMPERATIVE["heldout"].values())):
        assert heldout_markers_in(entry), entry


@pytest.mark.slow
def test_no_heldout_marker_in_any_training_caption(train_captions):
    captions = train_captions + _existing_train_captions() + _builder_templates()
    leaks = {}
    for text in set(captions):
        for marker in heldout_markers_in(text):
            leaks.setdefault(marker, text)
    assert not leaks, f"held-out words in training captions: {leaks}"


def test_train_lexicon_uses_no_heldout_word():
    lexicons = list(ph.RELATIVE.values()) + list(ph.NEGATION.values()) + list(
        ph.ABSOLUTE.values()) + list(ph.ABSOLUTE_VALUES.values())
    for lex in lexicons:
        for entry in lex["shared"] + lex["train"]:
            assert not heldout_markers_in(entry), entry
    for fam in TRAIN_FAMILIES:
        for text in fam.templates + fam.connectors:
            assert not heldout_markers_in(text), (fam.name, text)


def test_heldout_sentences_carry_their_family_marker():
    rng = np.random.default_rng(0)
    changes = ph.example_changes()
    for fam in HELDOUT_FAMILIES:
        for change in changes:
            text = phrase(change, rng, "heldout", fam.name)
            assert heldout_markers_in(text), (fam.name, text)


def test_every_family_writes_every_change_kind():
    rng = np.random.default_rng(1)
    for fam in TRAIN_FAMILIES + HELDOUT_FAMILIES:
        for change in ph.example_changes():
            text = phrase(change, rng, fam.split, fam.name)
            assert "{" not in text and text.strip() == text and text, (fam.name, change)


def test_join_names_every_change():
    rng = np.random.default_rng(2)
    navy = Change("colour", "absolute", "navy")
    shorter = Change("length", "relative", "shorter")
    no_sleeves = Change("sleeve", "negation", "sleeves")
    for split in ("train", "heldout"):
        for _ in range(50):
            text = join([navy, no_sleeves], rng, split)
            assert "navy" in text and "sleeve" in text or "bare arms" in text, text
    # the "version" family puts a comparative first: "a shorter version in navy"
    texts = {join([shorter, navy], np.random.default_rng(s), "train", "version")
             for s in range(30)}
    assert any(t.startswith("a shorter version") and "navy" in t for t in texts), texts


def test_seeded_and_deterministic():
    a = ph.sample_captions("heldout", 50, seed=7)
    assert a == ph.sample_captions("heldout", 50, seed=7)
    assert a != ph.sample_captions("heldout", 50, seed=8)


def test_refusals():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="one to four"):
        join([Change("colour", "absolute", "red")] * 5, rng, "train")
    with pytest.raises(ValueError, match="not a train phrasing family"):
        phrase(Change("colour", "absolute", "red"), rng, "train", "prefer")
    with pytest.raises(ValueError, match="no relative phrasing"):
        phrase(Change("colour", "relative", "bluer"), rng, "train")
    with pytest.raises(ValueError, match="split"):
        phrase(Change("colour", "absolute", "red"), rng, "val")
    with pytest.raises(ValueError, match="kind"):
        Change("colour", "opposite", "red")


def test_marker_matching_is_by_whole_word():
    assert heldout_markers_in("also") == ["also"]
    assert "so" not in heldout_markers_in("also")
    assert heldout_markers_in("make it navy-toned") == ["-toned"]
    assert not heldout_markers_in("make it lighter and shorter")
    assert set(HELDOUT_MARKERS) >= {"paler", "deeper", "minus"}
