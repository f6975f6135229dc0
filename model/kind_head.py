"""Train a kind head on a checkpoint's own features and attach it: its vectors are appended to
f_ref and f_tar, so the catalog's one inner product adds ``weight`` times the chance that the
item is of the kind the query asks for (model.network.KindHead).

    python -m model.kind_head --checkpoint CKPT --datasets ANN:IMAGES ... --out OUT \
        [--attributes pattern sleeve length fit --attribute-weights 0.15 0.1 0.1 0.1]
    python -m model.kind_head --checkpoint CKPT --out OUT --keep-head --attribute-changes 2 0 0 0

Why: with garments, shoes, bags, underwear and accessories in one gallery and no category
filter, a garment query's top 10 holds items of neighbouring kinds that share its colour; the
residual paths moved that only at the attribute rows' cost when one space had to hold both
(Training, stages 46-50). A separate, coarse answer to "which kind" (the product group:
upper body, lower body, full body, shoes, bags, accessories, underwear, socks, swimwear,
nightwear, other) leaves the garment space alone. The kinds are read from the datasets'
``product_group`` column (both feedback folders have one, in the same vocabulary); a dataset
without it adds nothing. The item side reads the pooled photo; the query side the pooled
reference and the frozen sentence embedding, trained on the datasets' training requests to name
the *target's* kind, so a request for another kind moves it. With ``--attributes`` the same two
MLPs also name the pattern, sleeve, length and fit (the columns of those names), each term at
its own weight: "plainer", "without sleeves" or "looser" ask for a value that the fused space
blurs among look-alikes (Training, stages 83-84).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dataprep import dataset_paths, eval_caption, load_fashioniq, read_metadata_column
from model.checkpoint import SAVE_DTYPES
from model.feature_cache import extract_features
from model.network import KindHead
from model.retriever import Retriever, load_retriever, stored_as, with_new_head
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

KIND_COLUMN = "product_group"
TYPE_COLUMN = "product_type"
COLOUR_COLUMN = "colour"
# The colour column's words (both catalogs': "dark blue", "navy blue", "greenish khaki",
# "bronze/copper") by family, read from a value's last word that names one; light / dark are
# the lightness relations' business, not the family's.
COLOUR_FAMILIES = {
    "black": ("black",), "white": ("white", "cream", "transparent"),
    "grey": ("grey", "charcoal", "melange"), "metallic": ("gold", "silver", "bronze", "copper"),
    "turquoise": ("turquoise", "teal"), "blue": ("blue", "navy"),
    "green": ("green", "khaki", "olive"), "red": ("red", "maroon", "burgundy", "rust"),
    "pink": ("pink", "magenta", "peach", "nude"), "purple": ("purple", "lavender", "mauve"),
    "yellow": ("yellow", "mustard"), "orange": ("orange",),
    "brown": ("beige", "brown", "tan", "coffee", "mushroom"),
}
FAMILY_OF_WORD = {word: family for family, words in COLOUR_FAMILIES.items() for word in words}
# Attributes the head may also read, by their metadata column, each in the words a change
# names: a pattern is plain, patterned (a print, stripes, checks, dots, embroidery, ...) or a
# texture that is neither (denim, melange, metallic), as the plainer / busier relation reads it.
ATTRIBUTES = ("pattern", "sleeve", "length", "fit")
TEXTURES = frozenset({"denim", "melange", "metallic"})
NOT_APPLICABLE = "n/a"  # a product type no item of which has the attribute in its dataset


def attribute_value(attribute: str, value: str) -> str:
    """The value a head learns: the metadata's, but patterns read as plain / patterned /
    texture and colours as their family ("" where no word names one: unknown)."""
    if attribute == "pattern" and value != NOT_APPLICABLE:
        return "plain" if value == "plain" else "texture" if value in TEXTURES else "patterned"
    if attribute == COLOUR_COLUMN:
        words = [FAMILY_OF_WORD[w] for w in re.findall(r"[a-z]+", value.lower())
                 if w in FAMILY_OF_WORD]
        return words[-1] if words else ""
    return value


@dataclass
class KindHeadConfig:
    checkpoint: str = ""  # the checkpoint to attach the head to
    out: str = ""  # the new checkpoint's directory (required, as checkpoint is)
    datasets: list[str] = field(default_factory=lambda: [
        "data/hm_feedback:../shared/data/hm/images",
        "data/products_feedback_train:../shared/data/fashion-products/images"])
    weight: float = 0.15  # of the kind term beside FashionVLP's cosine (cos + w_c cos_c + w BC)
    # Attributes read beside the kind (of ATTRIBUTES), and the weight of each one's coefficient
    # (one for all, or one per attribute).
    attributes: list[str] = field(default_factory=list)
    attribute_weights: list[float] = field(default_factory=lambda: [0.1])
    hidden: int = 128  # the width of both MLPs
    item_epochs: int = 30  # over every training photo with a kind
    query_epochs: int = 10  # over every training request whose photos have kinds
    batch_size: int = 256
    lr: float = 1e-3
    label_smoothing: float = 0.05
    seed: int = 0
    threads: int = 2
    cache_dir: str = FEATURE_CACHE_DIR  # backbone and sentence features ('' disables)
    save_dtype: str = ""  # the new checkpoint's storage (model.checkpoint; '': the checkpoint's)


@dataclass
class KindData:
    """The training photos and requests of every dataset with a kind column; the labels of
    each part (the kind first, then each attribute) as positions in its value names, -1 where
    unknown."""

    kinds: list[str]  # sorted names; a class index is a position here
    item_ids: list[str]
    item_kinds: list[int]
    requests: list[tuple[str, str, int]]  # (reference id, words, the target's kind)
    paths: dict[str, Path]
    attributes: dict[str, list[str]] = field(default_factory=dict)  # name -> sorted values
    item_attributes: list[list[int]] = field(default_factory=list)  # per item, per attribute
    request_attributes: list[list[int]] = field(default_factory=list)  # the target's

    @property
    def sizes(self) -> list[int]:
        return [len(self.kinds), *(len(v) for v in self.attributes.values())]

    def item_labels(self) -> list[list[int]]:
        return [[k, *a] for k, a in zip(self.item_kinds, self.item_attributes or
                                        [[]] * len(self.item_kinds), strict=True)]

    def request_labels(self) -> list[list[int]]:
        return [[r[2], *a] for r, a in zip(self.requests, self.request_attributes or
                                           [[]] * len(self.requests), strict=True)]


def read_attributes(annotations: str, attributes: Sequence[str]) -> dict[str, dict[str, str]]:
    """attribute -> id -> value of one dataset (attribute_value's words): an item of a product
    type of which no item names the attribute gets NOT_APPLICABLE (trousers have no sleeve),
    one whose own row is silent gets nothing (unknown, left out of training)."""
    types = read_metadata_column(annotations, (TYPE_COLUMN,))
    out = {}
    for name in attributes:
        given = {i: v for i, v in read_metadata_column(annotations, (name,)).items() if v}
        if not given:
            continue  # the dataset does not record it
        named = {types.get(i) for i in given}
        values = {i: NOT_APPLICABLE for i, t in types.items() if t and t not in named}
        read = {i: attribute_value(name, v) for i, v in {**values, **given}.items()}
        out[name] = {i: v for i, v in read.items() if v}
    return out


def read_kind_data(datasets: Sequence[str], attributes: Sequence[str] = ()) -> KindData:
    kind_of: dict[str, str] = {}
    value_of: dict[str, dict[str, str]] = {a: {} for a in attributes}
    paths: dict[str, Path] = {}
    requests: list[tuple[str, str, str]] = []
    for text in datasets:
        annotations, images = dataset_paths(text)
        kinds = read_metadata_column(annotations, (KIND_COLUMN,))
        if not kinds:
            logger.warning("%s has no %s column: it adds nothing", annotations, KIND_COLUMN)
            continue
        split = load_fashioniq(annotations, images, "train")
        known = {i: p for i, p in split.image_paths.items() if kinds.get(i)}
        paths.update(known)
        kind_of.update({i: kinds[i] for i in known})
        for name, values in read_attributes(annotations, attributes).items():
            value_of[name].update({i: v for i, v in values.items() if i in known})
        requests += [(t.candidate, eval_caption(t.captions), t.target)
                     for t in split.triplets if t.candidate in known and kinds.get(t.target)]
    names = sorted(set(kind_of.values()))
    if len(names) < 2:
        raise ValueError(f"fewer than two kinds in the {KIND_COLUMN} column of {datasets}")
    index = {n: k for k, n in enumerate(names)}
    values = {a: sorted(set(v.values())) for a, v in value_of.items()}
    if any(len(v) < 2 for v in values.values()):
        raise ValueError(f"an attribute without two values in {datasets}: {values}")

    def labels(item: str) -> list[int]:
        return [values[a].index(value_of[a][item]) if item in value_of[a] else -1
                for a in attributes]

    ids = sorted(kind_of)
    return KindData(names, ids, [index[kind_of[i]] for i in ids],
                    [(r, words, index[kind_of[t]]) for r, words, t in requests], paths,
                    values, [labels(i) for i in ids], [labels(t) for _, _, t in requests])


def _fit(net: torch.nn.Module, inputs, labels: torch.Tensor, sizes: Sequence[int],
         epochs: int, cfg: KindHeadConfig, desc: str) -> None:
    """The sum over parts of the cross-entropy of each part's logits (known labels only),
    with AdamW; ``labels`` is (N, parts)."""
    opt = torch.optim.AdamW(net.parameters(), cfg.lr, weight_decay=1e-2)
    net.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch"):
        order = torch.randperm(len(labels))
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            parts = net(inputs(rows)).split(list(sizes), dim=-1)
            loss = sum(F.cross_entropy(logits, labels[rows, k], ignore_index=-1,
                                       label_smoothing=cfg.label_smoothing, reduction="sum")
                       / (labels[rows, k] >= 0).sum().clamp(min=1)
                       for k, logits in enumerate(parts))
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()


def train_kind_head(retriever: Retriever, data: KindData, cfg: KindHeadConfig) -> KindHead:
    """A kind head over ``retriever``'s backbone features and sentence embeddings."""
    from bench.text_features import TextConfig, TextEmbedder  # the benchmarks' cached embedder

    net = retriever.net
    if net.phrase_path is None:
        raise ValueError("a kind head reads the phrase path's sentence embedding: this "
                         "checkpoint has no phrase path")
    torch.manual_seed(cfg.seed)
    image_dim = retriever.encoder.channels - retriever.encoder.net.side_channels
    head = KindHead(image_dim, net.phrase_path.encoder.config.hidden_size, data.sizes,
                    hidden=cfg.hidden)
    bank = extract_features(retriever.encoder, data.paths, cfg.cache_dir or None)
    pooled = torch.cat([head.pooled(bank.whole[i:i + 1024])
                        for i in range(0, len(bank.whole), 1024)])
    rows = bank.index
    items = [(rows[i], k) for i, k in zip(data.item_ids, data.item_labels(), strict=True)
             if i in rows]
    item_rows = torch.tensor([r for r, _ in items])
    _fit(head.item, lambda b: pooled[item_rows[b]], torch.tensor([k for _, k in items]),
         data.sizes, cfg.item_epochs, cfg, "kind of item")
    requests = [(rows[r], words, k) for (r, words, _), k in
                zip(data.requests, data.request_labels(), strict=True) if r in rows]
    embed = TextEmbedder(TextConfig(model=retriever.cfg.text_model,
                                    cache_dir=cfg.cache_dir or None))
    sentences = sorted({words for _, words, _ in requests})
    embed.prepare(sentences)
    text = embed(sentences)
    sentence_row = {s: k for k, s in enumerate(sentences)}
    ref_rows = torch.tensor([r for r, _, _ in requests])
    word_rows = torch.tensor([sentence_row[w] for _, w, _ in requests])
    _fit(head.asked, lambda b: torch.cat([pooled[ref_rows[b]], text[word_rows[b]]], dim=-1),
         torch.tensor([k for _, _, k in requests]), data.sizes, cfg.query_epochs, cfg,
         "kind asked for")
    logger.info("kind head: %d kinds, attributes %s, %d photos, %d requests", len(data.kinds),
                {a: len(v) for a, v in data.attributes.items()}, len(items), len(requests))
    return head


def with_kind_head(retriever: Retriever, head: KindHead, kinds: Sequence[str],
                   weight: float, attributes: dict[str, list[str]] | None = None,
                   attribute_weights: Sequence[float] = ()) -> Retriever:
    """``retriever`` with ``head`` attached at ``weight`` (its kinds named in the meta), each
    of its attributes (name -> values, in the head's order) at its ``attribute_weights``
    (one weight: the same for each)."""
    attributes = attributes or {}
    weights = [float(w) for w in attribute_weights]
    if len(weights) == 1:
        weights *= len(attributes)
    if len(weights) != len(attributes):
        raise ValueError(f"{len(attributes)} attributes but {len(weights)} weights")
    cfg = dataclasses.replace(retriever.cfg, kind_head=len(kinds), kind_weight=weight,
                              kind_attributes=[len(v) for v in attributes.values()],
                              attribute_weights=weights,
                              kind_hidden=head.item[0].out_features)
    headed = with_new_head(retriever, cfg, "kind_head.", head.state_dict())
    headed.meta["kind_head"] = {"weight": weight, "kinds": list(kinds)}
    if attributes:
        headed.meta["kind_head"].update(attributes=dict(attributes), attribute_weights=weights)
    return headed


def with_attribute_changes(retriever: Retriever, changes: Sequence[float]) -> Retriever:
    """``retriever`` with its kind head kept, every weight, and each attribute's asked value
    read as a change from the reference photo's by ``changes`` (one per attribute; 0: as
    asked; model.network.KindHead.query)."""
    if not retriever.cfg.kind_attributes:
        raise ValueError("this checkpoint has no kind head with attributes to read as changes")
    if len(changes) != len(retriever.cfg.kind_attributes):
        raise ValueError(f"{len(retriever.cfg.kind_attributes)} attributes but "
                         f"{len(changes)} changes")
    cfg = dataclasses.replace(retriever.cfg, attribute_changes=[float(c) for c in changes])
    reread = with_new_head(retriever, cfg, "kind_head.", retriever.net.kind_head.state_dict())
    reread.meta["kind_head"] = {**retriever.meta.get("kind_head", {}),
                                "attribute_changes": cfg.attribute_changes}
    return reread


def load_to_attach(checkpoint: str, save_dtype: str = "") -> Retriever:
    """The checkpoint a head is trained on and attached to, as ``save_dtype`` stores it
    ('': as it is)."""
    retriever = load_retriever(checkpoint, engine="eager")
    return stored_as(retriever, save_dtype) if save_dtype else retriever


def attach(cfg: KindHeadConfig) -> Path:
    """Train the head of ``cfg`` and write the checkpoint with it attached."""
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    retriever = load_to_attach(cfg.checkpoint, cfg.save_dtype)
    data = read_kind_data(cfg.datasets, cfg.attributes)
    head = train_kind_head(retriever, data, cfg)
    headed = with_kind_head(retriever, head, data.kinds, cfg.weight, data.attributes,
                            cfg.attribute_weights if data.attributes else ())
    headed.meta["kind_head"].update(datasets=list(cfg.datasets),
                                    from_checkpoint=retriever.fingerprint)
    path = headed.save(cfg.out)
    logger.info("wrote %s (fingerprint %s) in %.0f s: %s with a %d-kind head at weight %g "
                "(attributes %s at %s)", cfg.out, headed.fingerprint, time.perf_counter() - t0,
                cfg.checkpoint, len(data.kinds), cfg.weight, list(data.attributes),
                headed.cfg.attribute_weights)
    return path


def head_parser(prog: str, doc: str | None, d, columns: str,
                term: str) -> argparse.ArgumentParser:
    """The command line a kind head and a type head share (``d``: the command's config, whose
    fields of these names give the defaults); ``columns`` names the metadata the datasets need,
    ``term`` what the weight weighs."""
    p = argparse.ArgumentParser(prog=prog, description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint to attach the head to")
    p.add_argument("--out", required=True, help="the new checkpoint's directory")
    p.add_argument("--datasets", nargs="+", default=d.datasets, metavar="ANN:IMAGES",
                   help=f"training data with {columns} (default: %(default)s)")
    p.add_argument("--weight", type=float, default=d.weight,
                   help=f"weight of the {term} (default: %(default)s)")
    p.add_argument("--hidden", type=int, default=d.hidden,
                   help="width of the head's two MLPs (default: %(default)s)")
    p.add_argument("--item-epochs", type=int, default=d.item_epochs,
                   help="epochs of the item side (default: %(default)s)")
    p.add_argument("--query-epochs", type=int, default=d.query_epochs,
                   help="epochs of the query side (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--cache-dir", default=d.cache_dir, help="feature cache ('' disables)")
    p.add_argument("--save-dtype", default=d.save_dtype, choices=["", *SAVE_DTYPES],
                   help="store the new checkpoint's weights so, the head trained on the model "
                   "that storage gives (default: as the checkpoint stores them)")
    return p


def main(argv: Sequence[str] | None = None) -> Path:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    d = KindHeadConfig()
    p = head_parser("python -m model.kind_head", __doc__, d, f"a {KIND_COLUMN} column",
                    "kind term beside FashionVLP's cosine")
    p.add_argument("--attributes", nargs="*", default=d.attributes, choices=ATTRIBUTES,
                   help="attributes the head also reads, from the metadata columns of those "
                   "names (default: none)")
    p.add_argument("--attribute-weights", nargs="+", type=float, default=d.attribute_weights,
                   help="weight of each attribute's term, one for all or one per attribute "
                   "(default: %(default)s)")
    p.add_argument("--attribute-changes", nargs="+", type=float, default=None,
                   help="with --keep-head: read each attribute's asked value as a change from "
                   "the reference photo's by this much (one per attribute of the checkpoint's "
                   "head; 0: as asked)")
    p.add_argument("--keep-head", action="store_true",
                   help="train nothing: write the checkpoint with its own kind head and the "
                   "given --attribute-changes")
    args = vars(p.parse_args(argv))
    changes, keep = args.pop("attribute_changes"), args.pop("keep_head")
    if keep:
        if changes is None:
            p.error("--keep-head needs --attribute-changes")
        torch.set_num_threads(args["threads"])
        reread = with_attribute_changes(load_to_attach(args["checkpoint"],
                                                       args["save_dtype"]), changes)
        path = reread.save(args["out"])
        logger.info("wrote %s (fingerprint %s): %s with attribute changes %s", args["out"],
                    reread.fingerprint, args["checkpoint"], reread.cfg.attribute_changes)
        return path
    if changes is not None:
        p.error("--attribute-changes goes with --keep-head")
    return attach(dataclasses.replace(d, **args))


if __name__ == "__main__":
    main()
