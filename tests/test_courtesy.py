"""Greetings, thanks and interjections taken out of a request (model.courtesy)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model.courtesy import asks_nothing, without_courtesy


@pytest.mark.parametrize("said, read", [
    ("hi, not in black please, thanks!", "not in black"),
    ("Good morning, could you find it in blue? Many thanks in advance.",
     "could you find it in blue?"),
    ("um make it navy thx", "make it navy"),
    ("hey there! with long sleeves", "with long sleeves"),
    ("is 2 sizes bigger, thanks", "is 2 sizes bigger"),
])
def test_parts_and_edge_words_that_ask_for_nothing_go(said, read):
    assert without_courtesy(said) == read
    assert without_courtesy(read) == read  # reading twice changes nothing more


@pytest.mark.parametrize("said", [
    "is darker please and shorter",  # a word inside a part stays: only its edges are read
    "love this, but not in black",  # praise is an open class: not listed, kept
    "is lighter  and  shorter",  # no courtesy: as typed, spacing included
    "make it cool, very light",  # a part with a request word is no courtesy
    "thanks",  # courtesy alone is read as typed, never emptied
    "right sleeve shorter",  # "right" goes only as a part of its own
])
def test_everything_else_stays_as_typed(said):
    assert without_courtesy(said) == said


def test_a_clause_of_courtesy_alone_asks_nothing():
    assert asks_nothing("hi!") and asks_nothing("Thank you") and asks_nothing("much appreciated")
    assert not asks_nothing("not in black please") and not asks_nothing("")
    assert not asks_nothing("size 2")


def test_the_query_encoders_read_the_request_without_it(tiny_retriever):
    image = Image.new("RGB", (96, 96), (30, 60, 200))
    polite = tiny_retriever.encode_query(image, "hi, not in black please, thanks!")
    np.testing.assert_array_equal(polite, tiny_retriever.encode_query(image, "not in black"))
    assert tiny_retriever.mend(["hi, is navy"]) == ["is navy"]
    tiny_retriever.drop_courtesy = False  # off: read as typed (bench.feedback_rows --unmended)
    try:
        assert tiny_retriever.mend(["hi, is navy"]) == ["hi, is navy"]
        assert not np.array_equal(
            tiny_retriever.encode_query(image, "hi, not in black please, thanks!"), polite)
    finally:
        tiny_retriever.drop_courtesy = True
