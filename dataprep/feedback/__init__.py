"""Shopper feedback as people say it: relative, negated, several changes, any phrasing.

The shared phrasing generator (this package's public face, reused by the conversation
simulator):

    from dataprep.feedback import Change, phrase, join, TRAIN_FAMILIES, HELDOUT_FAMILIES
    rng = numpy.random.default_rng(0)
    phrase(Change("lightness", "relative", "lighter"), rng, "train")   # "make it lighter"
    join([Change("length", "relative", "shorter"),
          Change("colour", "absolute", "red")], rng, "heldout")        # "I'd prefer it ..."

Rooms: ``phrasing`` (the generator and its families), then the H&M feedback triplets:
``attributes`` (articles and parsed attributes), ``lightness`` (measured L* of the garment),
``relations`` (relative, negation, multi-change and mixed-catalog queries with relevant sets
and hard negatives), ``triplets`` (the FashionIQ-format writer and ``python -m
dataprep.feedback``). The second catalog's val-only yardstick: ``products`` (fashion-products
rows as the same items) and ``yardstick`` (its per-row query counts and relevant-set sizes),
``python -m dataprep.feedback --catalog products ...``.
"""

from dataprep.feedback.attributes import HMItem, read_items
from dataprep.feedback.phrasing import (
    FAMILIES,
    HELDOUT_FAMILIES,
    HELDOUT_MARKERS,
    RELATIVE,
    TRAIN_FAMILIES,
    Change,
    Family,
    example_changes,
    fragment,
    heldout_markers_in,
    join,
    phrase,
)
from dataprep.feedback.relations import ROWS as FEEDBACK_ROWS
from dataprep.feedback.relations import change_between

__all__ = ["FAMILIES", "FEEDBACK_ROWS", "HELDOUT_FAMILIES", "HELDOUT_MARKERS", "RELATIVE",
           "TRAIN_FAMILIES", "Change", "Family", "HMItem", "change_between", "example_changes",
           "fragment", "heldout_markers_in", "join", "phrase", "read_items"]
