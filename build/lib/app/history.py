"""The chain of turns of one shopping session, independent of Streamlit.

A session is a strict chain: turn i's chosen result is turn i+1's reference. Why a chain and
not a log of every search: the shopper wants to see *how* they got here (reference, what they
asked for, what they picked) and to step back to any point; searches that were retyped without
picking anything are dead ends and would only clutter that path, so a new search from the same
reference replaces the open turn instead of appending.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image


@dataclass(frozen=True, eq=False)
class Reference:
    """The image a query starts from: an upload or a catalog item."""

    kind: Literal["upload", "catalog"]
    key: str  # catalog item id, or "upload:<sha256 prefix>" of the uploaded bytes
    label: str  # file name or catalog title, for the page
    image: Image.Image = field(repr=False)  # fully decoded RGB image the model encodes
    thumbnail: bytes | None = field(default=None, repr=False)  # JPEG for the history strip

    @staticmethod
    def upload_key(data: bytes) -> str:
        return "upload:" + hashlib.sha256(data).hexdigest()[:16]

    def same_as(self, other: Reference | None) -> bool:
        return other is not None and other.key == self.key


@dataclass(frozen=True)
class ResultItem:
    """One ranked catalog item as the page shows it."""

    item_id: str
    score: float  # cosine similarity of f_ref and the item's f_tar
    title: str
    category: str
    attributes: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = field(default=None, repr=False)
    image_path: str | None = None


@dataclass(frozen=True)
class Turn:
    """One search: from ``reference`` with ``feedback``, the ranked ``results``."""

    reference: Reference
    feedback: str  # the text given to the model ("" = image only)
    results: list[ResultItem]
    notes: list[str] = field(default_factory=list)  # messages shown with the results
    k: int = 0
    category: str | None = None
    latency_ms: float = 0.0
    chosen: ResultItem | None = None  # set by "refine from this"

    @property
    def is_open(self) -> bool:
        """True while the shopper has not picked a result to continue from."""
        return self.chosen is None


class HistoryError(ValueError):
    """An action that does not fit the current chain (a stale button, usually)."""


@dataclass
class History:
    """Completed turns plus the reference the next search will start from."""

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

    def record(self, turn: Turn) -> None:
        """Add a finished search; it replaces the open turn when that one had no pick."""
        if self.reference is None or not turn.reference.same_as(self.reference):
            raise HistoryError("a search must start from the current reference")
        if self.open_turn is not None:
            self.turns[-1] = turn
        else:
            self.turns.append(turn)

    def refine_from(self, item_id: str, new_reference: Reference) -> None:
        """Mark ``item_id`` as the pick of the open turn and make it the next reference."""
        turn = self.open_turn
        if turn is None:
            raise HistoryError("there are no results on display to refine from")
        chosen = next((r for r in turn.results if r.item_id == item_id), None)
        if chosen is None:
            raise HistoryError(f"item {item_id!r} is not among the results on display")
        self.turns[-1] = dataclasses.replace(turn, chosen=chosen)
        self.reference = new_reference

    def go_back(self, index: int) -> Turn:
        """Return to turn ``index`` as it was shown: its reference, feedback and results.

        Later turns are dropped, so the chain stays a chain; the shopper can pick another
        result or change the feedback from there.
        """
        if not 0 <= index < len(self.turns):
            raise HistoryError(f"there is no step {index + 1} (the chain has {len(self.turns)})")
        turn = dataclasses.replace(self.turns[index], chosen=None)
        self.turns = [*self.turns[:index], turn]
        self.reference = turn.reference
        return turn
