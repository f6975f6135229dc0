"""Feedback queries over H&M articles: what each relation asks for, who satisfies it, and
which items look right but do not (hard negatives).

A :class:`Query` is a reference, the changes asked for (:class:`~dataprep.feedback.Change`),
one target and the *relevant set*: every article of the same split that satisfies the request.
The rules, so that a list of pale items of the right type cannot pass for understanding
"lighter":

* **colour relations** (lighter / darker by measured L* with a margin; brighter / more muted
  from H&M's Bright vs Dusty): other colourways of the reference's product code; in a
  catalog without colourway links (``Catalog(..., colourways=False)``: fashion-products)
  items of the reference's type in another named colour that agree on the rest, a broader set;
* **gender** (a catalog that names it): every relevant item and every candidate of the
  type-change and multi-change queries is of the reference's gender;
* **garment relations** (shorter / longer, sleeve length, looser / tighter, plainer / busier):
  articles of the reference's product type that meet the relation and agree with the
  reference on every other attribute both descriptions name (colour included);
* **negations** ("without sleeves", "no hood", "remove the print", "not in black", "anything
  but denim"): targets lack the part or value on positive evidence only (sleeveless or
  straps named; another neckline named; a solid colour; another material named; another
  colour group), and agree with the reference on the rest as above ("not in <colour>": other
  colourways of the product); an article whose value is unknown is in neither the relevant
  set nor the negatives;
* **multi-change**: two to four changes between garments of one product type, each written
  as a relative, absolute or negated change, every one of them met by each relevant article;
* **type change**: one to four changes between garments of one product group, the product
  type among them ("as a blouse, with long sleeves" of a vest top): relevant articles are of
  the target's type, meet every other change and agree with the reference on the rest; hard
  negatives kept the reference's type (the words asked for another one) in the target's
  colour or with every other change made;
* **colourway**: another colourway of the product, for every product group (shoes, bags,
  underwear and accessories too), the mixed catalog's queries.

Hard negatives (training): articles that look like a good answer and are not: for "lighter"
the product's other colourways that are not lighter and garments of the reference's type and
colour; for "without sleeves" garments of the type and colour with sleeves and, from other
product groups, items of the colour such as gloves; for every query, items of another product
group in the target's colour (staying in kind in a mixed catalog).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dataprep.feedback.attributes import (
    FIT_ORDER,
    LENGTH_ORDER,
    PATTERNED,
    SLEEVE_ORDER,
    HMItem,
)
from dataprep.feedback.phrasing import Change, heldout_markers_in
from dataprep.hm_triplets import ATTRIBUTES

# Bench rows: relation -> row name (the rows).
ROWS = {"lighter": "lighter", "darker": "darker", "brighter": "brighter",
        "more muted": "more muted", "shorter": "shorter", "longer": "longer",
        "shorter sleeves": "sleeve length", "longer sleeves": "sleeve length",
        "looser": "looser/tighter", "tighter": "looser/tighter",
        "plainer": "plainer/busier", "busier": "plainer/busier",
        "without sleeves": "negation", "no hood": "negation", "remove pattern": "negation",
        "not colour": "negation", "not material": "negation",
        "multi-change": "multi-change", "type change": "type change", "colourway": "colourway"}
KINDS = {"colourway": "colourway", "multi-change": "multi", "type change": "type", **{
    r: "negation" for r, row in ROWS.items() if row == "negation"}}
NEGATED_MATERIALS = ("denim", "satin", "lace", "faux leather", "corduroy", "linen", "chiffon",
                     "velour", "knit")
HOOD_TYPES = {"Hoodie": ("Hoodie", "Sweater"), "Sweater": ("Sweater", "Hoodie")}
SLEEVELESS_TYPES = {"T-shirt": ("T-shirt", "Vest top"), "Top": ("Top", "Vest top"),
                    "Vest top": ("Vest top", "Top", "T-shirt")}


@dataclass(frozen=True)
class RelationConfig:
    lightness_margin: float = 12.0  # L* units between reference and target (near-ties unused)
    train_targets: int = 3  # targets drawn per (reference, relation) for training
    multi_train_targets: int = 3  # multi-change targets per training reference
    multi_val_targets: int = 1
    type_train_targets: int = 1  # type-change targets per training garment
    type_candidates: int = 400  # garments of the group tried per reference (drawn at random)
    negatives: int = 8  # relation hard negatives kept per query
    other_kind_negatives: int = 4  # items of another product group in the target's colour
    max_relevant: int = 500  # relevant lists are cut (with the target kept) beyond this
    # Garment relations and part negations also keep the colour (the reference's colour
    # group); False lets a shorter dress of another colour count as "shorter".
    keep_colour: bool = True


@dataclass
class Query:
    relation: str  # a key of ROWS
    reference: HMItem
    target: HMItem
    changes: list[Change]
    relevant: list[str]
    negatives: list[str] = field(default_factory=list)

    @property
    def row(self) -> str:
        return ROWS[self.relation]

    @property
    def kind(self) -> str:
        """colourway / relative / negation / multi: the val category of the query."""
        return KINDS.get(self.relation, "relative")


class Catalog:
    """Every article with the indexes the relations need. ``colourways``: the catalog links a
    product's colourways (H&M's product codes); without (fashion-products) the colour relations
    draw from every item of the reference's type and gender instead."""

    def __init__(self, items: Sequence[HMItem], lightness: dict[str, float],
                 colourways: bool = True):
        self.items = list(items)
        self.linked_colourways = colourways
        self.by_id = {i.id: i for i in self.items}
        self.lightness = lightness
        self.by_code: dict[str, list[HMItem]] = defaultdict(list)
        self.by_type: dict[tuple[str, str | None, str], list[HMItem]] = defaultdict(list)
        self.by_colour: dict[tuple[str, str | None], list[HMItem]] = defaultdict(list)
        for i in self.items:
            self.by_code[i.product_code].append(i)
            self.by_type[(i.split, i.gender, i.product_type)].append(i)
            self.by_colour[(i.split, i.colour)].append(i)

    def same_type(self, ref: HMItem, types: Sequence[str] | None = None) -> list[HMItem]:
        """Articles of the reference's split, gender and type (or ``types``), other product
        codes."""
        return [c for t in (types or (ref.product_type,))
                for c in self.by_type[(ref.split, ref.gender, t)]
                if c.product_code != ref.product_code]

    def colourways(self, ref: HMItem) -> list[HMItem]:
        """The product's other colourways with a known colour other than the reference's."""
        return [c for c in self.by_code[ref.product_code]
                if c.id != ref.id and c.colour and c.colour != ref.colour]

    def other_colours(self, ref: HMItem) -> list[HMItem]:
        """Candidates of a colour relation: the product's ``colourways`` where the catalog
        links them, else items of the reference's type and gender with a known colour other
        than the reference's."""
        if self.linked_colourways:
            return self.colourways(ref)
        return [c for c in self.same_type(ref) if c.colour and c.colour != ref.colour]

    def other_kind(self, item: HMItem, rng: np.random.Generator, n: int) -> list[str]:
        """Up to n items of another product group in ``item``'s colour."""
        if not item.colour or n <= 0:
            return []
        pool = [c.id for c in self.by_colour[(item.split, item.colour)] if c.group != item.group]
        return _sample(pool, n, rng)


def agrees(ref: HMItem, cand: HMItem, skip: Iterable[str]) -> bool:
    """True when every attribute both name, other than ``skip``, has one value (the gender
    included)."""
    skip = set(skip)
    a, b = ref.attributes, cand.attributes
    if ref.gender and cand.gender and ref.gender != cand.gender:
        return False
    return all(a[k] == b[k] for k in ATTRIBUTES if k not in skip and k in a and k in b)


def _sample(pool: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    if len(pool) <= n:
        return list(pool)
    return [pool[int(k)] for k in sorted(rng.choice(len(pool), size=n, replace=False))]


def _rank(order: Sequence[str], value: str | None) -> int | None:
    return order.index(value) if value in order else None


# --------------------------------------------------------------------------- relations
# Each relation: (name, change, does a candidate meet it given the reference) per attribute.

@dataclass(frozen=True)
class GarmentRelation:
    name: str
    attribute: str  # the attribute it orders
    order: tuple[str, ...]
    direction: int  # -1: the target ranks lower (shorter, tighter), +1: higher
    change: Change

    def meets(self, ref: HMItem, cand: HMItem) -> bool:
        r = _rank(self.order, ref.attributes.get(self.attribute))
        c = _rank(self.order, cand.attributes.get(self.attribute))
        return r is not None and c is not None and (c - r) * self.direction > 0

    def opposite(self, ref: HMItem, cand: HMItem) -> bool:
        """The candidate names the attribute and fails the relation (a hard negative)."""
        r = _rank(self.order, ref.attributes.get(self.attribute))
        c = _rank(self.order, cand.attributes.get(self.attribute))
        return r is not None and c is not None and (c - r) * self.direction <= 0


PATTERN_ORDER = ("plain", "patterned")  # an item's pattern rank: see pattern_rank

GARMENT_RELATIONS = (
    GarmentRelation("shorter", "length", LENGTH_ORDER, -1, Change("length", "relative", "shorter")),
    GarmentRelation("longer", "length", LENGTH_ORDER, +1, Change("length", "relative", "longer")),
    GarmentRelation("shorter sleeves", "sleeve", SLEEVE_ORDER, -1,
                    Change("sleeve", "relative", "shorter")),
    GarmentRelation("longer sleeves", "sleeve", SLEEVE_ORDER, +1,
                    Change("sleeve", "relative", "longer")),
    GarmentRelation("looser", "fit", FIT_ORDER, +1, Change("fit", "relative", "looser")),
    GarmentRelation("tighter", "fit", FIT_ORDER, -1, Change("fit", "relative", "tighter")),
    GarmentRelation("plainer", "pattern_rank", PATTERN_ORDER, -1,
                    Change("pattern", "relative", "plainer")),
    GarmentRelation("busier", "pattern_rank", PATTERN_ORDER, +1,
                    Change("pattern", "relative", "busier")),
)


def with_pattern_rank(item: HMItem) -> HMItem:
    """The item with "pattern_rank" (plain / patterned) among its attributes, from H&M's
    graphical appearance (textures such as denim or melange get none)."""
    rank = {False: "plain", True: "patterned"}.get(item.patterned)
    if rank is None:
        return item
    return HMItem(**{**item.__dict__, "attributes": {**item.attributes, "pattern_rank": rank}})


def _skip(attribute: str, cfg: RelationConfig) -> set[str]:
    """Attributes a relation leaves out of the agreement: its own (and pattern for the
    pattern rank, whose value it changes; colour unless cfg.keep_colour)."""
    skip = {attribute, "pattern"} if attribute == "pattern_rank" else {attribute}
    return skip if cfg.keep_colour else skip | {"colour"}


def colour_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator
                   ) -> list[Query]:
    """lighter / darker (measured L*, margin) and brighter / more muted (Bright vs Dusty)
    among a product's colourways."""
    out = []
    light = cat.lightness
    tests: dict[str, Callable[[HMItem, HMItem], bool]] = {
        "lighter": lambda r, c: light[c.id] - light[r.id] >= cfg.lightness_margin,
        "darker": lambda r, c: light[r.id] - light[c.id] >= cfg.lightness_margin,
        "brighter": lambda r, c: "Dusty" in r.colour_value and c.colour_value == "Bright",
        "more muted": lambda r, c: r.colour_value == "Bright" and "Dusty" in c.colour_value,
    }
    slots = {"lighter": "lightness", "darker": "lightness", "brighter": "saturation",
             "more muted": "saturation"}
    for ref in cat.items:
        ways = [c for c in cat.other_colours(ref) if agrees(ref, c, {"colour"})]
        for name, test in tests.items():
            usable = ways
            if slots[name] == "lightness":
                if ref.id not in light:
                    continue
                usable = [c for c in ways if c.id in light]
            good = [c for c in usable if test(ref, c)]
            if not good:
                continue
            bad = [c.id for c in usable if not test(ref, c)]
            bad += [c.id for c in cat.same_type(ref) if ref.colour and c.colour == ref.colour]
            out += _queries(name, ref, good, [Change(slots[name], "relative", name)],
                            bad, cat, cfg, rng)
    return out


def garment_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator
                    ) -> list[Query]:
    """Length, sleeve length, fit and pattern relations within a product type."""
    out = []
    ranked = {i.id: with_pattern_rank(i) for i in cat.items if i.garment}
    for rel in GARMENT_RELATIONS:
        skip = _skip(rel.attribute, cfg)
        for ref in ranked.values():
            if rel.attribute not in ref.attributes:
                continue
            pool = [ranked[c.id] for c in cat.same_type(ref) if c.id in ranked]
            pool = [c for c in pool if agrees(ref, c, skip)]
            good = [c for c in pool if rel.meets(ref, c)]
            if good:
                bad = [c.id for c in pool if rel.opposite(ref, c)]
                out += _queries(rel.name, ref, good, [rel.change], bad, cat, cfg, rng)
    return out


def negation_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator
                     ) -> list[Query]:
    """Without sleeves, no hood, remove the pattern, not in <colour>, anything but
    <material>."""
    out = []
    for ref in cat.items:
        a = ref.attributes
        if ref.garment and a.get("sleeve") in SLEEVE_ORDER[1:]:
            pool = cat.same_type(ref, SLEEVELESS_TYPES.get(ref.product_type))
            good = [c for c in pool if c.attributes.get("sleeve") == "sleeveless"
                    and agrees(ref, c, _skip("sleeve", cfg))]
            bad = [c.id for c in pool if c.attributes.get("sleeve") in SLEEVE_ORDER[1:]
                   and c.colour == ref.colour]
            bad += [c.id for c in cat.by_colour[(ref.split, ref.colour)]
                    if c.product_type in ("Gloves", "Socks", "Underwear Tights", "Scarf")]
            out += _queries("without sleeves", ref, good, [Change("sleeve", "negation",
                                                                  "sleeves")],
                            bad, cat, cfg, rng)
        if ref.garment and a.get("neckline") == "hood":
            pool = cat.same_type(ref, HOOD_TYPES.get(ref.product_type))
            good = [c for c in pool if c.attributes.get("neckline") not in (None, "hood")
                    and agrees(ref, c, _skip("neckline", cfg))]
            bad = [c.id for c in pool if c.attributes.get("neckline") == "hood"]
            out += _queries("no hood", ref, good, [Change("hood", "negation", "hood")], bad,
                            cat, cfg, rng)
        if ref.garment and ref.appearance in PATTERNED:
            pool = cat.same_type(ref)
            good = [c for c in pool if c.patterned is False
                    and agrees(ref, c, _skip("pattern", cfg))]
            bad = [c.id for c in pool if c.patterned and c.colour == ref.colour]
            out += _queries("remove pattern", ref, good,
                            [Change("pattern", "negation", PATTERNED[ref.appearance])], bad,
                            cat, cfg, rng)
        if ref.colour:
            good = [c for c in cat.other_colours(ref) if agrees(ref, c, {"colour"})]
            bad = [c.id for c in cat.same_type(ref) if c.colour == ref.colour]
            out += _queries("not colour", ref, good, [Change("colour", "negation", ref.colour)],
                            bad, cat, cfg, rng)
        if ref.garment and a.get("material") in NEGATED_MATERIALS:
            pool = cat.same_type(ref)
            good = [c for c in pool if c.attributes.get("material") not in (None, a["material"])
                    and agrees(ref, c, _skip("material", cfg) | {"pattern"})]
            bad = [c.id for c in pool if c.attributes.get("material") == a["material"]]
            out += _queries("not material", ref, good,
                            [Change("material", "negation", a["material"])], bad, cat, cfg, rng)
    return out


def colourway_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator
                      ) -> list[Query]:
    """Another colourway of the product, named by its colour: every product group."""
    out = []
    for ref in cat.items:
        by_colour: dict[str, list[HMItem]] = defaultdict(list)
        for c in cat.colourways(ref):
            by_colour[c.colour].append(c)
        colours = sorted(by_colour)
        if not colours:
            continue
        k = len(colours) if ref.split == "train" else 1
        for j in rng.permutation(len(colours))[:min(k, cfg.train_targets)]:
            colour = colours[int(j)]
            good = by_colour[colour]
            bad = [c.id for c in cat.same_type(ref) if c.colour == colour]
            out += _queries("colourway", ref, good,
                            [Change("colour", "absolute", colour, ref.colour)], bad, cat,
                            cfg, rng, targets=1)
    return out


def _queries(name: str, ref: HMItem, good: Sequence[HMItem], changes: list[Change],
             bad: Sequence[str], cat: Catalog, cfg: RelationConfig,
             rng: np.random.Generator, targets: int | None = None,
             target: HMItem | None = None) -> list[Query]:
    """Queries of one (reference, request): one target on val, up to ``train_targets`` on
    train (or the given ``target``), all sharing the relevant set and drawing their own
    negatives."""
    if not good:
        return []
    n = targets or (cfg.train_targets if ref.split == "train" else 1)
    relevant_ids = [c.id for c in good]
    exclude = set(relevant_ids) | {ref.id}
    bad = [b for b in dict.fromkeys(bad) if b not in exclude]
    out = []
    chosen = [target] if target is not None else [good[int(k)] for k in
                                                  rng.permutation(len(good))[:n]]
    for target in chosen:
        relevant = relevant_ids
        if len(relevant) > cfg.max_relevant:
            relevant = [target.id] + _sample([i for i in relevant if i != target.id],
                                             cfg.max_relevant - 1, rng)
        negatives = _sample(bad, cfg.negatives, rng)
        negatives += [i for i in cat.other_kind(target, rng, cfg.other_kind_negatives)
                      if i not in exclude]
        out.append(Query(name, ref, target, list(changes), relevant, negatives))
    return out


# --------------------------------------------------------------------------- multi-change

def change_between(attribute: str, ref: HMItem, tgt: HMItem, rng: np.random.Generator
                   ) -> tuple[Change, Callable[[HMItem], bool]] | None:
    """How a shopper could ask for ``tgt``'s value of ``attribute`` (one of ATTRIBUTES, or
    "type": the product type) starting from ``ref``, and the test a candidate must pass for
    it; None when it cannot be said."""
    if attribute == "type":
        r, t = ref.product_type.lower(), tgt.product_type.lower()
        if not r or not t or r == t:
            return None
        return (Change("type", "absolute", t, r if rng.random() < 0.2 else None),
                lambda c, t=t: c.product_type.lower() == t)
    r, t = ref.attributes.get(attribute), tgt.attributes.get(attribute)
    if r is None or t is None or r == t:
        return None
    orders = {"length": LENGTH_ORDER, "sleeve": SLEEVE_ORDER, "fit": FIT_ORDER}
    if attribute == "sleeve" and t == "sleeveless" and rng.random() < 0.5:
        return (Change("sleeve", "negation", "sleeves"),
                lambda c: c.attributes.get("sleeve") == "sleeveless")
    if attribute in orders:
        order = orders[attribute]
        if r not in order or t not in order:
            return None
        up = order.index(t) > order.index(r)
        words = {"length": ("shorter", "longer"), "sleeve": ("shorter", "longer"),
                 "fit": ("tighter", "looser")}[attribute]
        rank_r = order.index(r)

        def meets(c: HMItem, attribute=attribute, order=order, up=up, rank_r=rank_r) -> bool:
            v = c.attributes.get(attribute)
            return v in order and (order.index(v) > rank_r if up else order.index(v) < rank_r)
        return Change(attribute, "relative", words[up]), meets
    if attribute == "neckline" and r == "hood" and rng.random() < 0.5:
        return (Change("hood", "negation", "hood"),
                lambda c: c.attributes.get("neckline") not in (None, "hood"))
    if attribute == "pattern" and t == "plain" and ref.appearance in PATTERNED:
        return (Change("pattern", "negation", PATTERNED[ref.appearance]),
                lambda c: c.attributes.get("pattern") == "plain")
    return (Change(attribute, "absolute", t, r if rng.random() < 0.2 else None),
            lambda c, attribute=attribute, t=t: c.attributes.get(attribute) == t)


def _differing(ref: HMItem, cand: HMItem) -> tuple[list[str], list[str]]:
    """The attributes both articles name, and those of them on which they differ; a gender
    both name counts as a shared attribute kept (same-type pools share the gender)."""
    shared = [a for a in ATTRIBUTES if a in ref.attributes and a in cand.attributes]
    changed = [a for a in shared if ref.attributes[a] != cand.attributes[a]]
    kept_gender = ["gender"] if ref.gender and ref.gender == cand.gender else []
    return shared + kept_gender, changed


def _request(ref: HMItem, tgt: HMItem, attributes: Sequence[str], rng: np.random.Generator
             ) -> tuple[list[Change], list[Callable[[HMItem], bool]]] | None:
    """One request for ``tgt``'s value of every one of ``attributes``: its changes in a random
    order, and the tests a candidate must pass, in the order of ``attributes``; None when one
    of them cannot be said."""
    said = [change_between(a, ref, tgt, rng) for a in attributes]
    if any(s is None for s in said):
        return None
    order = rng.permutation(len(said))
    return [said[int(k)][0] for k in order], [s[1] for s in said]


def multi_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator) -> list[Query]:
    """Two to four changes in one request between garments of one product type."""
    out = []
    for ref in cat.items:
        if not ref.garment:
            continue
        by_changed: dict[tuple[str, ...], list[HMItem]] = defaultdict(list)
        for c in cat.same_type(ref):
            shared, changed = _differing(ref, c)
            if 2 <= len(changed) <= 4 and len(changed) < len(shared):
                by_changed[tuple(changed)].append(c)
        keys = sorted(by_changed)
        n = cfg.multi_train_targets if ref.split == "train" else cfg.multi_val_targets
        for j in rng.permutation(len(keys))[:n]:
            changed = keys[int(j)]
            target = by_changed[changed][int(rng.integers(len(by_changed[changed])))]
            request = _request(ref, target, changed, rng)
            if request is None:
                continue
            changes, tests = request
            good = [c for c in cat.same_type(ref) if all(t(c) for t in tests)
                    and agrees(ref, c, changed)]
            bad = [c.id for c in cat.same_type(ref) if c.colour == ref.colour
                   and agrees(ref, c, changed) and not all(t(c) for t in tests)]
            out += _queries("multi-change", ref, good, changes, bad, cat, cfg, rng,
                            target=target)
    return out


def type_queries(cat: Catalog, cfg: RelationConfig, rng: np.random.Generator) -> list[Query]:
    """One to four changes in one request between garments of one product group, the product
    type among them: what a shopper asks when the garment should become another kind
    ("turned into a cardigan"), which the same-type relations never show."""
    by_group: dict[tuple[str, str | None, str], list[HMItem]] = defaultdict(list)
    for c in cat.items:
        if c.garment:
            by_group[(c.split, c.gender, c.group)].append(c)
    out = []
    for ref in cat.items:
        if not ref.garment:
            continue
        pool = by_group[(ref.split, ref.gender, ref.group)]
        n = cfg.type_train_targets if ref.split == "train" else 1
        types: set[str] = set()
        for k in rng.permutation(len(pool))[:cfg.type_candidates]:
            c = pool[int(k)]
            if c.product_type == ref.product_type or c.product_type in types or (
                    ref.split == "train" and _names_heldout_word(ref, c)):
                continue
            shared, changed = _differing(ref, c)
            if len(changed) > 3 or len(changed) >= len(shared):
                continue
            request = _request(ref, c, ("type", *changed), rng)
            if request is None:
                continue
            changes, tests = request
            good = [g for g in cat.same_type(ref, (c.product_type,))
                    if all(t(g) for t in tests) and agrees(ref, g, changed)]
            kept_type = [b.id for b in cat.same_type(ref) if agrees(ref, b, changed) and (
                b.colour == c.colour or all(t(b) for t in tests[1:]))]  # all but the type
            out += _queries("type change", ref, good, changes, kept_type, cat, cfg, rng,
                            target=c)
            types.add(c.product_type)
            if len(types) == n:
                break
    return out


def _names_heldout_word(*items: HMItem) -> bool:
    """A product type with a word of the held-out phrasings ("Tailored Waistcoat"): no
    training caption may name it."""
    return any(heldout_markers_in(i.product_type.lower()) for i in items)


def all_queries(cat: Catalog, cfg: RelationConfig, seed: int = 0) -> list[Query]:
    """Every query of every kind, deterministic for (catalog, cfg, seed): each kind draws from
    its own generator, so adding a kind leaves the others' queries as they were."""
    out = []
    for k, build in enumerate((colour_queries, garment_queries, negation_queries,
                               multi_queries, colourway_queries, type_queries)):
        out += build(cat, cfg, np.random.default_rng([seed, k]))
    return out
