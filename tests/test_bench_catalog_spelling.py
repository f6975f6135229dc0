"""bench.catalog_spelling: what the mender does to a shop's own words."""

from __future__ import annotations

from bench.catalog_spelling import measure
from model.spelling import SpellingCorrector


def test_a_shops_words_are_counted_kept_and_mended_back():
    mender = SpellingCorrector({"black": 3, "sleeves": 2}, frozenset(), {"hands": 9, "mini": 5})
    row = measure(mender, ["Hanes Black Tee", "Gini sleeves"], ["is black, long sleeves"],
                  ["black", "sleeves"], seed=0)
    assert (row["words"], row["shop_words"]) == (4, 1)  # "tee" is short; "hanes" the only 5+
    assert row["without"]["kept"] == 50.0 and row["with"]["kept"] == 100.0  # hands, mini
    assert row["without"]["shop_words_mended_back"] == 0.0
    assert row["with"]["shop_words_mended_back"] == 100.0
    assert row["without"]["caption_words_mended_back"] == 100.0
    assert row["with"]["caption_words_mended_back"] == 100.0
    assert row["without"]["captions_changed"] == row["with"]["captions_changed"] == 0
