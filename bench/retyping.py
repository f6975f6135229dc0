"""The same requests typed otherwise: without punctuation, with typos, between greetings and
thanks, in American spelling.

Why: the held-out phrasing families vary the words, not how they are typed, and shoppers type
on phones. ``bench.feedback_rows --retype typos`` scores every row with its captions retyped,
so how much a slip of the finger costs is a figure, not a guess (docs/evaluation.md); ``chatty``
and ``american`` do the same for the words around a request and for a spelling.

A typo is one edit of a word of at least ``MIN_TYPO_LENGTH`` letters, never its first or last
letter: two neighbouring letters swapped or one letter dropped, each half the time. Seeded per
caption, so a run retypes every caption the same way whatever the row order.
"""

from __future__ import annotations

import random
import re
import zlib
from collections.abc import Callable

from model.spelling import WORD

MIN_TYPO_LENGTH = 5


def with_typos(text: str, rate: float, seed: int = 0) -> str:
    """``text`` with each word of at least MIN_TYPO_LENGTH letters mistyped at ``rate``."""
    rng = random.Random(zlib.crc32(text.encode()) ^ seed)

    def mistype(match: re.Match) -> str:
        word = match.group(0)
        if len(word) < MIN_TYPO_LENGTH or rng.random() >= rate:
            return word
        k = rng.randrange(1, len(word) - 2)  # the letter at k and its right neighbour
        if rng.random() < 0.5:
            return word[:k] + word[k + 1] + word[k] + word[k + 2:]
        return word[:k] + word[k + 1:]

    return WORD.sub(mistype, text)


# Words around a request that ask for nothing: greetings, praise, thanks. Not the phrasing
# families' words (dataprep.feedback), which ask for the change itself.
# Written before model.courtesy, which removes some of them (docs/evaluation.md).
OPENINGS = ("hi, ", "hello! ", "love this, but ", "nice one. ", "ok so ", "hmm, ",
            "i like it, but ", "pretty, but ", "hey there! ", "good morning, ", "so, ",
            "wow, gorgeous, but ", "um ", "ooh this is cute but ", "right, ", "quick question: ")
CLOSINGS = (" please", ", thanks!", " thank you", " if you have it", ", cheers", "?", " pls",
            ", ty", ", much appreciated", " thx", " :)", " if possible", "!!",
            ", is that possible?")


def chatty(text: str, seed: int = 0) -> str:
    """``text`` between an opening and a closing that ask for nothing (seeded per caption)."""
    rng = random.Random(zlib.crc32(text.encode()) ^ seed)
    return rng.choice(OPENINGS) + text + rng.choice(CLOSINGS)


# British spellings of the training captions and their American forms, as an American shop's
# shoppers (and FashionIQ's captions) write them.
AMERICAN = {"grey": "gray", "greyish": "grayish", "colour": "color", "colours": "colors",
            "coloured": "colored", "colourful": "colorful", "colourway": "colorway",
            "multicoloured": "multicolored", "jewellery": "jewelry", "pyjamas": "pajamas",
            "pyjama": "pajama", "favourite": "favorite", "towelling": "toweling"}


def american(text: str) -> str:
    """``text`` with its British spellings American (``AMERICAN``; such a word comes out in
    lower case, which the uncased text model reads alike)."""
    return WORD.sub(lambda m: AMERICAN.get(m.group(0).lower(), m.group(0)), text)


def without_punctuation(text: str) -> str:
    return re.sub(r"[^\w\s]", "", text).lower()


def retyping(name: str, typo_rate: float = 0.3) -> Callable[[str], str]:
    """The caption transform called ``name`` (one of RETYPINGS)."""
    if name == "no-punctuation":
        return without_punctuation
    if name == "typos":
        return lambda text: with_typos(text, typo_rate)
    if name == "chatty":
        return chatty
    if name == "american":
        return american
    raise ValueError(f"unknown retyping {name!r}; one of {RETYPINGS}")


# No "capitals": the evaluation caption is lower-cased after its first letter (dataprep's
# eval_caption, as CLIP4Cir builds it) and the text model is uncased.
RETYPINGS = ("no-punctuation", "typos", "chatty", "american")
