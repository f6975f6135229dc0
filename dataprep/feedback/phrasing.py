"""One generator of shopper feedback sentences, split into training and held-out phrasings.

A request is a list of :class:`Change` (what to change, how: to a value, relative to the
reference, or away from something). :func:`phrase` writes one change and :func:`join` one to
four in one sentence, in a *phrasing family*: a way of putting a request ("make it ...", "the
same but ...", "I'd prefer it ...") together with its own words. Families come in two disjoint
sets. Training data is written with :data:`TRAIN_FAMILIES` and training words only; held-out
evaluation with :data:`HELDOUT_FAMILIES`, whose templates and synonyms ("paler", "deeper",
"minus the sleeves", "baggier", ...) never occur in a training caption, so a held-out figure
measures whether the model understood the language, not whether it recalls a template.

Every held-out template and every held-out word carries a *marker* (a word listed in
:data:`HELDOUT_MARKERS`); ``tests/test_feedback_phrasing.py`` generates many training
captions (this generator's and the existing dataset builders') and checks that no marker
occurs in any of them.

The words a change is written with come from a lexicon: *shared* entries (the plain words
"lighter", "without sleeves", "not in black") are used by both splits; *train* and *held-out*
entries are synonyms used by one split only. A held-out sentence takes a held-out synonym
when one exists with probability :data:`HELDOUT_SYNONYM_SHARE`.

The conversation helper reuses this module for a simulated shopper.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "heldout"]
Kind = Literal["absolute", "relative", "negation"]
SPLITS: tuple[Split, ...] = ("train", "heldout")
KINDS: tuple[Kind, ...] = ("absolute", "relative", "negation")
HELDOUT_SYNONYM_SHARE = 0.5  # a held-out sentence's chance of a held-out synonym where one exists


@dataclass(frozen=True)
class Change:
    """One thing a shopper asks to change about the reference.

    ``slot``: what it is about ("colour", "lightness", "saturation", "length", "sleeve",
    "neckline", "pattern", "material", "fit", "waist", "closure", "type", "hood", ...).
    ``kind``: "absolute" (the target has ``value``: "navy", "long sleeves", "knee-length"),
    "relative" (``value`` is a direction: "lighter", "darker", "brighter", "more muted",
    "shorter", "longer", "looser", "tighter", "plainer", "busier"; with slot "sleeve",
    "shorter"/"longer" means the sleeves) or "negation" (the target lacks ``value``: slot
    "sleeve" value "sleeves", slot "hood" value "hood", slot "pattern" value "print", slot
    "colour" value "black", slot "material" value "denim").
    ``ref_value``: the reference's value, when the sentence may name it ("navy instead of
    black").
    """

    slot: str
    kind: Kind
    value: str
    ref_value: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        if not self.value:
            raise ValueError("a change needs a value")


# --------------------------------------------------------------------------- the lexicon
# Each entry: a list of fragments per split ("shared" in both). A fragment is a postnominal
# modifier: it reads after "something" / "make it" / "the same but" ("lighter", "in navy",
# "without sleeves", "with long sleeves"). "{v}" is the change's value, "{r}" its ref_value.

Lex = dict[str, list[str]]


def _lex(shared: Sequence[str] = (), train: Sequence[str] = (), heldout: Sequence[str] = ()
         ) -> Lex:
    return {"shared": list(shared), "train": list(train), "heldout": list(heldout)}


RELATIVE: dict[tuple[str, str], Lex] = {
    ("lightness", "lighter"): _lex(["lighter"], ["lighter in colour", "in a lighter shade",
                                                 "in a lighter colour", "less dark",
                                                 "in a lighter hue", "lighter-coloured",
                                                 "with a lighter tint"],
                                   ["paler", "pale", "in a paler tone", "not so dark"]),
    ("lightness", "darker"): _lex(["darker"], ["darker in colour", "in a darker shade",
                                               "in a darker colour", "less light",
                                               "in a darker hue", "darker-coloured",
                                               "with a darker tint"],
                                  ["deeper", "in a deeper tone", "richer in tone",
                                   "not so pale"]),
    ("saturation", "brighter"): _lex(["brighter"], ["more vivid", "in a brighter colour",
                                                    "more colourful", "more vibrant",
                                                    "livelier in colour",
                                                    "more intense in colour"],
                                     ["punchier", "more saturated", "bolder in colour"]),
    ("saturation", "more muted"): _lex(["more muted"], ["duller", "in a more muted colour",
                                                        "more subdued", "less vivid",
                                                        "softer in colour", "more faded"],
                                       ["toned-down", "dustier", "more washed-out",
                                        "subtler"]),
    ("length", "shorter"): _lex(["shorter"], ["a bit shorter", "in a shorter length",
                                              "less long", "cut shorter", "with less length"],
                                ["not as long", "with a higher hemline", "hemmed higher"]),
    ("length", "longer"): _lex(["longer"], ["a bit longer", "in a longer length",
                                            "less short", "cut longer", "with more length"],
                               ["not as short", "with a lower hemline", "hemmed lower"]),
    ("sleeve", "shorter"): _lex(["with shorter sleeves"], ["with sleeves that are shorter",
                                                           "with shortened sleeves",
                                                           "with less sleeve",
                                                           "with sleeves cut shorter"],
                                ["with briefer sleeves", "with less arm coverage"]),
    ("sleeve", "longer"): _lex(["with longer sleeves"], ["with sleeves that are longer",
                                                         "with lengthened sleeves",
                                                         "with more sleeve",
                                                         "with sleeves cut longer"],
                               ["with more arm coverage", "with sleeves reaching further down"]),
    ("fit", "looser"): _lex(["looser"], ["more relaxed", "in a looser fit", "less fitted",
                                         "more oversized", "less tight"],
                            ["baggier", "roomier", "slouchier"]),
    ("fit", "tighter"): _lex(["tighter"], ["more fitted", "in a tighter fit", "slimmer",
                                           "less loose", "more form-fitting"],
                             ["snugger", "more figure-hugging", "closer to the body"]),
    ("pattern", "plainer"): _lex(["plainer"], ["simpler", "with a plainer look",
                                               "less patterned", "less busy", "more basic",
                                               "with less pattern"],
                                 ["more minimal", "understated", "cleaner-looking"]),
    ("pattern", "busier"): _lex(["busier"], ["more patterned", "with a busier pattern",
                                             "less plain", "with more pattern", "more ornate",
                                             "more elaborate"],
                                ["louder", "more eye-catching", "more decorated"]),
}
# Relative changes stated about the colour are lightness / saturation changes.
_RELATIVE_ALIASES = {("colour", "lighter"): ("lightness", "lighter"),
                     ("colour", "darker"): ("lightness", "darker"),
                     ("colour", "brighter"): ("saturation", "brighter"),
                     ("colour", "more muted"): ("saturation", "more muted")}

NEGATION: dict[str, Lex] = {
    "sleeve": _lex(["without sleeves", "with no sleeves"],
                   ["sleeveless", "with the sleeves off", "without any sleeves",
                    "with the sleeves removed"],
                   ["minus the sleeves", "sans sleeves", "with bare arms"]),
    "hood": _lex(["without a hood", "with no hood"],
                 ["with the hood taken away", "without any hood", "with the hood removed"],
                 ["minus the hood", "sans hood", "hoodless"]),
    "pattern": _lex(["without the {v}", "with no {v}"],
                    ["with the {v} taken away", "without any {v}", "with the {v} removed"],
                    ["minus the {v}", "sans {v}", "free of any {v}"]),
    "colour": _lex(["not in {v}", "not {v}"],
                   ["in any colour but {v}", "in a colour that isn't {v}",
                    "in any colour besides {v}", "anything but {v}"],
                   ["in a colour other than {v}", "avoiding {v}", "in some shade except {v}"]),
    "material": _lex(["not in {v}", "not made of {v}"],
                     ["in anything but {v}", "in a fabric that isn't {v}",
                      "in any material besides {v}"],
                     ["in something other than {v}", "avoiding {v}",
                      "in some fabric except {v}"]),
    "*": _lex(["without a {v}", "with no {v}"],
              ["with the {v} taken away", "without any {v}", "with the {v} removed"],
              ["minus the {v}", "sans {v}"]),
}

# Absolute changes: per slot, then optionally per value (value-specific entries replace the
# slot's generic ones).
ABSOLUTE: dict[str, Lex] = {
    "colour": _lex(["in {v}"], ["{v}", "in the colour {v}"], ["done in {v}", "{v}-toned"]),
    "sleeve": _lex(["with {v}"], [], ["featuring {v}"]),
    "neckline": _lex(["with a {v}"], [], ["featuring a {v}"]),
    "hood": _lex(["with a hood"], ["hooded"], ["featuring a hood"]),
    "length": _lex(["{v}"], ["in a {v} cut"], ["{v}, length-wise"]),
    "pattern": _lex(["{v}"], ["with a {v} look"], ["in a {v} design"]),
    "material": _lex(["in {v}"], ["made of {v}"], ["crafted from {v}"]),
    "fit": _lex(["in a {v}"], [], ["tailored in a {v}"]),
    "waist": _lex(["with a {v}"], [], ["featuring a {v}"]),
    "closure": _lex(["with {v}"], [], ["fastening with {v}"]),
    "type": _lex(["as a {v}"], ["in the form of a {v}", "styled as a {v}"],
                 ["turned into a {v}"]),
    "*": _lex(["with {v}"], [], ["featuring {v}"]),
}
ABSOLUTE_VALUES: dict[tuple[str, str], Lex] = {
    ("sleeve", "sleeveless"): _lex(["sleeveless"], ["with no sleeves"],
                                   ["strappy", "with bare arms"]),
    ("sleeve", "long sleeves"): _lex(["with long sleeves"], ["long-sleeved"],
                                     ["with full-length sleeves"]),
    ("sleeve", "short sleeves"): _lex(["with short sleeves"], ["short-sleeved"],
                                      ["with brief sleeves"]),
    ("sleeve", "three-quarter sleeves"): _lex(["with three-quarter sleeves"],
                                              ["with 3/4 sleeves"],
                                              ["featuring three-quarter sleeves"]),
    ("neckline", "hood"): _lex(["with a hood"], ["hooded"], ["featuring a hood"]),
    ("neckline", "off-the-shoulder"): _lex(["off-the-shoulder"], ["showing the shoulders"],
                                           ["featuring bare shoulders"]),
    ("neckline", "square neckline"): _lex(["with a square neckline"], [],
                                          ["featuring a square neckline"]),
    ("length", "short"): _lex(["short"], ["in a short length"], ["short, length-wise"]),
    ("length", "cropped"): _lex(["cropped"], ["in a cropped length"],
                                ["cropped, length-wise"]),
    ("fit", "skinny"): _lex(["skinny"], ["in a skinny fit"], ["tailored skinny"]),
    ("fit", "wide legs"): _lex(["with wide legs"], ["wide-legged"], ["featuring wide legs"]),
    ("closure", "wrap"): _lex(["in a wrap style"], [], ["fastening as a wrap"]),
    ("closure", "zip"): _lex(["with a zip"], [], ["fastening with a zip"]),
}

# Prenominal forms for "a {adj} version": relative directions and single-word values.
_ADJECTIVE_SLOTS = {"colour", "length", "pattern"}

# --------------------------------------------------------------------------- families
# A family writes a list of fragments as one sentence. Templates hold "{M}" (the joined
# fragments), "{A}" (the first change as an adjective, with "{R}" the rest) or "{I}" (the
# joined imperatives).


@dataclass(frozen=True)
class Family:
    """A way of phrasing a request: sentence templates, the connectors that join several
    changes, and (held-out families) marker words that occur in no training caption."""

    name: str
    split: Split
    templates: tuple[str, ...]
    connectors: tuple[str, ...] = (" and ", ", ")
    markers: tuple[str, ...] = ()


TRAIN_FAMILIES: tuple[Family, ...] = (
    Family("bare", "train", ("{M}",)),
    Family("make_it", "train", ("make it {M}", "can you make it {M}")),
    Family("same_but", "train", ("the same but {M}", "same but {M}", "same one, but {M}")),
    Family("instead", "train", ("{M} instead", "this one {M} instead")),
    Family("want", "train", ("I want it {M}", "I'd like it {M}", "I want one {M}")),
    Family("version", "train", ("a {A} version{R}", "a version {M}")),
    Family("show_me", "train", ("show me something {M}", "show me this {M}")),
    Family("imperative", "train", ("{I}",), connectors=(" and ", ", ")),
    Family("is", "train", ("{P}", "the new one {P}")),
    Family("like_this", "train", ("like this but {M}", "like this one, but {M}")),
    Family("find_me", "train", ("find me one {M}", "find me something {M}")),
    Family("how_about", "train", ("how about one {M}", "what about one {M}")),
    Family("wish", "train", ("I wish it was {M}", "wish it were {M}")),
)

HELDOUT_FAMILIES: tuple[Family, ...] = (
    Family("prefer", "heldout", ("I'd prefer it {M}", "I would prefer something {M}"),
           connectors=(" plus ", " and "), markers=("prefer",)),
    Family("looking_for", "heldout", ("looking for something {M}", "I'm looking for one {M}"),
           connectors=(" and ", " as well as "), markers=("looking", "as well as")),
    Family("could_you", "heldout", ("could you find this {M}?", "could you get me this {M}"),
           connectors=(", also ", " and "), markers=("could", "also")),
    Family("swap", "heldout", ("{J}",), connectors=(", then ", " & "),
           markers=("swap", "switch", "ditch", "lose", "go", "then", "&")),
    Family("rather", "heldout", ("rather {M}, please", "{M} would be better"),
           connectors=(" and ", " as well as "), markers=("rather", "please", "better")),
    Family("question", "heldout", ("do you have it {M}?", "got one {M}?"),
           connectors=(" and ", " plus "), markers=("do you have", "got", "plus")),
    Family("similar", "heldout", ("similar, only {M}", "something similar but {M}"),
           connectors=(" and ", ", "), markers=("similar", "only")),
    Family("needs", "heldout", ("it needs to come {M}", "needs to come {M}"),
           connectors=(" and ", " along with "), markers=("needs", "along with")),
    Family("tweak", "heldout", ("tweak it so it comes {M}", "tweak this: {M}"),
           connectors=(" and ", ", "), markers=("tweak",)),
    Family("exact_piece", "heldout", ("this exact piece, just {M}", "this piece but {M}"),
           connectors=(" and ", ", "), markers=("piece", "just", "exact")),
)
FAMILIES: dict[str, Family] = {f.name: f for f in TRAIN_FAMILIES + HELDOUT_FAMILIES}

# Imperatives: the train family "imperative" and the held-out family "swap" ({J}).
_IMPERATIVE: dict[str, dict[str, list[str]]] = {
    "train": {"relative": ["make it {m}"], "absolute": ["make it {m}"],
              "colour": ["change the colour to {v}", "make it {v}"],
              "negation": ["remove the {v}", "get rid of the {v}", "take off the {v}",
                           "leave off the {v}", "drop the {v}"],
              "negation_value": ["make it {m}"]},
    "heldout": {"relative": ["go {m}"], "absolute": ["swap to one {m}", "switch to one {m}"],
                "colour": ["swap to {v}", "switch it to {v}", "go for {v}"],
                "negation": ["ditch the {v}", "lose the {v}"],
                "negation_value": ["pick one {m}"]},
}
_NEGATION_PART_VALUES = {"sleeve": "sleeves", "hood": "hood"}

# Every held-out word: the families' markers and the held-out lexicon's own words.
_HELDOUT_LEXICON_WORDS = (
    "paler", "pale", "tone", "so", "deeper", "richer", "punchier", "saturated", "bolder",
    "toned-down", "dustier", "washed-out", "subtler", "hemline", "hemmed", "higher", "lower",
    "as long", "as short", "briefer", "brief", "arm", "coverage", "reaching", "further",
    "baggier", "roomier", "slouchier", "snugger", "figure-hugging", "closer", "body",
    "minimal", "understated", "cleaner-looking", "louder", "eye-catching", "decorated",
    "minus", "sans", "bare", "hoodless", "free", "other than", "avoiding", "except",
    "done", "-toned", "featuring", "length-wise", "tailored", "design", "crafted", "fastening",
    "turned", "strappy", "full-length", "pick",
)
HELDOUT_MARKERS: tuple[str, ...] = tuple(dict.fromkeys(
    [m for f in HELDOUT_FAMILIES for m in f.markers] + list(_HELDOUT_LEXICON_WORDS)))


def _entries(lex: Lex, split: Split, rng: np.random.Generator) -> list[str]:
    """The fragments a split may use: train draws from shared + train alike; held-out takes
    a held-out synonym with probability HELDOUT_SYNONYM_SHARE where there is one."""
    if split == "train":
        options = lex["shared"] + lex["train"]
    elif lex["heldout"] and (not lex["shared"] or rng.random() < HELDOUT_SYNONYM_SHARE):
        options = lex["heldout"]
    else:
        options = lex["shared"]
    if not options:
        raise ValueError(f"the lexicon has no {split} words for this change")
    return options


def _lexicon(change: Change) -> Lex:
    if change.kind == "relative":
        key = _RELATIVE_ALIASES.get((change.slot, change.value), (change.slot, change.value))
        if key not in RELATIVE:
            raise ValueError(f"no relative phrasing for {change.slot!r} {change.value!r}; "
                             f"known: {sorted(RELATIVE)}")
        return RELATIVE[key]
    if change.kind == "negation":
        return NEGATION.get(change.slot, NEGATION["*"])
    return ABSOLUTE_VALUES.get((change.slot, change.value),
                               ABSOLUTE.get(change.slot, ABSOLUTE["*"]))


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def fragment(change: Change, rng: np.random.Generator, split: Split,
             name_ref: bool = True) -> str:
    """The change as a postnominal modifier in the split's words ("paler", "in navy",
    "without sleeves"); it reads after "something", "make it" or "the same but". With
    ``name_ref`` an absolute change sometimes names the reference's value too ("in navy
    instead of black")."""
    _check_split(split)
    text = _pick(_entries(_lexicon(change), split, rng), rng).format(
        v=change.value, r=change.ref_value or "")
    if name_ref and change.ref_value and change.kind == "absolute" and rng.random() < 0.25:
        text += (" instead of " if split == "train" else " rather than ") + change.ref_value
    return text


def _adjective(change: Change, rng: np.random.Generator, split: Split) -> str | None:
    """A one-word prenominal form ("shorter", "navy", "striped"), when the change has one."""
    if change.kind == "relative":
        words = [w for w in _entries(_lexicon(change), split, rng) if " " not in w]
        return _pick(words, rng) if words else None
    if change.kind == "absolute" and change.slot in _ADJECTIVE_SLOTS:
        return change.value
    return None


def _imperative(change: Change, rng: np.random.Generator, split: Split) -> str:
    forms = _IMPERATIVE[split]
    if change.kind == "negation":
        part = _NEGATION_PART_VALUES.get(change.slot, change.value)
        if change.slot in ("colour", "material"):
            return _pick(forms["negation_value"], rng).format(m=fragment(change, rng, split))
        return _pick(forms["negation"], rng).format(v=part)
    if change.kind == "absolute" and change.slot == "colour":
        return _pick(forms["colour"], rng).format(v=change.value)
    text = fragment(change, rng, split)
    if change.kind == "relative" and split == "heldout" and " " in text:
        return _pick(forms["absolute"], rng).format(m=text)  # "swap to one not as long"
    return _pick(forms[change.kind], rng).format(m=text)


def _predicate(text: str) -> str:
    """A modifier as a predicate: "with long sleeves" -> "has long sleeves", "in navy" ->
    "is in navy"."""
    return "has " + text[5:] if text.startswith("with ") else "is " + text


def _families(split: Split) -> tuple[Family, ...]:
    _check_split(split)
    return TRAIN_FAMILIES if split == "train" else HELDOUT_FAMILIES


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def family_of(split: Split, rng: np.random.Generator, family: str | None = None) -> Family:
    """The named family (which must belong to ``split``) or a random one of the split."""
    if family is None:
        return _pick(_families(split), rng)
    if family not in FAMILIES or FAMILIES[family].split != split:
        raise ValueError(f"{family!r} is not a {split} phrasing family; known: "
                         f"{[f.name for f in _families(split)]}")
    return FAMILIES[family]


def _connect(parts: Sequence[str], fam: Family, rng: np.random.Generator) -> str:
    if len(parts) == 1:
        return parts[0]
    connector = _pick(fam.connectors, rng)
    if connector == ", " and len(parts) > 2 and rng.random() < 0.5:
        return ", ".join(parts[:-1]) + " and " + parts[-1]
    return connector.join(parts)


def join(changes: Sequence[Change], rng: np.random.Generator, split: Split,
         family: str | None = None) -> str:
    """One sentence asking for all of ``changes`` (one to four), in one phrasing family of
    ``split`` (random unless ``family`` names one): "darker and shorter", "the same but in
    navy, without sleeves", "a shorter version in red", "I'd prefer it paler plus sans hood"."""
    if not 1 <= len(changes) <= 4:
        raise ValueError(f"a request names one to four changes, not {len(changes)}")
    fam = family_of(split, rng, family)
    template = _pick(fam.templates, rng)
    if "{A}" in template:
        adjective = _adjective(changes[0], rng, split)
        if adjective is None:  # the family's other template: "a version without sleeves"
            template = next(t for t in fam.templates if "{A}" not in t)
        else:
            rest = [fragment(c, rng, split) for c in changes[1:]]
            tail = (" " + _connect(rest, fam, rng)) if rest else ""
            return _tidy(template.format(A=adjective, R=tail))
    if "{P}" in template:  # "is lighter and has no sleeves"
        return _tidy(template.replace("{P}", _connect([_predicate(fragment(c, rng, split))
                                                       for c in changes], fam, rng)))
    if "{I}" in template or "{J}" in template:
        text = _connect([_imperative(c, rng, split) for c in changes], fam, rng)
        return template.replace("{I}", text).replace("{J}", text)
    name_ref = not any(w in template for w in ("instead", "rather"))  # said once
    text = _connect([fragment(c, rng, split, name_ref) for c in changes], fam, rng)
    return _tidy(template.replace("{M}", text))


def _tidy(text: str) -> str:
    """Join seams: "along with with shorter sleeves" -> "along with shorter sleeves"."""
    return re.sub(r"\bwith with\b", "with", text)


def phrase(change: Change, rng: np.random.Generator, split: Split,
           family: str | None = None) -> str:
    """One sentence asking for ``change`` in one phrasing family of ``split`` ("train" or
    "heldout"; random unless ``family`` names one)."""
    return join([change], rng, split, family)




@functools.lru_cache(maxsize=1024)
def marker_pattern(marker: str) -> re.Pattern[str]:
    """A regex finding ``marker`` as whole words in lower-cased text ("so" not in "also";
    "-toned" as a suffix)."""
    if marker.startswith("-"):
        return re.compile(re.escape(marker) + r"\b")
    if not marker[0].isalnum():
        return re.compile(r"(?:^|\s)" + re.escape(marker) + r"(?:\s|$)")
    return re.compile(r"(?<![\w-])" + re.escape(marker) + r"(?![\w-])")


@functools.lru_cache(maxsize=64)
def _any_marker(markers: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{marker_pattern(m).pattern})" for m in markers))


def heldout_markers_in(text: str, markers: Sequence[str] = HELDOUT_MARKERS) -> list[str]:
    """The held-out markers occurring in ``text`` (empty for a clean training caption)."""
    low = text.lower()
    if not _any_marker(tuple(markers)).search(low):  # one pass for the usual clean caption
        return []
    return [m for m in markers if marker_pattern(m).search(low)]


def sample_captions(split: Split, n: int, seed: int = 0,
                    changes_of: Callable[[np.random.Generator], list[Change]] | None = None
                    ) -> list[str]:
    """``n`` sentences of ``split`` over every change the lexicon knows (tests, inspection)."""
    rng = np.random.default_rng(seed)
    pool = example_changes()
    out = []
    for _ in range(n):
        if changes_of is not None:
            changes = changes_of(rng)
        else:
            k = int(rng.integers(1, 5))
            changes = [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]
        out.append(join(changes, rng, split))
    return out


def example_changes() -> list[Change]:
    """At least one change of every lexicon entry, for sampling and tests."""
    out = [Change(slot, "relative", value) for slot, value in RELATIVE]
    out += [Change(s, "negation", v) for s, v in (("sleeve", "sleeves"), ("hood", "hood"),
                                                  ("pattern", "print"), ("pattern", "stripes"),
                                                  ("colour", "black"), ("material", "denim"),
                                                  ("neckline", "collar"))]
    out += [Change(s, "absolute", v) for s, v in ABSOLUTE_VALUES]
    out += [Change("colour", "absolute", c, r) for c, r in (("navy", "black"), ("light pink", None),
                                                            ("dark blue", "white"))]
    out += [Change(s, "absolute", v) for s, v in (
        ("neckline", "v-neck"), ("length", "knee-length"), ("pattern", "striped"),
        ("material", "denim"), ("fit", "relaxed fit"), ("waist", "high waist"),
        ("closure", "buttons"), ("type", "skirt"))]
    return out
