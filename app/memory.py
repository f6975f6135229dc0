"""What a chain of turns remembers, as the search and the page need it.

From the turns of a chain (app.history): the conversation handed to the model (reference image
and sentence of every turn, oldest first), the clicks that still count, the items already shown
and passed over, the catalog references the shopper moved on from, and the chips the page shows
("navy", "with long sleeves", "More like: Red dress"), each of which the shopper can remove.
Plain functions, no Streamlit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from PIL import Image

from app.history import Reference, Turn
from model.conversation import remembered as model_remembered

ConversationTurn = tuple[Image.Image, str]


def conversation(earlier: Sequence[Turn], reference: Reference, sentence: str
                 ) -> list[ConversationTurn]:
    """The (reference image, sentence) pairs of a search, oldest first; the last pair is the
    current reference and sentence. Sentences are as they still apply (chips removed)."""
    return [*((t.reference.image, t.said) for t in earlier), (reference.image, sentence)]


def clicks(turns: Sequence[Turn]) -> tuple[list[str], list[str]]:
    """(liked, disliked) item ids over ``turns``, in click order; an item's last click counts."""
    state: dict[str, str] = {}
    for turn in turns:
        for kind, ids in (("like", turn.likes), ("dislike", turn.dislikes)):
            for item_id in ids:
                state.pop(item_id, None)
                state[item_id] = kind
    return ([i for i, k in state.items() if k == "like"],
            [i for i, k in state.items() if k == "dislike"])


def shown(turns: Sequence[Turn]) -> set[str]:
    """Every item the results of ``turns`` showed."""
    return {r.item_id for t in turns for r in t.results}


def moved_on_from(turns: Sequence[Turn]) -> set[str]:
    """The catalog items that were the reference of one of ``turns``: each was asked to change,
    so none of them is what the shopper wants, and the search leaves them out (the current
    reference would otherwise rank first under weak feedback, and an earlier one come back)."""
    return {t.reference.key for t in turns if t.reference.kind == "catalog"}


def remembered(turns: Sequence[ConversationTurn]) -> list[str]:
    """The requests that still apply at the last turn, oldest first, as the model reads them
    (``model.conversation.remembered``: clauses of the sentences; an earlier one is dropped once
    a later one about the same thing overrides it, a relative one after its own turn)."""
    return list(dict.fromkeys(model_remembered(list(turns))))


@dataclass(frozen=True)
class Chip:
    """One thing the chain remembers, removable with one click."""

    kind: Literal["words", "like", "dislike"]
    text: str  # the clause, or the clicked item's title
    item_id: str | None = None  # clicks: the item

    @property
    def label(self) -> str:
        return {"words": self.text, "like": f"More like: {self.text}",
                "dislike": f"Less like: {self.text}"}[self.kind]


def chips(turns: Sequence[Turn]) -> list[Chip]:
    """What the chain of ``turns`` remembers: the requests still applying, then the clicks."""
    if not turns:
        return []
    words = remembered([(t.reference.image, t.said) for t in turns])
    liked, disliked = clicks(turns)
    titles = {r.item_id: r.title for t in turns for r in t.results}
    return [*(Chip("words", w) for w in words),
            *(Chip("like", titles.get(i, i), i) for i in liked),
            *(Chip("dislike", titles.get(i, i), i) for i in disliked)]
