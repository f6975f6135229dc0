"""Fit an identity head on a checkpoint's own features and attach it beside the heads it has:
its vectors are appended to f_ref and f_tar, so the catalog's one inner product adds ``weight``
times the reference's colour-blind look, as far as the words negate a colour ("not in black",
"anything but red"; model.network.IdentityHead).

    python -m model.identity_head --checkpoint CKPT --out OUT
        [--datasets ANN:IMAGES ...] [--channels 128] [--weight 0.5]

What is fitted, all from the feedback folders' training split (`python -m dataprep.feedback`):
- the channels: of the pooled final map, the ``channels`` with the largest ratio of their
  variance over the photos of the colourway requests to their variance within one request's
  pair (the reference and its other colourway: one product in two colours), centred on those
  photos' mean and scaled by their spread;
- the gate: a logistic regression on the frozen sentence embedding of every training request,
  1 where its relation negates a colour (GATED), 0 for every other relation.
Everything else in the checkpoint is kept bit for bit.

Why negated colours only: kept for every colour-only request ("darker", "in navy") the look
won H&M's colour rows and lost a catalog without colourways, where "darker" means another
product (Training, stage 90); "not in black" asks for the same garment in any other colour on
both kinds of catalog, and there the look was a gain on both (Training, stage 91).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dataprep import eval_caption, load_fashioniq
from model.feature_cache import extract_features
from model.kind_head import KindHeadConfig
from model.network import IdentityHead
from model.retriever import Retriever, load_retriever, with_new_head
from project_settings import FEATURE_CACHE_DIR

logger = logging.getLogger(__name__)

# The relations of `dataprep.feedback` whose words the gate opens for: a colour negated.
GATED = ("not colour",)
PAIRED = "colourway"  # the relation whose (reference, target) pairs are one product


@dataclass
class IdentityHeadConfig:
    checkpoint: str = ""  # the checkpoint to attach the head to
    out: str = ""  # the new checkpoint's directory (required, as checkpoint is)
    datasets: list[str] = field(default_factory=lambda: list(KindHeadConfig().datasets))
    channels: int = 128  # of the pooled final map, kept on both sides
    weight: float = 0.5  # of the identity term beside the checkpoint's other terms
    gate_epochs: int = 30
    gate_lr: float = 1e-2
    batch_size: int = 1024
    seed: int = 0
    threads: int = 2
    cache_dir: str = FEATURE_CACHE_DIR  # backbone and sentence features ('' disables)


@dataclass
class FeedbackRequests:
    """Every training request of the feedback folders, and the photos they name."""

    paths: dict  # id -> image path
    requests: list[tuple[str, str, str, str]]  # (reference, words, target, relation)


def read_requests(datasets: Sequence[str]) -> FeedbackRequests:
    paths, requests = {}, []
    for text in datasets:
        annotations, _, images = text.partition(":")
        split = load_fashioniq(annotations, images or f"{annotations}/images", "train")
        paths.update(split.image_paths)
        requests += [(t.candidate, eval_caption(t.captions), t.target, t.tags[2])
                     for t in split.triplets if len(t.tags) > 2]
    if not requests:
        raise ValueError(f"no tagged feedback requests in {list(datasets)}: the identity head "
                         "learns from `python -m dataprep.feedback` folders")
    return FeedbackRequests(paths, requests)


def channel_statistics(pooled: torch.Tensor, pairs: torch.Tensor, channels: int
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(channels kept, centre, scale) of (N, C) pooled photos and (P, 2) rows of one product's
    two colourways: the channels whose spread over the paired photos is largest against their
    spread within a pair. Both spreads come from the paired photos: over photos of several
    catalogs, the channels that tell one catalog's photography from another's would pass for
    a product's look (Training, stage 90a)."""
    if len(pairs) == 0:
        raise ValueError("no colourway pairs to tell a product's look from its colour")
    if channels > pooled.shape[1]:
        raise ValueError(f"{channels} channels asked of a {pooled.shape[1]}-channel map")
    paired = pooled[pairs.flatten().unique()]
    within = (pooled[pairs[:, 0]] - pooled[pairs[:, 1]]).pow(2).mean(dim=0) / 2
    spread = paired.var(dim=0)
    kept = torch.argsort(spread / (within + 1e-9), descending=True)[:channels].sort().values
    return kept, paired.mean(dim=0)[kept], spread[kept].rsqrt()


def fit_gate(text: torch.Tensor, gated: torch.Tensor, cfg: IdentityHeadConfig
             ) -> torch.nn.Linear:
    """A logistic regression of ``gated`` (N,) on centred sentence embeddings (N, H),
    returned as one linear layer over the raw embeddings. Centred, not standardised: a
    sentence embedding has near-constant channels, and a weight divided by their spread would
    overflow the checkpoint's float16 (AdamW's per-weight steps take care of the scales)."""
    mean = text.mean(dim=0)
    x, y = text - mean, gated.float()
    gate = torch.nn.Linear(text.shape[1], 1)
    opt = torch.optim.AdamW(gate.parameters(), cfg.gate_lr, weight_decay=1e-2)
    for _ in tqdm(range(cfg.gate_epochs), desc="negated-colour gate", unit="epoch"):
        order = torch.randperm(len(y))
        for start in range(0, len(order), cfg.batch_size):
            rows = order[start:start + cfg.batch_size]
            loss = F.binary_cross_entropy_with_logits(gate(x[rows]).squeeze(-1), y[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        gate.bias.sub_((gate.weight * mean).sum())
    return gate


def fit_identity_head(retriever: Retriever, data: FeedbackRequests, cfg: IdentityHeadConfig
                      ) -> IdentityHead:
    """An identity head over ``retriever``'s backbone features and sentence embeddings."""
    from bench.text_features import TextConfig, TextEmbedder  # the benchmarks' cached embedder

    net = retriever.net
    if net.phrase_path is None:
        raise ValueError("an identity head reads the phrase path's sentence embedding: this "
                         "checkpoint has no phrase path")
    torch.manual_seed(cfg.seed)
    image_dim = retriever.encoder.channels - retriever.encoder.net.side_channels
    head = IdentityHead(image_dim, net.phrase_path.encoder.config.hidden_size, cfg.channels)
    bank = extract_features(retriever.encoder, data.paths, cfg.cache_dir or None)
    pooled = torch.cat([head.pooled(bank.whole[i:i + 1024])
                        for i in range(0, len(bank.whole), 1024)])
    rows = bank.index
    pairs = torch.tensor([(rows[r], rows[t]) for r, _, t, relation in data.requests
                          if relation == PAIRED and r in rows and t in rows],
                         dtype=torch.long).reshape(-1, 2)
    kept, centre, scale = channel_statistics(pooled, pairs, cfg.channels)
    embed = TextEmbedder(TextConfig(model=retriever.cfg.text_model,
                                    cache_dir=cfg.cache_dir or None))
    sentences = sorted({words for _, words, _, _ in data.requests})
    embed.prepare(sentences)
    sentence_row = {s: k for k, s in enumerate(sentences)}
    text = embed(sentences)[[sentence_row[w] for _, w, _, _ in data.requests]]
    gated = torch.tensor([relation in GATED for *_, relation in data.requests])
    gate = fit_gate(text.float(), gated, cfg)
    with torch.no_grad():
        head.channels.copy_(kept.to(torch.int16))
        head.centre.copy_(centre)
        head.scale.copy_(scale)
        head.gate.load_state_dict(gate.state_dict())
    logger.info("identity head: %d of %d channels from %d photos and %d colourway pairs; gate "
                "on %d requests, %.1f %% of them a negated colour", cfg.channels, image_dim,
                len(pooled), len(pairs), len(gated), 100 * gated.float().mean())
    return head.eval()


def with_identity_head(retriever: Retriever, head: IdentityHead, weight: float) -> Retriever:
    """``retriever`` with ``head`` attached at ``weight``; an identity head it already has is
    replaced. A head that keeps a channel the checkpoint's map lacks is refused."""
    image_dim = retriever.encoder.channels - retriever.encoder.net.side_channels
    if len(head.channels) and int(head.channels.max()) >= image_dim:
        raise ValueError(f"the head keeps channel {int(head.channels.max())}: its shapes do "
                         f"not fit this checkpoint's {image_dim}-channel map")
    cfg = dataclasses.replace(retriever.cfg, identity_head=len(head.channels),
                              identity_weight=weight)
    headed = with_new_head(retriever, cfg, "identity_head.", head.state_dict())
    headed.meta["identity_head"] = {"weight": weight}
    return headed


def attach(cfg: IdentityHeadConfig) -> str:
    """Fit the head of ``cfg`` and write the checkpoint with it attached."""
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    retriever = load_retriever(cfg.checkpoint, engine="eager")
    head = fit_identity_head(retriever, read_requests(cfg.datasets), cfg)
    headed = with_identity_head(retriever, head, cfg.weight)
    headed.meta["identity_head"].update(datasets=list(cfg.datasets),
                                        from_checkpoint=retriever.fingerprint)
    path = headed.save(cfg.out)
    logger.info("wrote %s (fingerprint %s) in %.0f s: %s with a %d-channel identity head at "
                "weight %g", cfg.out, headed.fingerprint, time.perf_counter() - t0,
                cfg.checkpoint, cfg.channels, cfg.weight)
    return path


def main(argv: Sequence[str] | None = None) -> str:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    d = IdentityHeadConfig()
    p = argparse.ArgumentParser(prog="python -m model.identity_head", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the checkpoint to attach the head to")
    p.add_argument("--out", required=True, help="the new checkpoint's directory")
    p.add_argument("--datasets", nargs="+", default=d.datasets, metavar="ANN:IMAGES",
                   help="feedback folders (dataprep.feedback) (default: %(default)s)")
    p.add_argument("--channels", type=int, default=d.channels,
                   help="pooled channels kept (default: %(default)s)")
    p.add_argument("--weight", type=float, default=d.weight,
                   help="weight of the identity term (default: %(default)s)")
    p.add_argument("--gate-epochs", type=int, default=d.gate_epochs)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--cache-dir", default=d.cache_dir, help="feature cache ('' disables)")
    args = p.parse_args(argv)
    return attach(dataclasses.replace(d, **vars(args)))


if __name__ == "__main__":
    main()
