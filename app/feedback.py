"""Normalise the shopper's feedback text before it reaches the model.

Why the app caps the text itself although the tokenizer truncates too: the tokenizer cuts
silently at a token count, so the shopper would never learn that the end of a long message was
ignored. Cutting at a character limit here lets the page say so.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.markup import single_line

MAX_FEEDBACK_CHARS = 300  # about 60 words; far beyond the model's token budget already


@dataclass(frozen=True)
class Feedback:
    """Feedback as the model will see it, plus what the page should tell the shopper."""

    text: str  # cleaned, possibly truncated; "" means "retrieve by image alone"
    original_length: int  # characters after cleaning, before truncation
    truncated: bool = False
    notes: list[str] = field(default_factory=list)  # messages for the page, in order

    @property
    def empty(self) -> bool:
        return self.text == ""


def normalize_feedback(raw: str | None, max_chars: int = MAX_FEEDBACK_CHARS) -> Feedback:
    """Clean ``raw`` (NFC, control characters to spaces, whitespace collapsed) and cap its length.

    Truncation prefers the last word boundary inside the limit so the model never sees half a
    word ("navy with long sle"), unless that would drop more than a fifth of the allowed text.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    text = unicodedata.normalize("NFC", raw or "")
    # Control characters (newlines, tabs, NUL, lone surrogates) become spaces; invisible format
    # characters (bidi overrides, zero-width spaces) go; emoji joiners stay.
    text = single_line(text)
    if not text:
        return Feedback(
            text="",
            original_length=0,
            notes=["No feedback given: results are retrieved by the image alone."],
        )
    if len(text) <= max_chars:
        return Feedback(text=text, original_length=len(text))
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space >= max_chars * 0.8:
        cut = cut[:space]
    cut = cut.rstrip(" ,;:-")
    note = (
        f"Feedback is {len(text)} characters long; only the first {len(cut)} were used "
        f"(limit {max_chars}). Put the most important change first."
    )
    return Feedback(text=cut, original_length=len(text), truncated=True, notes=[note])


# Joining words left dangling when a clause is cut out of a sentence ("navy with" once "long
# sleeves" is removed), and punctuation left doubled.
_CONNECTOR = r"(?:and|or|but|with|plus|also|then)"
_TIDY = (
    (re.compile(r"\s+([,;])"), r"\1"),  # "red ," -> "red,"
    (re.compile(r"([,;])(?:\s*[,;])+"), r"\1"),  # "red,, floral" -> "red, floral"
    (re.compile(rf"(?i)\b{_CONNECTOR}\s*(?=[,;]|$)"), ""),  # "navy with" -> "navy"
    (re.compile(r"(?i)^(?:\s*(?:[,;]|\b(?:and|or|but|plus|also)\b))+\s*"), ""),  # "and red"
    (re.compile(rf"(?i)\b{_CONNECTOR}\s+(?=(?:and|or|but)\b)"), ""),  # "red with and" -> "and"
    (re.compile(r"\s{2,}"), " "),
)


def drop_clauses(sentence: str, clauses: Iterable[str]) -> str:
    """``sentence`` without the given clauses (case-insensitive, whole words), tidied.

    Why: a chip the shopper removes is a clause of one of their sentences ("navy" of "navy
    with long sleeves"); the search then uses the sentence without it ("with long sleeves"),
    so the model and the chips agree on what is still asked for."""
    text = sentence
    for clause in clauses:
        words = clause.split()
        if not words:
            continue
        pattern = r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
        text = re.sub(pattern, " ", text, flags=re.IGNORECASE)
    previous = None
    while previous != text:
        previous = text
        for pattern, repl in _TIDY:
            text = pattern.sub(repl, text).strip()
    return text.strip(" ,;")
