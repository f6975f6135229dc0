"""Feedback normalisation: what the model sees and what the page tells the shopper."""

from __future__ import annotations

import pytest

from app.feedback import MAX_FEEDBACK_CHARS, drop_clauses, normalize_feedback


def test_plain_feedback_passes_through_unchanged():
    fb = normalize_feedback("navy with long sleeves")
    assert fb.text == "navy with long sleeves"
    assert not fb.truncated and not fb.empty and fb.notes == []


@pytest.mark.parametrize("raw", [None, "", "   ", "\n\t \r\n", "\x00\x07"])
def test_empty_feedback_means_image_only_and_says_so(raw):
    fb = normalize_feedback(raw)
    assert fb.empty and fb.text == ""
    assert len(fb.notes) == 1 and "image alone" in fb.notes[0]


def test_whitespace_and_control_characters_are_collapsed():
    fb = normalize_feedback("  is  red\n\nand\tshorter\x00 ")
    assert fb.text == "is red and shorter"


def test_unicode_is_nfc_normalised():
    decomposed = "cafe\u0301 colour"  # e + combining acute
    assert normalize_feedback(decomposed).text == "caf\u00e9 colour"


def test_long_feedback_is_truncated_at_a_word_boundary_and_reported():
    raw = " ".join(["darker"] * 100)  # 699 characters
    fb = normalize_feedback(raw)
    assert fb.truncated
    assert len(fb.text) <= MAX_FEEDBACK_CHARS
    assert fb.text.split(" ") == ["darker"] * len(fb.text.split(" "))  # no half word
    assert fb.original_length == len(raw)
    assert str(len(raw)) in fb.notes[0] and str(MAX_FEEDBACK_CHARS) in fb.notes[0]


def test_a_single_huge_word_is_cut_hard_at_the_limit():
    fb = normalize_feedback("x" * 1000, max_chars=50)
    assert fb.text == "x" * 50 and fb.truncated


def test_feedback_exactly_at_the_limit_is_kept_whole():
    raw = "a" * MAX_FEEDBACK_CHARS
    fb = normalize_feedback(raw)
    assert fb.text == raw and not fb.truncated and fb.notes == []


def test_non_positive_limit_is_rejected():
    with pytest.raises(ValueError):
        normalize_feedback("red", max_chars=0)


@pytest.mark.parametrize("sentence, clauses, expected", [
    ("navy with long sleeves", ["navy"], "with long sleeves"),
    ("navy with long sleeves", ["with long sleeves"], "navy"),
    ("navy with long sleeves", ["long sleeves"], "navy"),  # no dangling "with"
    ("is red and has long sleeves", ["IS RED"], "has long sleeves"),
    ("is red, shorter and floral", ["is red", "floral"], "shorter"),
    ("black and white and shorter", ["black and white"], "shorter"),
    ("redder and shorter", ["red"], "redder and shorter"),  # whole words only
    ("navy", ["navy"], ""),
])
def test_drop_clauses_removes_a_chip_and_tidies_the_joins(sentence, clauses, expected):
    assert drop_clauses(sentence, clauses) == expected
