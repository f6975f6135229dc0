"""FashionVLP's trainable blocks, built up from the smallest part to the whole.

Input to everything here is cached backbone features (whole grid + garment crop tokens), so the
same code runs at training time (features from disk) and at query time (features from the CNN).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from model.config import ModelConfig

WHOLE, CROP, LANDMARK = 0, 1, 2  # image token types


class GridPosition(nn.Module):
    """Factorised 2-D position embedding (row + column) for a side x side grid."""

    def __init__(self, side: int, dim: int):
        super().__init__()
        self.side = side
        self.rows = nn.Parameter(torch.randn(side, dim) * 0.02)
        self.cols = nn.Parameter(torch.randn(side, dim) * 0.02)

    def forward(self) -> torch.Tensor:
        return (self.rows[:, None] + self.cols[None, :]).reshape(self.side * self.side, -1)


class AttentionPool(nn.Module):
    """Learned queries attending over a token set; returns pooled tokens and attention weights."""

    def __init__(self, num_queries: int, dim: int, heads: int, dropout: float):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(num_queries, dim) * 0.02)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, keys: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.queries.expand(tokens.shape[0], -1, -1)  # (B, Q, H)
        out, weights = self.attn(q, tokens if keys is None else keys, tokens)
        return self.norm(out + q), weights  # (B, Q, H), (B, Q, T)


def pooling_matrix(side: int, out: int) -> torch.Tensor:
    """(out*out, side*side) weights that average a side x side grid of tokens into out x out
    cells with adaptive_avg_pool2d's bins, as one matrix product: it exports to ONNX for any
    pair of sizes (the adaptive pooling op does not when out does not divide side)."""
    axis = torch.zeros(out, side)
    for i in range(out):
        start, end = (i * side) // out, -((-(i + 1) * side) // out)  # floor, ceil
        axis[i, start:end] = 1.0 / (end - start)
    return torch.einsum("ar,bc->abrc", axis, axis).reshape(out * out, side * side)


class ImageTokens(nn.Module):
    """Project backbone features to the hidden size and derive landmark tokens.

    f_whole: one token per grid cell; f_crop: RoI-pooled garment cells; f_lm: K learned queries
    attending over the grid -- the documented stand-in for the paper's landmark detector. Each
    landmark's 2-D position is its attention-weighted average of grid positions.
    """

    def __init__(self, cfg: ModelConfig, channels: int, grid: int, hidden: int):
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, hidden), nn.GELU(),
                                  nn.Linear(hidden, hidden))
        self.whole_pos = GridPosition(grid, hidden)
        self.crop_pos = GridPosition(cfg.crop_grid, hidden)
        self.landmarks = AttentionPool(cfg.num_landmarks, hidden, cfg.attn_heads, cfg.dropout)

    def forward(self, whole: torch.Tensor, crop: torch.Tensor) -> dict[str, torch.Tensor]:
        w = self.proj(whole.float())  # (B, G, H)
        c = self.proj(crop.float())  # (B, Tc, H)
        whole_pos = self.whole_pos()  # (G, H)
        lm, attn = self.landmarks(w, keys=w + whole_pos)  # (B, K, H), (B, K, G)
        return {"whole": w, "crop": c, "landmark": lm, "whole_pos": whole_pos.expand_as(w),
                "crop_pos": self.crop_pos().expand_as(c), "landmark_pos": attn @ whole_pos}


class ReferenceBlock(nn.Module):
    """BERT-style fusion of feedback text and reference-image tokens -> f_ref.

    Text goes through the pretrained word + 1-D position embeddings; image tokens get their own
    type and 2-D position embeddings (text positions are never reused for them). Padding text
    positions are masked out of attention. The output is [CLS] together with the mean of all
    unmasked outputs: MiniLM was trained with mean pooling and its [CLS] alone is nearly the
    same vector for every input, which stalled training at chance level.
    """

    def __init__(self, cfg: ModelConfig, text_model: nn.Module, grid: int):
        super().__init__()
        self.text = text_model
        hidden = text_model.config.hidden_size
        self.register_buffer("pool", None, False)  # cfg.reference_grid: fewer whole tokens
        if cfg.reference_grid is not None:
            if not 1 <= cfg.reference_grid <= grid:
                raise ValueError(f"reference_grid must be between 1 and the backbone grid "
                                 f"({grid}), not {cfg.reference_grid}")
            if cfg.reference_grid < grid:  # not a parameter: checkpoints keep their keys
                self.register_buffer("pool", pooling_matrix(grid, cfg.reference_grid), False)
        self.type_embed = nn.Embedding(3, hidden)
        self.image_norm = nn.LayerNorm(hidden, eps=text_model.config.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * hidden, cfg.embed_dim)

    def image_sequence(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        parts = []
        for kind, name in ((WHOLE, "whole"), (CROP, "crop"), (LANDMARK, "landmark")):
            token = tokens[name] + tokens[f"{name}_pos"]
            if kind == WHOLE and self.pool is not None:
                token = self.pool.to(token.dtype) @ token  # (B, r*r, H)
            parts.append(token + self.type_embed.weight[kind])
        return self.dropout(self.image_norm(torch.cat(parts, dim=1)))  # (B, G+Tc+K, H)

    def embed_text(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.text.embeddings(input_ids=input_ids,
                                    token_type_ids=torch.zeros_like(input_ids))  # (B, T, H)

    def transform(self, hidden: torch.Tensor, keep: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The transformer over a token sequence (padding masked out) -> ([CLS], mean)."""
        additive = torch.zeros(keep.shape, dtype=hidden.dtype, device=hidden.device)
        additive = additive.masked_fill(~keep, torch.finfo(hidden.dtype).min)[:, None, None, :]
        out = self.text.encoder(hidden, attention_mask=additive).last_hidden_state  # (B, L, H)
        weights = keep.to(out.dtype)[:, :, None]
        return out[:, 0], (out * weights).sum(dim=1) / weights.sum(dim=1)  # (B, H) each

    def fuse(self, hidden: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The transformer -> [CLS] + mean -> head."""
        return self.head(torch.cat(self.transform(hidden, keep), dim=-1))  # (B, D)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Text alone through the same transformer and head: an item description in the query
        space, for the auxiliary image <-> words grounding loss (model.train --grounding)."""
        return self.fuse(self.embed_text(input_ids), attention_mask.bool())

    def sentence(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The words alone through the transformer, mean-pooled: the sentence embedding MiniLM
        was trained to give, for the SentencePath."""
        return self.transform(self.embed_text(input_ids), attention_mask.bool())[1]  # (B, H)

    def forward(self, tokens: dict[str, torch.Tensor], input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> torch.Tensor:
        image = self.image_sequence(tokens)
        hidden = torch.cat([self.embed_text(input_ids), image], dim=1)
        keep = torch.cat([attention_mask.bool(),
                          attention_mask.new_ones(image.shape[:2], dtype=torch.bool)], dim=1)
        return self.fuse(hidden, keep)


class TargetBlock(nn.Module):
    """Target-image encoder -> f_tar.

    Positional attention pools the whole and crop grids (with 2-D positions), landmark attention
    pools the landmark tokens, and a small transformer fuses these with the global feature
    (contextual attention) before the projection.
    """

    def __init__(self, cfg: ModelConfig, hidden: int):
        super().__init__()
        self.whole_pool = AttentionPool(1, hidden, cfg.attn_heads, cfg.dropout)
        self.crop_pool = AttentionPool(1, hidden, cfg.attn_heads, cfg.dropout)
        self.landmark_pool = AttentionPool(1, hidden, cfg.attn_heads, cfg.dropout)
        self.part_embed = nn.Parameter(torch.randn(4, hidden) * 0.02)
        layer = nn.TransformerEncoderLayer(hidden, cfg.attn_heads, 2 * hidden, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.fusion = nn.TransformerEncoder(layer, cfg.fusion_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, cfg.embed_dim)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        whole, _ = self.whole_pool(tokens["whole"] + tokens["whole_pos"])
        crop, _ = self.crop_pool(tokens["crop"] + tokens["crop_pos"])
        lm, _ = self.landmark_pool(tokens["landmark"] + tokens["landmark_pos"])
        glob = tokens["whole"].mean(dim=1, keepdim=True)
        parts = torch.cat([glob, whole, crop, lm], dim=1) + self.part_embed  # (B, 4, H)
        fused = self.fusion(parts)
        return self.head(self.norm(fused.mean(dim=1)))  # (B, D)


class GlobalPath(nn.Module):
    """The mean-pooled backbone feature, linearly mapped into the embedding space and added to
    both f_ref and f_tar.

    Why: a pooled CNN feature already clusters garments by kind and identifies the same
    garment in another colour; the token blocks then only have to model what the words change
    (CLIP4Cir's combiner keeps the image feature as a residual for the same reason). One map
    serves both sides, so the reference's term is already a target-space vector. Zero-initialised:
    a checkpoint trained without it fine-tunes from exactly its old outputs.
    """

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.proj = nn.Linear(channels, embed_dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, whole: torch.Tensor) -> torch.Tensor:
        return self.proj(self.norm(whole.float().mean(dim=1)))  # (B, D)


class SentencePath(nn.Module):
    """A residual of f_ref from the pooled reference image and the feedback's sentence
    embedding: an MLP over both plus a direct text term, as CLIP4Cir's combiner computes.

    Why: that combiner, over exactly these two pooled inputs, finds "the same garment in
    another colour" better than the token fusion alone, which ranks other garments of the kind
    and colour above the exact one. Here the token fusion refines the combiner's answer instead
    of having to rebuild it. Both output maps are zero-initialised, so a checkpoint trained
    without the path fine-tunes from exactly its old outputs.
    """

    def __init__(self, channels: int, hidden: int, width: int, embed_dim: int, dropout: float):
        super().__init__()
        self.image_norm = nn.LayerNorm(channels)
        self.text_norm = nn.LayerNorm(hidden)
        self.combine = nn.Sequential(nn.Linear(channels + hidden, width), nn.GELU(),
                                     nn.Dropout(dropout), nn.Linear(width, embed_dim))
        self.text = nn.Linear(hidden, embed_dim)
        for layer in (self.combine[-1], self.text):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, whole: torch.Tensor, sentence: torch.Tensor) -> torch.Tensor:
        image = self.image_norm(whole.float().mean(dim=1))  # (B, C)
        text = self.text_norm(sentence)  # (B, H)
        return self.combine(torch.cat([image, text], dim=-1)) + self.text(text)  # (B, D)


class PhrasePath(nn.Module):
    """A SentencePath whose sentence embedding comes from the pretrained text model, frozen
    (its last layer mean-pooled, as all-MiniLM-L6-v2 was trained), instead of the fine-tuned
    transformer of the reference block.

    Why: the pretrained model was trained on a billion sentence pairs to place paraphrases
    together, so "paler", "in a lighter shade" and "is lighter" arrive close whatever words a
    catalog's shoppers use; layers fine-tuned on a few hundred training templates keep only
    part of that (the combiner baseline, over the whole model's embedding, led the token
    fusion on relative and negated requests in held-out phrasings). The demo checkpoint
    reads all six layers, in the sentence path's place; the ONNX engines run them with int8
    weights, which keeps a query under a Lite0 forward (model.engines, docs/model.md). The
    encoder stays in eval mode and untrained (the trainer never optimises it, and a
    checkpoint does not store it when it comes from a package); only the combiner over it
    learns.
    """

    def __init__(self, text_model: nn.Module, channels: int, width: int, embed_dim: int,
                 dropout: float):
        super().__init__()
        self.encoder = text_model.eval()
        self.combiner = SentencePath(channels, text_model.config.hidden_size, width, embed_dim,
                                     dropout)

    def train(self, mode: bool = True) -> PhrasePath:
        super().train(mode)
        self.encoder.eval()  # frozen: no dropout in its sentence embedding, ever
        return self

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The frozen sentence embedding: mean of the last layer over the real tokens."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
        weights = attention_mask.to(out.dtype)[:, :, None]
        return (out * weights).sum(dim=1) / weights.sum(dim=1)  # (B, H)

    def forward(self, whole: torch.Tensor, phrase: torch.Tensor) -> torch.Tensor:
        return self.combiner(whole, phrase)


class Standardize(nn.Module):
    """Per-dimension centring and scaling fitted on training features (buffers, not trained)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp(min=1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class CombinerHead(nn.Module):
    """CLIP4Cir's Combiner (Baldrati et al. 2022) over the pooled backbone feature and the
    frozen sentence embedding: a second query/target space beside f_ref / f_tar.

    As in CLIP4Cir: ReLU projections with dropout, a combiner layer over their concatenation,
    and a learned scalar lambda mixing in the (unprojected) features as a residual:
    out = W(combined) + lambda * text + (1 - lambda) * image. The target is the same linear
    image map as the reference's, so the residual image term is already a target-space vector.
    The same module is the combiner baseline of the benchmarks (bench.baselines).
    """

    def __init__(self, image_dim: int, text_dim: int, embed_dim: int = 512,
                 proj_dim: int | None = None, hidden_dim: int | None = None,
                 dropout: float = 0.5):
        super().__init__()
        d, p, h = embed_dim, proj_dim or embed_dim, hidden_dim or 2 * embed_dim
        self.image_dim = image_dim
        self.image_norm = Standardize(image_dim)
        self.text_norm = Standardize(text_dim)
        self.image_in = nn.Linear(image_dim, d)  # shared with the target side
        self.text_in = nn.Linear(text_dim, d)
        self.text_projection = nn.Linear(d, p)
        self.image_projection = nn.Linear(d, p)
        self.combiner_layer = nn.Linear(2 * p, h)
        self.output_layer = nn.Linear(h, d)
        self.dropout = nn.Dropout(dropout)
        self.dynamic_scalar = nn.Sequential(nn.Linear(2 * p, h), nn.ReLU(), nn.Dropout(dropout),
                                            nn.Linear(h, 1), nn.Sigmoid())

    def fit_inputs(self, images: torch.Tensor, texts: torch.Tensor) -> None:
        self.image_norm.fit(images)
        self.text_norm.fit(texts)

    def pooled(self, whole: torch.Tensor) -> torch.Tensor:
        """(B, G, C) grid tokens -> (B, image_dim): the mean of the final map's channels (a
        backbone's side map, when it has one, comes after them)."""
        return whole[..., :self.image_dim].float().mean(dim=1)

    def query(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        img = self.image_in(self.image_norm(image))  # (B, d)
        txt = self.text_in(self.text_norm(text))  # (B, d)
        raw = torch.cat([self.dropout(F.relu(self.text_projection(txt))),
                         self.dropout(F.relu(self.image_projection(img)))], dim=-1)  # (B, 2p)
        combined = self.dropout(F.relu(self.combiner_layer(raw)))  # (B, h)
        lam = self.dynamic_scalar(raw)  # (B, 1)
        return F.normalize(self.output_layer(combined) + lam * txt + (1 - lam) * img, dim=-1)

    def target(self, image: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_in(self.image_norm(image)), dim=-1)


class KindHead(nn.Module):
    """What kind of item a photo shows (upper body, shoes, bags, ...) and what kind a query asks
    for, each as the square root of a distribution over kinds: two such unit vectors' inner
    product is the Bhattacharyya coefficient, 1 where both name the same kind with certainty.
    A head may read attributes too (pattern, sleeve, length, fit): one distribution per part,
    each scaled by the square root of its share, so the inner product is the shares' weighted
    mean of the parts' coefficients.

    Why: in a gallery of garments, shoes, bags and accessories with no category filter, some of
    a garment query's top 10 are items of a neighbouring kind that share its colour (Training,
    "Where the shipped stage 77 misses"); a classifier over the pooled backbone feature names an
    H&M article's product group about 90 % of the time. "Plainer", "without sleeves" or
    "shorter" ask for a value the fused space blurs among look-alikes; the attribute parts name
    it. The query side reads the frozen sentence embedding beside the reference, so "as a
    skirt" or "a bag in this colour" asks for another kind. Two small MLPs (one output per value
    of every part), trained apart (`model.kind_head`), never by model.train.
    """

    def __init__(self, image_dim: int, text_dim: int, sizes: int | Sequence[int],
                 shares: Sequence[float] | None = None, hidden: int = 128,
                 dropout: float = 0.2, changes: Sequence[float] | None = None):
        super().__init__()
        self.image_dim = image_dim
        self.sizes = [sizes] if isinstance(sizes, int) else list(sizes)
        shares = list(shares) if shares else [1.0] * len(self.sizes)
        if len(shares) != len(self.sizes):
            raise ValueError(f"{len(self.sizes)} parts but {len(shares)} shares")
        self.roots = [(s / sum(shares)) ** 0.5 for s in shares]
        self.changes = list(changes) if changes else [0.0] * len(self.sizes)
        if len(self.changes) != len(self.sizes):
            raise ValueError(f"{len(self.sizes)} parts but {len(self.changes)} changes")
        h, out = hidden, sum(self.sizes)
        self.item = nn.Sequential(nn.Linear(image_dim, h), nn.GELU(), nn.Dropout(dropout),
                                  nn.Linear(h, out))
        self.asked = nn.Sequential(nn.Linear(image_dim + text_dim, h), nn.GELU(),
                                   nn.Dropout(dropout), nn.Linear(h, out))

    def pooled(self, whole: torch.Tensor) -> torch.Tensor:
        """(B, G, C) grid tokens -> (B, image_dim): the unit mean of the final map's channels."""
        return F.normalize(whole[..., :self.image_dim].float().mean(dim=1), dim=-1)

    def item_logits(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.item(pooled)

    def asked_logits(self, pooled: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.asked(torch.cat([pooled, text.float()], dim=-1))

    def _vector(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat([part.softmax(dim=-1).sqrt() * root for part, root in
                          zip(logits.split(self.sizes, dim=-1), self.roots, strict=True)], -1)

    def query(self, pooled: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """The asked distributions; a part with a change ``alpha`` is pushed further from the
        reference photo's own value, a + alpha (1 - BC(a, r)) (a - r): nothing where the words
        keep the photo's value, a push where they ask for another one.

        Why: for a word it does not know ("louder" of a plain top) the query side keeps the
        photo's pattern, though the words alone lean to another (Training, the diagnostics
        after stage 93); the push gives a part's asked change more say where the words do
        move it."""
        asked = self._vector(self.asked_logits(pooled, text))
        if not any(self.changes):
            return asked
        own = self.target(pooled)
        parts = []
        for a, r, root, alpha in zip(asked.split(self.sizes, dim=-1),
                                     own.split(self.sizes, dim=-1), self.roots, self.changes,
                                     strict=True):
            if alpha:
                kept = (a * r).sum(dim=-1, keepdim=True) / root ** 2  # BC(a, r)
                a = a + alpha * (1 - kept) * (a - r)
            parts.append(a)
        return torch.cat(parts, dim=-1)

    def target(self, pooled: torch.Tensor) -> torch.Tensor:
        return self._vector(self.item_logits(pooled))


class ChangeHead(KindHead):
    """A kind head whose query side reads as a change: d, the asked square root minus the
    reference photo's own, scaled by |d|^2 / 2 = 1 - BC(asked, reference). Its term is
    (1 - BC(asked, reference)) (BC(asked, item) - BC(reference, item)): a push from the photo's
    value to the asked one, whole where the words ask for a value the photo does not have,
    nothing where they leave it as it is.

    Why: a product-type term that holds every query to a classifier's reading of the type
    costs a catalog whose relevant sets ask for its own, overlapping type labels (a top or a
    T-shirt, a kurta or a tunic), and training the type beside the kind head's other parts in
    one hidden layer costs it too (Training, stages 86-88). A narrow head of its own read as a
    change moves "as a skirt", but its unscaled d, small and never 0 where the words name no
    type, still moved such requests (H&M darker -0.9, stages 89a-89c); the scale keeps a
    sliver of that noise and most of a real change (stages 89d-89e).
    """

    def query(self, pooled: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        change = super().query(pooled, text) - self.target(pooled)
        return change * change.pow(2).sum(dim=-1, keepdim=True) / 2


class FashionVLP(nn.Module):
    """The trainable network: shared image tokens, reference block and target block, the
    optional shared global path (``cfg.global_path``) and the optional sentence path of the
    reference side (``cfg.sentence_path``) and the optional phrase path (``cfg.phrase_path``,
    over ``phrase_model``, the whole pretrained text model, frozen), and the optional combiner
    head, kind head, type head and colour head (``cfg.combiner_head``, ``cfg.kind_head``,
    ``cfg.type_head``, ``cfg.colour_head``: their vectors are appended to f_ref and f_tar, so
    one inner product scores every space; over the first ``image_channels`` of the grid tokens,
    default all of them)."""

    def __init__(self, cfg: ModelConfig, text_model: nn.Module, channels: int, grid: int,
                 phrase_model: nn.Module | None = None, image_channels: int | None = None):
        super().__init__()
        hidden = text_model.config.hidden_size
        self.tokens = ImageTokens(cfg, channels, grid, hidden)
        self.reference = ReferenceBlock(cfg, text_model, grid)
        self.target = TargetBlock(cfg, hidden)
        self.global_path = GlobalPath(channels, cfg.embed_dim) if cfg.global_path else None
        self.sentence_path = (SentencePath(channels, hidden, cfg.sentence_hidden, cfg.embed_dim,
                                           cfg.dropout) if cfg.sentence_path else None)
        if cfg.phrase_path and phrase_model is None:
            raise ValueError("phrase_path needs the pretrained text model (phrase_model)")
        self.phrase_path = (PhrasePath(phrase_model, channels, cfg.sentence_hidden,
                                       cfg.embed_dim, cfg.dropout) if cfg.phrase_path else None)
        if cfg.combiner_head and phrase_model is None:
            raise ValueError("the combiner head reads the phrase path's sentence embedding: "
                             "it needs phrase_path")
        self.combiner_head = (CombinerHead(image_channels or channels,
                                           phrase_model.config.hidden_size, cfg.combiner_head)
                              if cfg.combiner_head else None)
        self.combiner_weight = cfg.combiner_weight
        if cfg.kind_head and phrase_model is None:
            raise ValueError("the kind head reads the phrase path's sentence embedding: "
                             "it needs phrase_path")
        shares = [cfg.kind_weight, *cfg.attribute_weights]
        self.kind_head = (KindHead(image_channels or channels, phrase_model.config.hidden_size,
                                   [cfg.kind_head, *cfg.kind_attributes], shares,
                                   cfg.kind_hidden,
                                   changes=([0.0, *cfg.attribute_changes]
                                            if cfg.attribute_changes else None))
                          if cfg.kind_head else None)
        self.kind_weight = sum(shares)
        for slot in ("type", "colour"):  # change heads, each in a slot of its own
            size, hidden = getattr(cfg, f"{slot}_head"), getattr(cfg, f"{slot}_hidden")
            if size and phrase_model is None:
                raise ValueError(f"the {slot} head reads the phrase path's sentence embedding: "
                                 "it needs phrase_path")
            setattr(self, f"{slot}_head",
                    ChangeHead(image_channels or channels, phrase_model.config.hidden_size,
                               size, hidden=hidden) if size else None)
            setattr(self, f"{slot}_weight", getattr(cfg, f"{slot}_weight"))

    def train(self, mode: bool = True) -> FashionVLP:
        super().train(mode)
        for head in (self.combiner_head, self.kind_head, self.type_head, self.colour_head):
            if head is not None:
                head.eval()  # trained apart: no dropout in it while the paths train
        return self

    def query_outputs(self) -> set[str]:
        """The names ``token_outputs`` gives for a query (words given)."""
        return ({"fused"} | ({"sentence"} if self.sentence_path is not None else set())
                | ({"phrase"} if self.phrase_path is not None else set()))

    def token_outputs(self, whole: torch.Tensor, crop: torch.Tensor,
                      input_ids: torch.Tensor | None = None,
                      attention_mask: torch.Tensor | None = None,
                      phrase: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """What the token blocks and the text transformer give before the residual paths:
        the fused reference ("fused"), the sentence embedding ("sentence") and the frozen
        text model's ("phrase", unless given) when words are given, else the target block's
        output ("target")."""
        tokens = self.tokens(whole, crop)
        if input_ids is None:
            return {"target": self.target(tokens)}
        return {"fused": self.reference(tokens, input_ids, attention_mask),
                **self.word_outputs(input_ids, attention_mask, phrase)}

    def word_outputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     phrase: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The sentence embeddings the sentence and phrase paths read: the words alone, no
        image. ``phrase``: the frozen text model's embedding when it was computed apart (the
        ONNX engine runs that model as a part of its own, model.engines)."""
        out = {}
        if self.sentence_path is not None:
            out["sentence"] = self.reference.sentence(input_ids, attention_mask)
        if self.phrase_path is not None:
            out["phrase"] = (phrase if phrase is not None
                             else self.phrase_path.embed(input_ids, attention_mask))
        return out

    def compose_reference(self, fused: torch.Tensor, whole: torch.Tensor,
                          sentence: torch.Tensor | None = None,
                          phrase: torch.Tensor | None = None) -> torch.Tensor:
        """f_ref from the fused reference and the residual paths (model.train --paths-only
        trains these paths over token outputs it computed once)."""
        if self.sentence_path is not None:
            fused = fused + self.sentence_path(whole, sentence).to(fused.dtype)
        if self.phrase_path is not None:
            fused = fused + self.phrase_path(whole, phrase).to(fused.dtype)
        return self._with_heads(self._with_global(fused, whole), whole, phrase)

    def compose_target(self, target: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
        return self._with_heads(self._with_global(target, whole), whole)

    def _with_global(self, out: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
        if self.global_path is not None:
            out = out + self.global_path(whole).to(out.dtype)
        return F.normalize(out, dim=-1)

    def _with_heads(self, out: torch.Tensor, whole: torch.Tensor,
                    phrase: torch.Tensor | None = None) -> torch.Tensor:
        """[f, sqrt(w1) h1, ...] / sqrt(1 + w1 + ...) with each head's vector h (the
        query's where ``phrase`` is given, else the target's): its inner product with a target
        is (cos_f + w1 h1.t1 + ...) / (1 + w1 + ...), the late fusion of the spaces. Every h is
        a unit vector but a change head's query (a scaled difference of two) and a kind head's
        whose attributes read as changes, so the whole is made unit again: one scale per query,
        which no ranking sees, and inner product stays cosine for the app and the
        conversation's moves."""
        heads = [(head, w) for head, w in ((self.combiner_head, self.combiner_weight),
                                           (self.kind_head, self.kind_weight),
                                           (self.type_head, self.type_weight),
                                           (self.colour_head, self.colour_weight))
                 if head is not None]
        if not heads:
            return out
        parts = [out]
        for head, w in heads:
            pooled = head.pooled(whole)
            h = head.target(pooled) if phrase is None else head.query(pooled, phrase.float())
            parts.append(h.to(out.dtype) * w ** 0.5)
        return F.normalize(torch.cat(parts, dim=-1), dim=-1)

    def encode_reference(self, whole: torch.Tensor, crop: torch.Tensor, input_ids: torch.Tensor,
                         attention_mask: torch.Tensor, phrase: torch.Tensor | None = None
                         ) -> torch.Tensor:
        out = self.token_outputs(whole, crop, input_ids, attention_mask, phrase)
        return self.compose_reference(out["fused"], whole, out.get("sentence"), out.get("phrase"))

    def encode_target(self, whole: torch.Tensor, crop: torch.Tensor) -> torch.Tensor:
        return self.compose_target(self.token_outputs(whole, crop)["target"], whole)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.reference.encode_text(input_ids, attention_mask), dim=-1)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        f_ref = self.encode_reference(batch["ref_whole"], batch["ref_crop"], batch["input_ids"],
                                      batch["attention_mask"])
        f_tar = self.encode_target(batch["tar_whole"], batch["tar_crop"])
        return f_ref, f_tar
