"""Train a type head (or a colour head) on a checkpoint's own features and attach it beside the
heads it has: its vectors are appended to f_ref and f_tar, so the catalog's one inner product
adds ``weight`` times the change of product type (colour family) the words ask for
(model.network.ChangeHead).

    python -m model.type_head --checkpoint CKPT --out OUT
        [--datasets ANN:IMAGES ...] [--weight 0.2] [--hidden 96]
    python -m model.type_head --column colour --checkpoint CKPT --out OUT [--hidden 192]

Why: "as a skirt", "a shirt instead" or "make it a hoodie" ask for another product type, which
the fused space and the kind head's coarse product group hear only in part. A type term that
holds every query to the photo's own type costs a catalog whose relevant sets name their own,
overlapping type labels, and the type trained as one more part of the kind head costs its other
parts (Training, stages 85-88). So the type gets a narrow head of its own, read as a change:
nothing where the words leave the type as the photo has it. It is trained as the kind head is
(`model.kind_head.train_kind_head`: the item side on every training photo's type, the query
side on every training request's target type), with the product group as a second part that
steers the hidden layer and is dropped when the head is attached; everything else in the
checkpoint, a kind head included, is kept bit for bit.

The colour head is the same head over the colour column's families (COLOUR_FAMILIES): the
fused space keeps a reference's colour where the words ask for another ("in red", "not
black"), and about half of the misses' top 10 holds the target's colour; the kind head's
hidden layer knows too little colour to be read for it (Training, the diagnostics after
stage 96; stage 97).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from model.kind_head import (
    COLOUR_COLUMN,
    KIND_COLUMN,
    TYPE_COLUMN,
    KindHeadConfig,
    head_parser,
    load_to_attach,
    read_kind_data,
    train_kind_head,
)
from model.network import ChangeHead, KindHead
from model.retriever import Retriever, with_new_head
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class TypeHeadConfig:
    checkpoint: str = ""  # the checkpoint to attach the head to
    out: str = ""  # the new checkpoint's directory (required, as checkpoint is)
    datasets: list[str] = field(default_factory=lambda: list(KindHeadConfig().datasets))
    column: str = TYPE_COLUMN  # what the head reads as a change: SLOTS' columns
    weight: float = 0.2  # of the type term beside the checkpoint's other terms (0.1: stage 89d)
    hidden: int = 96  # both MLPs' width (24 before stage 97c: all the cap left in float16)
    item_epochs: int = 30  # over every training photo with a type
    query_epochs: int = 10  # over every training request whose photos have types
    seed: int = 0
    threads: int = 2
    cache_dir: str = FEATURE_CACHE_DIR  # backbone and sentence features ('' disables)
    save_dtype: str = ""  # the new checkpoint's storage (model.checkpoint; '': the checkpoint's)


# The network's slot of each column's head (model.config: SLOT_head, SLOT_weight, SLOT_hidden).
SLOTS = {TYPE_COLUMN: "type", COLOUR_COLUMN: "colour"}


def type_part(head: KindHead) -> ChangeHead:
    """The last part of ``head`` (trained on [kinds, types]) as a change head of its own: the
    hidden layers as they are, the output layers' rows of that part."""
    first = sum(head.sizes[:-1])
    out = ChangeHead(head.image_dim, head.asked[0].in_features - head.image_dim,
                     head.sizes[-1], hidden=head.item[0].out_features)
    outputs = tuple(f"{side}.{len(getattr(head, side)) - 1}." for side in ("item", "asked"))
    state = {k: v[first:] if k.startswith(outputs) else v for k, v in head.state_dict().items()}
    out.load_state_dict(state)
    return out.eval()


def with_type_head(retriever: Retriever, head: ChangeHead, types: Sequence[str],
                   weight: float, column: str = TYPE_COLUMN) -> Retriever:
    """``retriever`` with ``head`` attached at ``weight`` in the slot of ``column`` (its values
    named in the meta); a head it already has there is replaced."""
    slot = SLOTS[column]
    cfg = dataclasses.replace(retriever.cfg, **{f"{slot}_head": len(types),
                                                f"{slot}_weight": weight,
                                                f"{slot}_hidden": head.item[0].out_features})
    headed = with_new_head(retriever, cfg, f"{slot}_head.", head.state_dict())
    headed.meta[f"{slot}_head"] = {"weight": weight, "values" if slot != "type" else "types":
                                   list(types)}
    return headed


def attach(cfg: TypeHeadConfig) -> Path:
    """Train the head of ``cfg`` and write the checkpoint with it attached."""
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    retriever = load_to_attach(cfg.checkpoint, cfg.save_dtype)
    data = read_kind_data(cfg.datasets, [cfg.column])
    trained = train_kind_head(retriever, data, KindHeadConfig(
        datasets=cfg.datasets, attributes=[cfg.column], hidden=cfg.hidden,
        item_epochs=cfg.item_epochs, query_epochs=cfg.query_epochs, seed=cfg.seed,
        threads=cfg.threads, cache_dir=cfg.cache_dir))
    values = data.attributes[cfg.column]
    headed = with_type_head(retriever, type_part(trained), values, cfg.weight, cfg.column)
    headed.meta[f"{SLOTS[cfg.column]}_head"].update(datasets=list(cfg.datasets),
                                                    from_checkpoint=retriever.fingerprint)
    path = headed.save(cfg.out)
    logger.info("wrote %s (fingerprint %s) in %.0f s: %s with a %d-value %s head at weight %g",
                cfg.out, headed.fingerprint, time.perf_counter() - t0, cfg.checkpoint,
                len(values), SLOTS[cfg.column], cfg.weight)
    return path


def main(argv: Sequence[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    d = TypeHeadConfig()
    p = head_parser("python -m model.type_head", __doc__, d,
                    f"{KIND_COLUMN} and --column columns", "type (colour) term")
    p.add_argument("--column", default=d.column, choices=sorted(SLOTS),
                   help="what the head reads as a change: the product type or the colour "
                   "family (default: %(default)s)")
    args = p.parse_args(argv)
    return attach(dataclasses.replace(d, **vars(args)))


if __name__ == "__main__":
    main()
