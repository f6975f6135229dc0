"""How a caption is retyped for bench.feedback_rows --retype."""

from __future__ import annotations

import re

import pytest

from bench.retyping import (
    CLOSINGS,
    MIN_TYPO_LENGTH,
    OPENINGS,
    RETYPINGS,
    retyping,
    with_typos,
)

CAPTION = "Similar, only darker and without sleeves; in a checked design, please"


def _one_edit_apart(typed: str, word: str) -> bool:
    """Two neighbouring letters swapped or one dropped, first and last letters kept."""
    if typed[0] != word[0] or typed[-1] != word[-1]:
        return False
    if len(typed) == len(word) - 1:
        return any(word[:k] + word[k + 1:] == typed for k in range(1, len(word) - 1))
    diff = [k for k, (a, b) in enumerate(zip(typed, word, strict=True)) if a != b]
    return (len(diff) == 2 and diff[1] == diff[0] + 1
            and typed[diff[0]] == word[diff[1]] and typed[diff[1]] == word[diff[0]])


def test_typos_are_one_edit_of_a_long_word_and_the_same_every_time():
    words = re.findall(r"[A-Za-z]+", CAPTION)
    typed = re.findall(r"[A-Za-z]+", with_typos(CAPTION, rate=1.0))
    assert len(typed) == len(words)
    for t, w in zip(typed, words, strict=True):
        if len(w) < MIN_TYPO_LENGTH:
            assert t == w
        elif t == w:  # a swap of two equal neighbours ("sleeves") does not show
            assert re.search(r"([a-z])\1", w[1:-1]), w
        else:
            assert _one_edit_apart(t, w), (t, w)
    assert with_typos(CAPTION, 1.0) == with_typos(CAPTION, 1.0)
    assert with_typos(CAPTION, 1.0, seed=1) != with_typos(CAPTION, 1.0)
    assert with_typos(CAPTION, 0.0) == CAPTION
    assert with_typos(CAPTION, 1.0).count(",") == CAPTION.count(",")  # only letters move


def test_typo_rate_is_the_share_of_long_words_mistyped():
    captions = [f"{CAPTION} number {k}" for k in range(400)]
    long_words = sum(len(w) >= MIN_TYPO_LENGTH for c in captions
                     for w in re.findall(r"[A-Za-z]+", c))
    changed = sum(a != b for c in captions
                  for a, b in zip(re.findall(r"[A-Za-z]+", with_typos(c, 0.3)),
                                  re.findall(r"[A-Za-z]+", c), strict=True))
    assert 0.25 < changed / long_words < 0.35


def test_chatty_wraps_the_request_in_words_that_ask_for_nothing():
    said = retyping("chatty")(CAPTION)
    assert CAPTION in said and said != CAPTION and said == retyping("chatty")(CAPTION)
    opening, closing = said.split(CAPTION)
    assert opening in OPENINGS and closing in CLOSINGS
    wrapped = {retyping("chatty")(f"is red {k}") for k in range(200)}
    assert len({w.split("is red")[0] for w in wrapped}) > 8  # seeded per caption, varied


def test_punctuation_left_out():
    assert retyping("no-punctuation")(CAPTION) == (
        "similar only darker and without sleeves in a checked design please")
    assert retyping("typos")(CAPTION) == with_typos(CAPTION, 0.3)
    assert set(RETYPINGS) == {"no-punctuation", "typos", "chatty", "american"}
    assert retyping("american")("Grey, not colourful") == "gray, not colorful"
    with pytest.raises(ValueError, match="unknown retyping"):
        retyping("capitals")  # the eval caption is lower-cased, the text model uncased
