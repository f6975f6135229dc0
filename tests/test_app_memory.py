"""What a chain remembers: the conversation, the clicks that count, items seen, and chips."""

from __future__ import annotations

from PIL import Image

from app.history import History, Reference, ResultItem, Turn
from app.memory import chips, clicks, conversation, shown


def ref(key: str, colour: str = "white") -> Reference:
    return Reference(kind="catalog", key=key, label=key, image=Image.new("RGB", (4, 4), colour))


def turn(reference: Reference, feedback: str, ids: list[str], **kw) -> Turn:
    results = [ResultItem(item_id=i, score=0.5, title=f"Title {i}", category="dress")
               for i in ids]
    return Turn(reference=reference, feedback=feedback, results=results, k=len(ids), **kw)


def test_the_conversation_pairs_each_turns_reference_with_what_still_applies():
    r0, r1, r2 = ref("r0", "red"), ref("r1", "blue"), ref("r2", "green")
    earlier = [turn(r0, "navy with long sleeves", ["a"], removed=("navy",)), turn(r1, "", ["b"])]
    pairs = conversation(earlier, r2, "shorter")
    assert [text for _, text in pairs] == ["with long sleeves", "", "shorter"]
    assert [image.getpixel((0, 0)) for image, _ in pairs] == [(255, 0, 0), (0, 0, 255),
                                                              (0, 128, 0)]


def test_an_items_last_click_counts():
    turns = [turn(ref("r"), "", ["a", "b"], likes=("a",), dislikes=("b",)),
             turn(ref("r"), "", ["a", "c"], likes=("b",), dislikes=("a", "c"))]
    assert clicks(turns) == (["b"], ["a", "c"])
    assert shown(turns) == {"a", "b", "c"}


def test_chips_are_clauses_of_the_sentences_then_the_clicks():
    h = History()
    h.start(ref("r0"))
    h.record(turn(h.reference, "is navy", ["a", "b"]))
    h.refine_from("b", ref("b"))
    h.record(turn(h.reference, "has long sleeves", ["c", "d"], likes=("c",)))
    found = chips(h.turns)
    words = [c.text for c in found if c.kind == "words"]
    assert words and all(any(w.lower() in t.said.lower() for t in h.turns) for w in words)
    assert "has long sleeves" in words
    assert [(c.kind, c.item_id, c.label) for c in found if c.kind != "words"] == [
        ("like", "c", "More like: Title c")]


def test_a_clause_that_asks_for_nothing_is_no_chip():
    h = History()
    h.start(ref("r0"))
    h.record(turn(h.reference, "hi, is navy, thank you", ["a"]))
    assert [c.text for c in chips(h.turns)] == ["is navy"]


def test_removing_a_chip_removes_it_from_the_chips():
    h = History()
    h.start(ref("r0"))
    h.record(turn(h.reference, "is navy with long sleeves", ["a"]))
    for chip in [c for c in chips(h.turns) if c.kind == "words"]:
        assert h.remove_words(chip.text) >= 1
        assert chip.text not in [c.text for c in chips(h.turns)]
    assert chips(h.turns) == []
