"""The chain of turns: search, refine from a result, go back to any step."""

from __future__ import annotations

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


def test_searching_again_from_the_same_reference_replaces_the_open_turn():
    h = History()
    r0 = ref("upload:abc", "upload")
    h.start(r0)
    h.record(turn(r0, "red", ["a", "b"]))
    h.record(turn(r0, "navy", ["c", "d"]))
    assert [t.feedback for t in h.turns] == ["navy"]
    assert h.open_turn is h.turns[-1]


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
