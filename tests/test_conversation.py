"""Conversation memory: which earlier requests still apply, and encode_conversation.

The slot classifier is the real one (lexicon, then frozen all-MiniLM-L6-v2 for clauses the
lexicon does not know); the retriever is the tiny random one of tests/conftest.py.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

from model.conversation import (
    OTHER,
    TargetMemo,
    away_from,
    conversation_text,
    is_relative,
    lexicon_slot,
    parse_turns,
    remembered,
    split_clauses,
)
from tests.tiny_dataset import draw


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    return [draw(c, s) for c, s in (("red", "square"), ("blue", "circle"), ("green", "triangle"),
                                    ("black", "square"), ("yellow", "circle"))]


def test_one_turn_is_encode_query(tiny_retriever, images):
    for text in ("is red", "in navy, with long sleeves and shorter", "please", ""):
        got = tiny_retriever.encode_conversation([(images[0], text)])
        assert got.dtype == np.float32 and got.shape == (tiny_retriever.dim,)
        np.testing.assert_allclose(got, tiny_retriever.encode_query(images[0], text), atol=1e-6)


def test_later_sentence_overrides_earlier_one_about_the_same_thing(tiny_retriever, images):
    turns = [(images[0], "is red"), (images[1], "is blue")]
    assert remembered(turns) == ["is blue"]
    assert conversation_text(turns) == "is blue"
    np.testing.assert_allclose(tiny_retriever.encode_conversation(turns, avoid_earlier=False),
                               tiny_retriever.encode_query(images[1], "is blue"), atol=1e-6)


def test_absolute_request_persists_across_a_relative_turn(tiny_retriever, images):
    turns = [(images[0], "is navy"), (images[1], "shorter")]
    assert remembered(turns) == ["is navy", "shorter"]
    assert conversation_text(turns) == "shorter and is navy"
    turns.append((images[2], "with long sleeves"))
    assert remembered(turns) == ["is navy", "with long sleeves"]
    # the last image with the remembered words (the earlier images only push away: below)
    np.testing.assert_allclose(
        tiny_retriever.encode_conversation(turns, avoid_earlier=False),
        tiny_retriever.encode_query(images[2], "with long sleeves and is navy"), atol=1e-6)


def test_the_query_moves_away_from_the_garments_moved_on_from(tiny_retriever):
    first, second = draw("red", "square"), draw("blue", "circle")  # objects no call has seen
    turns = [(first, "is navy"), (second, "shorter")]
    words = tiny_retriever.encode_conversation(turns, avoid_earlier=False)
    moved = tiny_retriever.encode_conversation(turns)
    left = tiny_retriever.encode_targets([first])[0]
    np.testing.assert_allclose(moved, away_from(words, left[None]), atol=1e-5)
    assert moved @ left < words @ left - 1e-3
    assert moved.dtype == np.float32 and np.linalg.norm(moved) == pytest.approx(1.0, abs=1e-5)
    # a reference the shopper said two sentences to counts once; the current one not at all
    stayed = tiny_retriever.encode_conversation([(first, "is navy"), (first, "with a hood"),
                                                 (second, "shorter")])
    np.testing.assert_allclose(stayed, away_from(tiny_retriever.encode_conversation(
        [(first, "is navy"), (first, "with a hood"), (second, "shorter")], avoid_earlier=False),
        left[None]), atol=1e-5)


def test_earlier_references_are_not_encoded_again(tiny_retriever, monkeypatch):
    images = [draw(c, "square") for c in ("red", "green", "yellow", "black")]
    turns = [(im, "in red") for im in images]
    backbone_batches = []
    grid = tiny_retriever.engine.grid
    monkeypatch.setattr(tiny_retriever.engine, "grid",
                        lambda x: backbone_batches.append(len(x)) or grid(x))
    for t in range(1, 4):  # as the app: each turn encoded when it is said
        tiny_retriever.encode_conversation(turns[:t])
    assert backbone_batches == [1, 1, 1]
    tiny_retriever.targets_seen.clear()  # a session restored after a restart
    tiny_retriever.encode_conversation(turns)
    assert backbone_batches[3:] == [1, 3]  # the current image, then the three earlier at once


def test_the_target_memo_is_by_identity_bounded_and_keeps_nothing_alive():
    memo, red = TargetMemo(size=2), draw("red", "square")
    memo.put(red, np.ones(3, np.float32))
    assert memo.get(red) is not None and memo.get(red.copy()) is None
    others = [draw(c, "circle") for c in ("blue", "green")]
    for im in others:
        memo.put(im, np.zeros(3, np.float32))
    assert memo.get(red) is None and all(memo.get(im) is not None for im in others)
    alive = weakref.ref(others[0])
    del others[0]
    gc.collect()
    assert alive() is None  # the memo did not keep the image


def test_relative_requests_are_not_compounded():
    assert conversation_text(["shorter", "shorter"]) == "shorter"
    assert conversation_text(["a bit darker", "shorter", "with a hood"]) == "with a hood"
    # a relative request overrides an earlier absolute one about the same slot, then goes
    assert remembered(["is knee-length", "shorter"]) == ["shorter"]
    assert remembered(["is knee-length", "shorter", "in red"]) == ["in red"]


def test_removed_requests_are_dropped(tiny_retriever, images):
    turns = [(images[0], "is navy"), (images[1], "has long sleeves"), (images[2], "striped")]
    assert remembered(turns) == ["is navy", "has long sleeves", "striped"]
    assert remembered(turns, removed=["Is navy."]) == ["has long sleeves", "striped"]
    assert conversation_text(turns, removed=["is navy"]) == "striped and has long sleeves"
    # removing part of the current sentence keeps its other clauses
    assert conversation_text([(images[0], "in red and with a hood")], removed=["with a hood"]
                             ) == "in red"
    np.testing.assert_allclose(
        tiny_retriever.encode_conversation(turns, removed=["has long sleeves"],
                                           avoid_earlier=False),
        tiny_retriever.encode_query(images[2], "striped and is navy"), atol=1e-6)


def test_said_again_is_remembered_once():
    assert conversation_text(["is navy", "with a hood", "is navy"]) == "is navy and with a hood"


def test_unknown_clauses_apply_to_their_own_turn_only():
    assert remembered(["something similar", "is red"]) == ["is red"]
    assert conversation_text(["similar, only in red", "with a hood"]) == (
        "with a hood and only in red")


def test_slot_of_an_unlisted_phrasing_comes_from_the_embedding():
    assert lexicon_slot("no arms") is None  # no keyword: the text model decides
    assert [c.slot for c in parse_turns(["no arms"])[0]] == ["sleeve"]
    assert remembered(["with long sleeves", "no arms"]) == ["no arms"]


def test_clauses_and_kinds():
    assert split_clauses("in navy, with long sleeves and shorter") == [
        "in navy", "with long sleeves", "shorter"]
    assert split_clauses("is black and white, please") == ["is black and white"]
    assert split_clauses("I'd prefer it paler plus sans hood") == [
        "I'd prefer it paler", "sans hood"]
    assert [is_relative(c) for c in ("lighter", "a bit baggier", "more fitted", "not as long",
                                     "I'd prefer it in navy", "would be better in red",
                                     "a sweater", "with three-quarter sleeves")] == [
        True, True, True, True, False, False, False, False]
    assert lexicon_slot("with long sleeves") == "sleeve" and lexicon_slot("is long") == "length"
    assert lexicon_slot("a hoodie") == "type" and lexicon_slot("a thing") is None
    assert [c.slot for c in parse_turns(["make it"])[0]] == [OTHER]


def test_no_turns_is_an_error(tiny_retriever):
    with pytest.raises(ValueError, match="at least one turn"):
        tiny_retriever.encode_conversation([])
