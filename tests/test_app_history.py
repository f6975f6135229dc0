"""The chain of turns: search, refine from a result, go back, undo, clicks and chips."""

from __future__ import annotations

import dataclasses

import pytest
from PIL import Image

from app.history import History, HistoryError, Reference, ResultItem, Turn


def ref(key: str, kind: str = "catalog") -> Reference:
    return Reference(kind=kind, key=key, label=key, image=Image.new("RGB", (4, 4)))


def turn(reference: Reference, feedback: str, ids: list[str]) -> Turn:
    results = [ResultItem(item_id=i, score=1.0 - n / 10, title=i, category="dress")
               for n, i in enumerate(ids)]
    return Turn(reference=reference, feedback=feedback, results=results, k=len(ids))


def test_a_fresh_reference_has_no_results_on_display():
    h = History()
    h.start(ref("upload:abc", "upload"))
    assert h.turns == [] and h.open_turn is None


def test_searching_again_from_the_same_reference_adds_a_turn_the_model_remembers():
    h = History()
    r0 = ref("upload:abc", "upload")
    h.start(r0)
    h.record(turn(r0, "red", ["a", "b"]))
    h.record(turn(r0, "navy", ["c", "d"]))
    assert [t.feedback for t in h.turns] == ["red", "navy"]
    assert h.turns[0].chosen is None and h.open_turn is h.turns[-1]
    steer = h.steer(False, new=True)
    assert [t.feedback for t in steer.earlier] == ["red", "navy"]


def test_refine_from_a_result_chains_turns():
    h = History()
    r0 = ref("upload:abc", "upload")
    h.start(r0)
    h.record(turn(r0, "navy", ["a", "b"]))
    h.refine_from("b", ref("b"))
    assert h.turns[0].chosen.item_id == "b"
    assert h.reference.key == "b" and h.open_turn is None
    h.record(turn(h.reference, "long sleeves", ["c", "d"]))
    assert [t.reference.key for t in h.turns] == ["upload:abc", "b"]
    assert [t.feedback for t in h.turns] == ["navy", "long sleeves"]
    assert h.open_turn is h.turns[1]


def test_refine_from_an_item_not_on_display_is_refused():
    h = History()
    r0 = ref("x")
    h.start(r0)
    with pytest.raises(HistoryError):
        h.refine_from("a", ref("a"))  # nothing searched yet
    h.record(turn(r0, "", ["a"]))
    with pytest.raises(HistoryError):
        h.refine_from("zzz", ref("zzz"))
    assert h.turns[0].chosen is None and h.reference.key == "x"


def test_go_back_restores_that_step_and_drops_later_ones():
    h = History()
    r0 = ref("upload:abc", "upload")
    h.start(r0)
    h.record(turn(r0, "navy", ["a", "b"]))
    h.refine_from("a", ref("a"))
    h.record(turn(h.reference, "shorter", ["c"]))
    h.refine_from("c", ref("c"))
    h.record(turn(h.reference, "with a pattern", ["d"]))
    assert len(h.turns) == 3

    back = h.go_back(0)
    assert back.feedback == "navy" and back.chosen is None
    assert len(h.turns) == 1 and h.reference.key == "upload:abc"
    assert h.open_turn is h.turns[0]  # its results are on display again
    h.refine_from("b", ref("b"))  # a different pick from the same step
    assert h.turns[0].chosen.item_id == "b"


def test_go_back_to_a_step_that_does_not_exist_is_refused():
    h = History()
    h.start(ref("x"))
    with pytest.raises(HistoryError):
        h.go_back(0)


def test_a_new_reference_starts_a_new_chain():
    h = History()
    r0 = ref("x")
    h.start(r0)
    h.record(turn(r0, "red", ["a"]))
    h.start(ref("upload:new", "upload"))
    assert h.turns == [] and h.reference.key == "upload:new"


def test_a_search_from_another_reference_than_the_current_one_is_refused():
    h = History()
    h.start(ref("x"))
    with pytest.raises(HistoryError):
        h.record(turn(ref("y"), "red", ["a"]))


def test_upload_key_depends_on_content_only():
    assert Reference.upload_key(b"abc") == Reference.upload_key(b"abc")
    assert Reference.upload_key(b"abc") != Reference.upload_key(b"abd")


def chain() -> History:
    """upload -> "navy" (pick b) -> "with long sleeves" on display."""
    h = History()
    h.start(ref("upload:abc", "upload"))
    h.record(turn(h.reference, "navy", ["a", "b"]))
    h.refine_from("b", ref("b"))
    h.record(turn(h.reference, "with long sleeves", ["c", "d"]))
    return h


def test_undo_takes_back_the_last_search_and_shows_the_step_before():
    h = chain()
    back = h.undo()
    assert back.feedback == "navy" and back.chosen is None
    assert h.open_turn is h.turns[0] and h.reference.key == "upload:abc"
    assert h.undo() is None  # the first search taken back: the chain is at its start
    assert h.turns == [] and h.reference.key == "upload:abc"
    with pytest.raises(HistoryError):
        h.undo()


def test_undo_after_a_pick_takes_back_the_pick():
    h = chain()
    h.refine_from("d", ref("d"))
    assert h.open_turn is None
    back = h.undo()
    assert back.feedback == "with long sleeves" and h.open_turn is h.turns[1]
    assert h.reference.key == "b" and len(h.turns) == 2


def test_clicks_toggle_and_replace_each_other_on_the_open_turn():
    h = chain()
    h.toggle_click("c", "like")
    assert h.open_turn.likes == ("c",)
    h.toggle_click("c", "dislike")  # the other click replaces it
    assert h.open_turn.likes == () and h.open_turn.dislikes == ("c",)
    h.toggle_click("c", "dislike")  # the same click again takes it back
    assert h.open_turn.dislikes == ()
    with pytest.raises(HistoryError):
        h.toggle_click("a", "like")  # not on display


def test_a_click_or_a_removed_chip_makes_the_results_on_display_stale():
    h = chain()
    basis = h.steer(False, new=False).basis(2, None)
    h.turns[-1] = dataclasses.replace(h.turns[-1], basis=basis)
    assert not h.is_stale(2, None, False)
    assert h.is_stale(3, None, False) and h.is_stale(2, "dress", False)
    assert h.is_stale(2, None, True)  # the "show items already seen" switch
    h.toggle_click("c", "like")
    assert h.is_stale(2, None, False)
    h.toggle_click("c", "like")  # taken back: the results on display fit again
    assert not h.is_stale(2, None, False)
    assert h.remove_words("navy") == 1  # an earlier turn's words
    assert h.turns[0].said == "" and h.is_stale(2, None, False)


def test_removing_words_drops_that_clause_from_every_turn_that_said_it():
    h = chain()
    h.record(turn(h.reference, "navy and shorter", ["e"]))
    assert h.remove_words("NAVY") == 2
    assert [t.said for t in h.turns] == ["", "with long sleeves", "shorter"]
    assert [t.feedback for t in h.turns][2] == "navy and shorter"  # what was typed is kept
    assert h.remove_words("floral") == 0


def test_removing_a_click_forgets_it_in_every_turn():
    h = chain()
    h.toggle_click("c", "like")
    h.record(turn(h.reference, "shorter", ["c", "e"]))
    h.toggle_click("c", "dislike")
    assert h.remove_click("c") == 2
    assert all(not t.likes and not t.dislikes for t in h.turns)
