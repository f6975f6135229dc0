"""Greetings, thanks and interjections taken out of a request before the text model reads it.

Why: shoppers write "hi, not in black please, thanks!", and the model was trained on requests
alone. Such words cost H&M's negation row 6.7 points and plainer / busier 6.9 (``python -m
bench.feedback_rows --retype chatty --unmended``, docs/evaluation.md): the text model weighs
them as if they asked for something; read without them, about half of that comes back. They are
a closed class of words, so they are listed here, not learned: a part of the request between
punctuation marks that holds nothing else ("hi", "thank you", "good morning", "much
appreciated") goes, with its mark; so do interjections opening a part ("um", "ok") and thanks
closing one ("please", "thx"). Anything else stays as typed, praise included ("love this, but"),
since an open class cannot be listed without taking requests with it; and a request without such
words is returned unchanged.
"""

from __future__ import annotations

import re

# A part made only of these words asks for nothing.
EMPTY_PART_WORDS = frozenset("""
hi hello hey hiya heya howdy there all good morning afternoon evening day um umm uh er erm hmm
hm mm ok okay oh ooh ah wow yay well so right alright yes yeah yep sure cool great please pls
plz thanks thank thankyou you thx ty cheers much many lot very a appreciated in advance
""".split())
OPENING_WORDS = frozenset("hi hello hey hiya heya um umm uh er erm hmm hm ok okay oh ooh ah wow "
                          "yay".split())
CLOSING_WORDS = frozenset("please pls plz thanks thx ty cheers".split())

_MARKS = re.compile(r"([,.!?;:]+)")
_WORD = re.compile(r"[^\W_]+")


def asks_nothing(part: str) -> bool:
    """True when ``part`` is words, all of them greetings, thanks or interjections ("hi!",
    "thank you"): the conversation memory (model.conversation) keeps no such clause."""
    words = _WORD.findall(part.lower())
    return bool(words) and set(words) <= EMPTY_PART_WORDS


def _trim(part: str) -> str:
    """``part`` without the interjections opening it and the thanks closing it (as typed when
    it has none)."""
    words = part.split()
    first, last = 0, len(words)
    while last - first > 1 and words[first].lower() in OPENING_WORDS:
        first += 1
    while last - first > 1 and words[last - 1].lower() in CLOSING_WORDS:
        last -= 1
    if (first, last) == (0, len(words)):
        return part
    return part[:len(part) - len(part.lstrip())] + " ".join(words[first:last])


def without_courtesy(text: str) -> str:
    """``text`` without the parts and edge words that ask for nothing; unchanged when it has
    none, and never emptied (a request of courtesy alone is read as typed)."""
    pieces = _MARKS.split(text)  # part, marks, part, marks, ..., part
    kept: list[str] = []
    for k in range(0, len(pieces), 2):
        part, marks = pieces[k], pieces[k + 1] if k + 1 < len(pieces) else ""
        if not asks_nothing(part):
            kept.append(_trim(part) + marks)
    out = "".join(kept)
    if out == text:
        return text
    out = out.strip().lstrip(",.;:!? ").rstrip(",;: ")
    return out if re.search(r"\w", out) else text
