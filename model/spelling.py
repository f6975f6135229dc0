"""Typos in a shopper's words mended before the text model reads them.

    python -m model.spelling --checkpoint CKPT --datasets ANN[:IMAGES] ...

Why: the model reads words it was trained on; a slip of the finger makes another word of
them. With three in ten words of five letters or more mistyped (``python -m
bench.feedback_rows --retype typos``), H&M's multi-change row falls from 65.7 to 47.0 hit@10
and "another type" from 73.8 to 51.1 (docs/evaluation.md).

A word is left as typed when it is shorter than MIN_LENGTH, an English word (the word list
pyspellchecker ships), a whole word of the text model's vocabulary, a garment, fabric, colour or
pattern word of ``model.fashion_words`` (British and American, "gilet", "skort", "tshirt"), or a
word of the checkpoint's training captions (its meta ``caption_words``, which the command above
writes), or a word of the served catalog's titles, categories and attributes (``with_catalog``:
the indexer records them with each build, the app hands them over; those one edit from a
caption's word are taken for the catalog's misspellings). Any other word becomes the
known word one edit away (a letter dropped, added or changed, or two neighbours swapped) that
the training captions use most, else one of the catalog's, else the commonest English one;
with none, it stays as typed, as does a word with a letter outside a-z ("piqué": the text model
drops accents itself). So a request typed right reads exactly as before. Why the catalog: a
shop's brands and line names are words no list knows, and without them 15 % of fashion-products'
title and attribute words and 20 % of H&M's became others ("gini" "mini", "hanes" "hands",
"moda" "soda"; ``python -m bench.catalog_spelling``).
"""

from __future__ import annotations

import argparse
import logging
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache, cached_property
from pathlib import Path

from model.checkpoint import update_meta
from model.fashion_words import FASHION_WORDS

logger = logging.getLogger(__name__)

MIN_LENGTH = 4
META_KEY = "caption_words"
WORD = re.compile(r"[^\W\d_]+")  # letters of any alphabet: "appliqué" is one word
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@cache
def english_words() -> Mapping[str, int]:
    """Word -> frequency of pyspellchecker's English list (160k words, 0.4 s once per
    process; a correctly typed query that the captions and the vocabulary cover never reads it)."""
    from spellchecker import SpellChecker

    return SpellChecker(language="en", distance=1).word_frequency.dictionary


def one_edit_away(word: str) -> set[str]:
    """Every string one letter dropped, swapped with its neighbour, changed or added away."""
    splits = [(word[:k], word[k:]) for k in range(len(word) + 1)]
    return ({a + b[1:] for a, b in splits if b}
            | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
            | {a + c + b[1:] for a, b in splits if b for c in LETTERS}
            | {a + c + b for a, b in splits for c in LETTERS})


@dataclass(frozen=True)
class SpellingCorrector:
    caption_words: Mapping[str, int]  # the training captions' words and their counts
    vocabulary: frozenset[str]  # the text model's whole words
    english: Mapping[str, int] | None = None  # None: english_words(), read at the first typo
    catalog: frozenset[str] = frozenset()  # the served catalog's words (with_catalog)

    def known(self, word: str) -> bool:
        return (word in self.caption_words or word in self.vocabulary or word in self.catalog
                or word in FASHION_WORDS or word in self._english())

    def with_catalog(self, words: Iterable[str]) -> SpellingCorrector:
        """This corrector also knowing ``words`` (a catalog's: ``catalog_words``), but for
        those one edit from a training caption's word: in a catalog those are mostly its own
        misspellings ("shrt", "stright", "majenta" in the two catalogs here), which would
        otherwise keep a shopper's same slip from being mended."""
        return replace(self, catalog=frozenset(words) - self._near_captions)

    @cached_property
    def _near_captions(self) -> frozenset[str]:
        return frozenset(c for w in self.caption_words for c in one_edit_away(w)
                         if c not in self.caption_words)

    def _english(self) -> Mapping[str, int]:
        return english_words() if self.english is None else self.english

    def word(self, typed: str) -> str:
        word = typed.lower()
        if len(word) < MIN_LENGTH or not word.isascii() or self.known(word):
            return typed
        candidates = [c for c in one_edit_away(word) if self.known(c)]
        if not candidates:
            return typed
        english = self._english()
        return max(candidates, key=lambda c: (self.caption_words.get(c, 0), c in self.catalog,
                                              english.get(c, 0), c))

    def __call__(self, text: str) -> str:
        return WORD.sub(lambda m: self.word(m.group(0)), text)


def vocabulary_words(tokenizer) -> frozenset[str]:
    """The whole (not continuation) alphabetic tokens of a tokenizer's vocabulary, lower-cased
    (a WordPiece "##ing" or a SentencePiece "▁word" marker is left out / stripped)."""
    words = (t.removeprefix("\u2581").lower() for t in tokenizer.get_vocab())
    return frozenset(w for w in words if w.isascii() and w.isalpha())


def corrector_for(meta: Mapping, tokenizer) -> SpellingCorrector | None:
    """The corrector of a checkpoint whose meta names its training captions' words; None
    without them: mending against English alone turns catalog words into others ("hoodie"
    into "goodie", measured on H&M's captions), so a checkpoint without the list reads words
    as typed."""
    words = meta.get(META_KEY)
    if not words:
        return None
    return SpellingCorrector(dict(words), vocabulary_words(tokenizer))


def caption_words(captions: Iterable[str]) -> dict[str, int]:
    """Word -> count over ``captions``, lower-cased, commonest first."""
    counts = Counter(w.lower() for c in captions for w in WORD.findall(c))
    return dict(counts.most_common())


def catalog_words(texts: Iterable[str]) -> dict[str, int]:
    """The words ``with_catalog`` needs of a catalog's ``texts`` (titles, categories, attribute
    values), with their counts, commonest first: lower-cased, of MIN_LENGTH letters or more,
    since shorter ones are never mended."""
    return {w: n for w, n in caption_words(texts).items() if len(w) >= MIN_LENGTH}


def training_captions(datasets: Sequence[str]) -> list[str]:
    """Every caption of the train split of each ANN[:IMAGES] dataset."""
    from dataprep import dataset_paths, load_fashioniq

    captions = []
    for text in datasets:
        train = load_fashioniq(*dataset_paths(text), "train")
        captions += [c for t in train.triplets for c in t.captions]
    return captions


def write_caption_words(checkpoint: str | Path, datasets: Sequence[str]) -> dict[str, int]:
    """Record the datasets' training caption words in the checkpoint's meta (config.json);
    the weights and their fingerprint stay as they are."""
    words = caption_words(training_captions(datasets))
    config = update_meta(checkpoint, **{META_KEY: words})
    logger.info("%s: %d caption words from %d datasets", config, len(words), len(datasets))
    return words


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m model.spelling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--datasets", nargs="+", required=True, metavar="ANN[:IMAGES]",
                   help="the datasets the checkpoint was trained on")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    write_caption_words(a.checkpoint, a.datasets)


if __name__ == "__main__":
    main()
