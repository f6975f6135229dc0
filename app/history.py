"""The chain of turns of one shopping session, independent of Streamlit.

A chain starts at an upload or a random catalog pick, and every search adds a turn: the
reference it started from, what the shopper said, the results, and what they did with them (a
pick to continue from, "More like this" / "Less like this" clicks, chips removed). Why every
search and not only those followed by a pick: the model remembers the conversation
(``Retriever.encode_conversation``), so a sentence typed from the same reference ("navy", then
"with long sleeves") is part of what the shopper asked for, not a dead end. What the next
search builds on is a :class:`Steer`; a turn keeps the basis its results were computed from, so
the page sees when they are stale (a click, a chip removed, an option changed) and searches
again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from app.feedback import drop_clauses

ClickKind = Literal["like", "dislike"]


@dataclass(frozen=True, eq=False)
class Reference:
    """The image a query starts from: an upload or a catalog item."""

    kind: Literal["upload", "catalog"]
    key: str  # catalog item id, or "upload:<sha256 prefix>" of the uploaded bytes
    label: str  # file name or catalog title, for the page
    image: Image.Image = field(repr=False)  # fully decoded RGB image the model encodes
    thumbnail: bytes | None = field(default=None, repr=False)  # JPEG for the history strip
    data: bytes | None = field(default=None, repr=False)  # an upload's bytes as sent (sessions
    # store them, so a restored session encodes exactly the same image)

    @staticmethod
    def upload_key(data: bytes) -> str:
        return "upload:" + hashlib.sha256(data).hexdigest()[:16]

    def same_as(self, other: Reference | None) -> bool:
        return other is not None and other.key == self.key


@dataclass(frozen=True)
class ResultItem:
    """One ranked catalog item as the page shows it."""

    item_id: str
    score: float  # cosine similarity of the query and the item's f_tar
    title: str
    category: str
    attributes: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = field(default=None, repr=False)
    image_path: str | None = None
    seen: bool = False  # shown by an earlier turn of the chain and not picked


@dataclass(frozen=True)
class Turn:
    """One search: from ``reference`` with ``feedback``, the ranked ``results``."""

    reference: Reference
    feedback: str  # the sentence as typed, cleaned ("" = no new words)
    results: list[ResultItem]
    notes: list[str] = field(default_factory=list)  # messages shown with the results
    k: int = 0
    category: str | None = None
    latency_ms: float = 0.0
    chosen: ResultItem | None = None  # set by "refine from this"
    likes: tuple[str, ...] = ()  # "More like this" clicks on this turn's results
    dislikes: tuple[str, ...] = ()  # "Less like this" clicks
    removed: tuple[str, ...] = ()  # clauses of ``feedback`` the shopper removed (chips)
    show_seen: bool = False  # items already seen were ranked like any other
    basis: tuple | None = field(default=None, compare=False, repr=False)  # what the results
    # were computed from (Steer.basis); None: unknown (a restored session), search again

    @property
    def is_open(self) -> bool:
        """True while the shopper has not picked a result to continue from."""
        return self.chosen is None

    @property
    def said(self) -> str:
        """The sentence as it still applies: ``feedback`` without the removed clauses."""
        return drop_clauses(self.feedback, self.removed) if self.removed else self.feedback

    def result(self, item_id: str) -> ResultItem | None:
        return next((r for r in self.results if r.item_id == item_id), None)


@dataclass(frozen=True)
class Steer:
    """What shapes a search in a chain besides its reference and sentence."""

    earlier: tuple[Turn, ...] = ()  # the chain's turns before this one, oldest first
    likes: tuple[str, ...] = ()  # this turn's "More like this" clicks
    dislikes: tuple[str, ...] = ()  # this turn's "Less like this" clicks
    removed: tuple[str, ...] = ()  # clauses of this turn's sentence the shopper removed
    show_seen: bool = False  # rank items already seen like any other

    def basis(self, k: int, category: str | None) -> tuple:
        """Everything a turn's results depend on besides its reference and sentence."""
        earlier = tuple((t.reference.key, t.said, t.likes, t.dislikes,
                         tuple(r.item_id for r in t.results)) for t in self.earlier)
        return (k, category, self.show_seen, self.likes, self.dislikes, self.removed, earlier)


class HistoryError(ValueError):
    """An action that does not fit the current chain (a stale button, usually)."""


def _mentions(sentence: str, clause: str) -> bool:
    words = clause.split()
    pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    return bool(words) and re.search(pattern, sentence, flags=re.IGNORECASE) is not None


@dataclass
class History:
    """The turns of the chain plus the reference the next search will start from."""

    turns: list[Turn] = field(default_factory=list)
    reference: Reference | None = None

    @property
    def open_turn(self) -> Turn | None:
        """The last turn, when its results are still on display (nothing chosen yet)."""
        if self.turns and self.turns[-1].is_open and self.turns[-1].reference.same_as(
            self.reference
        ):
            return self.turns[-1]
        return None

    def start(self, reference: Reference) -> None:
        """Begin a new chain from a fresh reference (an upload or a random catalog pick)."""
        self.turns = []
        self.reference = reference

    # ---- what the next search builds on ---------------------------------------------------
    def steer(self, show_seen: bool, *, new: bool) -> Steer:
        """The steer of a new turn (``new``) or of the open turn searched again."""
        if new:
            return Steer(earlier=tuple(self.turns), show_seen=show_seen)
        turn = self.open_turn
        if turn is None:
            raise HistoryError("there are no results on display to search again")
        return Steer(earlier=tuple(self.turns[:-1]), likes=turn.likes, dislikes=turn.dislikes,
                     removed=turn.removed, show_seen=show_seen)

    def is_stale(self, k: int, category: str | None, show_seen: bool) -> bool:
        """True when the results on display no longer match what the shopper asked for."""
        turn = self.open_turn
        return turn is not None and turn.basis != self.steer(show_seen, new=False).basis(
            k, category)

    # ---- turns ----------------------------------------------------------------------------
    def record(self, turn: Turn) -> None:
        """Add a finished search as the newest turn (an open turn before it stays, unpicked)."""
        self._check_reference(turn)
        self.turns.append(turn)

    def replace_open(self, turn: Turn) -> None:
        """The open turn searched again (a click, a chip removed, an option changed)."""
        self._check_reference(turn)
        if self.open_turn is None:
            raise HistoryError("there are no results on display to replace")
        self.turns[-1] = turn

    def _check_reference(self, turn: Turn) -> None:
        if self.reference is None or not turn.reference.same_as(self.reference):
            raise HistoryError("a search must start from the current reference")

    def refine_from(self, item_id: str, new_reference: Reference) -> None:
        """Mark ``item_id`` as the pick of the open turn and make it the next reference."""
        turn = self.open_turn
        if turn is None:
            raise HistoryError("there are no results on display to refine from")
        chosen = turn.result(item_id)
        if chosen is None:
            raise HistoryError(f"item {item_id!r} is not among the results on display")
        self.turns[-1] = dataclasses.replace(turn, chosen=chosen)
        self.reference = new_reference

    def go_back(self, index: int) -> Turn:
        """Return to turn ``index`` as it was shown: its reference, sentence and results.

        Later turns are dropped (with what they said and clicked), so the chain stays a chain;
        the shopper can pick another result or say something else from there.
        """
        if not 0 <= index < len(self.turns):
            raise HistoryError(f"there is no step {index + 1} (the chain has {len(self.turns)})")
        turn = dataclasses.replace(self.turns[index], chosen=None)
        self.turns = [*self.turns[:index], turn]
        self.reference = turn.reference
        return turn

    def undo(self) -> Turn | None:
        """Take back the last turn: the step before it is on display again (None: the chain is
        back at its start). With no results on display (a pick was just made), the pick is
        what is taken back."""
        if not self.turns:
            raise HistoryError("there is no turn to undo")
        if self.open_turn is None:
            return self.go_back(len(self.turns) - 1)
        last = self.turns.pop()
        if not self.turns:
            self.reference = last.reference
            return None
        return self.go_back(len(self.turns) - 1)

    # ---- clicks and chips -----------------------------------------------------------------
    def toggle_click(self, item_id: str, kind: ClickKind) -> None:
        """'More like this' / 'Less like this' on a result on display; the same click again
        takes it back, the other click replaces it."""
        turn = self.open_turn
        if turn is None or turn.result(item_id) is None:
            raise HistoryError(f"item {item_id!r} is not among the results on display")
        likes = [i for i in turn.likes if i != item_id]
        dislikes = [i for i in turn.dislikes if i != item_id]
        was = item_id in (turn.likes if kind == "like" else turn.dislikes)
        if not was:
            (likes if kind == "like" else dislikes).append(item_id)
        self.turns[-1] = dataclasses.replace(turn, likes=tuple(likes), dislikes=tuple(dislikes))

    def remove_words(self, clause: str) -> int:
        """Forget ``clause`` wherever the chain still says it; returns how many turns said it."""
        count = 0
        for i, turn in enumerate(self.turns):
            if _mentions(turn.said, clause):
                self.turns[i] = dataclasses.replace(turn, removed=(*turn.removed, clause))
                count += 1
        return count

    def remove_click(self, item_id: str) -> int:
        """Forget every click on ``item_id``; returns how many turns had one."""
        count = 0
        for i, turn in enumerate(self.turns):
            if item_id in turn.likes or item_id in turn.dislikes:
                self.turns[i] = dataclasses.replace(
                    turn, likes=tuple(x for x in turn.likes if x != item_id),
                    dislikes=tuple(x for x in turn.dislikes if x != item_id))
                count += 1
        return count
