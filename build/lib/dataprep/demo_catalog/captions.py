"""Relative captions: the difference between two garments' attributes, in varied phrasings."""

from __future__ import annotations

import numpy as np

from dataprep.demo_catalog.attributes import ATTRIBUTE_NAMES, ATTRIBUTES, COLOURS

_COMPARE = {
    "sleeve": ("has shorter sleeves", "has longer sleeves"),
    "length": ("is shorter", "is longer"),
}
_PHRASES: dict[str, list[str]] = {
    # {v} = target value in words; {r} = reference value in words.
    "colour": [
        "is {v}",
        "is {v} colored",
        "is in {v}",
        "has a {v} color",
        "{v} instead of {r}",
        "is {v} not {r}",
        "change the color to {v}",
        "a {v} one",
        "is a {v} version",
        "should be {v}",
    ],
    "solid": [
        "is solid",
        "is plain",
        "has no pattern",
        "is a solid color",
        "without the {r} pattern",
    ],
    "striped": [
        "is striped",
        "has stripes",
        "with stripes",
        "has a striped pattern",
        "stripes instead of {r}",
    ],
    "dotted": [
        "has polka dots",
        "is dotted",
        "with dots",
        "has a polka dot print",
        "dots instead of {r}",
    ],
    "checked": [
        "is checked",
        "is plaid",
        "has a checked pattern",
        "with gingham checks",
        "checks instead of {r}",
    ],
    "floral": [
        "is floral",
        "has a floral print",
        "with flowers",
        "has a flower pattern",
        "flowers instead of {r}",
    ],
    "sleeveless": ["is sleeveless", "has no sleeves", "without sleeves", "sleeveless"],
    "short": ["has short sleeves", "is short sleeved", "with short sleeves", "short-sleeved"],
    "three-quarter": ["has three-quarter sleeves", "has 3/4 sleeves", "with elbow length sleeves"],
    "long": ["has long sleeves", "is long sleeved", "with long sleeves", "long-sleeved"],
    "round": ["has a round neck", "has a crew neck", "with a round neckline"],
    "v-neck": ["has a v-neck", "has a v neckline", "with a v-neck", "is v-necked"],
    "square": ["has a square neckline", "with a square neck"],
    "boat": ["has a boat neck", "has a wide boat neckline", "with a boat neck"],
    "pointed collar": [
        "has a classic pointed collar",
        "with a pointed collar",
        "has a regular collar",
    ],
    "mandarin collar": ["has a mandarin collar", "has a band collar", "with a stand-up collar"],
    "camp collar": ["has an open camp collar", "with a wide open collar", "has a camp collar"],
    "mini": ["is a mini dress", "is mini length", "is very short"],
    "knee": ["is knee length", "reaches the knee", "is knee-length"],
    "maxi": ["is a maxi dress", "is floor length", "is ankle length"],
    "cropped": ["is cropped", "is a cropped cut", "is crop length"],
    "regular": ["is regular length", "is hip length", "has a regular length"],
    "tunic": ["is tunic length", "is a long tunic", "is long like a tunic"],
    "longline": ["is longline", "is a longline cut", "is extra long"],
}
_PATTERN_WORDS = {
    "solid": "plain",
    "striped": "striped",
    "dotted": "dotted",
    "checked": "checked",
    "floral": "floral",
}
_PATTERN_NOUNS = {
    "solid": "plain fabric",
    "striped": "stripes",
    "dotted": "dots",
    "checked": "checks",
    "floral": "flowers",
}


def _luma(colour: str) -> float:
    r, g, b = COLOURS[colour]
    return (0.299 * r + 0.587 * g + 0.114 * b) / 255.0


def _phrase(category: str, attr: str, ref: str, tgt: str, rng: np.random.Generator) -> str:
    """One phrase that pins down the target value of ``attr`` (never a vague comparative)."""
    options: list[str] = []
    if attr == "colour":
        options = [p.format(v=tgt, r=ref) for p in _PHRASES["colour"]]
        dl = _luma(tgt) - _luma(ref)
        if abs(dl) > 0.25:  # a comparative helps, but the colour is still named
            word = "darker" if dl < 0 else "lighter"
            options += [f"is {word} and {tgt}", f"{word}, {tgt}"]
    elif attr == "pattern":
        for p in _PHRASES[tgt]:
            if "{r}" not in p:
                options.append(p)
            elif tgt == "solid":  # "without the striped pattern"
                options.append(p.format(r=_PATTERN_WORDS[ref]))
            elif ref != "solid":  # "stripes instead of dots"
                options.append(p.format(r=_PATTERN_NOUNS[ref]))
    else:
        options = list(_PHRASES[tgt])
        order = ATTRIBUTES[category][attr]
        if attr in _COMPARE:
            i, k = order.index(ref), order.index(tgt)
            if k == len(order) - 1 and k > i:  # "longer" can only mean the longest value
                options.append(_COMPARE[attr][1])
            if k == 0 and k < i:
                options.append(_COMPARE[attr][0])
    return options[int(rng.integers(len(options)))]


def describe_difference(
    category: str, ref: dict[str, str], tgt: dict[str, str], rng: np.random.Generator
) -> list[str]:
    """Two annotator-style captions, each naming every changed attribute's target value."""
    changed = [a for a in ATTRIBUTE_NAMES if ref[a] != tgt[a]]
    if not 1 <= len(changed) <= 2:
        raise ValueError(f"captions describe 1-2 changes, got {changed}")
    captions: list[str] = []
    for _ in range(2):
        for _attempt in range(20):
            parts = [_phrase(category, a, ref[a], tgt[a], rng) for a in changed]
            if len(parts) == 2 and rng.random() < 0.5:
                parts.reverse()
            joiner = " and " if rng.random() < 0.7 else ", "
            text = joiner.join(parts)
            if text not in captions:
                break
        captions.append(text)
    return captions
