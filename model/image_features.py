"""Frozen-backbone image features: the part of the network that never trains.

Everything here is deterministic given the backbone, so its outputs are cached on disk
(`model.feature_cache`) and training epochs never run the CNN again.
"""

from __future__ import annotations

import hashlib

import torch
from PIL import Image, ImageOps
from torch import nn

from model.config import ModelConfig
from model.pretrained import backbone_spec


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """Median colour of the outermost pixels: the studio background of a product photo."""
    rgb = image.convert("RGB")
    w, h = rgb.size
    pixels = [rgb.getpixel((x, y)) for x in range(0, w, max(1, w // 16)) for y in (0, h - 1)]
    pixels += [rgb.getpixel((x, y)) for y in range(0, h, max(1, h // 16)) for x in (0, w - 1)]
    return tuple(sorted(p[c] for p in pixels)[len(pixels) // 2] for c in range(3))


def preprocess_image(image: Image.Image, cfg: ModelConfig) -> torch.Tensor:
    """Pad to square with the background colour (keeps the garment's shape) and resize.

    Returns (3, S, S) float32 pixels in [0, 1]: the encoder finds the garment box on these and
    normalises them once for the backbone. Cheap and pure, so DataLoader workers can call it.
    """
    square = ImageOps.pad(image.convert("RGB"), (cfg.image_size, cfg.image_size),
                          method=Image.Resampling.BICUBIC, color=border_colour(image))
    x = torch.frombuffer(bytearray(square.tobytes()), dtype=torch.uint8)
    return x.view(cfg.image_size, cfg.image_size, 3).permute(2, 0, 1).float().div_(255)


def foreground_boxes(pixels: torch.Tensor, threshold: float = 0.1, margin: float = 0.04
                     ) -> torch.Tensor:
    """Garment box per image from pixels that differ from the border colour.

    pixels: (N, 3, S, S) in [0, 1]. Returns (N, 4) x1, y1, x2, y2 in pixels; the whole image
    when nothing stands out (or the box would be tiny), so the crop is never empty.
    """
    n, _, s, _ = pixels.shape
    border = torch.cat([pixels[:, :, 0], pixels[:, :, -1], pixels[:, :, :, 0],
                        pixels[:, :, :, -1]], dim=2)  # (N, 3, 4S)
    background = border.median(dim=2).values[:, :, None, None]
    diff = (pixels - background).abs().amax(dim=1).cpu()  # (N, S, S)
    edges = []  # first and one past the last foreground row, then column, of each image
    for lines in (diff.amax(dim=2) > threshold, diff.amax(dim=1) > threshold):  # (N, S) each
        index = torch.arange(s).expand_as(lines)
        edges += [torch.where(lines, index, s).amin(dim=1),
                  torch.where(lines, index, -1).amax(dim=1) + 1]
    y1, y2, x1, x2 = (e.float() for e in edges)
    pad = margin * s
    found = (y2 > y1) & (x2 > x1) & ((x2 - x1) * (y2 - y1) >= (s * s) / 16)
    boxes = torch.stack([(x1 - pad).clamp(min=0), (y1 - pad).clamp(min=0),
                         (x2 + pad).clamp(max=s), (y2 + pad).clamp(max=s)], dim=1)
    return torch.where(found[:, None], boxes, torch.tensor([0.0, 0.0, s, s]))


class ImageEncoder(nn.Module):
    """Frozen CNN -> (whole-image grid tokens, garment-crop tokens), both (N, T, C)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.spec = backbone_spec(cfg.backbone)
        self.net = self.spec.build(cfg.backbone_weights)
        self.channels = self.net.out_channels
        self.grid = cfg.image_size // 32
        self.requires_grad_(False)
        self.eval()
        self.to(memory_format=torch.channels_last)
        self.register_buffer("mean", torch.tensor(self.spec.mean).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(self.spec.std).view(1, 3, 1, 1), False)

    def train(self, mode: bool = True) -> ImageEncoder:
        """Always stays in eval mode: batch-norm statistics are part of the frozen weights."""
        return super().train(False)

    def _weights_digest(self, prefix: bytes = b"", skip: set[str] = frozenset()) -> str:
        digest = hashlib.sha256(prefix)
        for name, tensor in sorted(self.net.state_dict().items()):
            if name not in skip:
                digest.update(name.encode())
                digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:12]

    @property
    def cache_key(self) -> str:
        """Identifies what produced a feature: backbone, input size, crop grid, weights."""
        return (f"{self.cfg.backbone}-{self.cfg.image_size}px-crop{self.cfg.crop_grid}-"
                f"{self._weights_digest()}")

    def _normalised(self, pixels: torch.Tensor) -> torch.Tensor:
        return ((pixels - self.mean) / self.std).contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) pixels in [0, 1] (from preprocess_image) -> (whole, crop) tokens."""
        return self.tokens(pixels, self.backbone(pixels))

    @torch.no_grad()
    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) pixels in [0, 1] -> (N, C, g, g) last feature map: the CNN alone, the
        part a faster runtime can take over (model.engines exports exactly this)."""
        return self.net(self._normalised(pixels)).float().contiguous()

    def tokens(self, pixels: torch.Tensor, grid: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        return grid_tokens(pixels, grid, self.cfg)

    # -------------------------------------------------- the tail (--train-backbone-tail)

    def tail_parameters(self) -> dict[str, nn.Parameter]:
        """The backbone's last stage, by state-dict name: what a tail fine-tune trains."""
        keys = self.net.tail_keys()
        return {k: p for k, p in self.net.named_parameters() if k in keys}

    @property
    def trunk_cache_key(self) -> str:
        """Like cache_key, over the frozen part only: the trunk's cached output stays valid
        while the tail trains."""
        return (f"{self.cfg.backbone}-{self.cfg.image_size}px-trunk{self.net.tail_from}-"
                f"{self._weights_digest(b'trunk', self.net.tail_keys())}")

    @torch.no_grad()
    def trunk(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None,
                                                   torch.Tensor]:
        """(N, 3, S, S) pixels -> (tail input, pooled side map or None, garment boxes)."""
        pre, side = self.net.trunk(self._normalised(pixels))
        return (pre.float().contiguous(), None if side is None else side.float().contiguous(),
                foreground_boxes(pixels).to(pre.device))

    def tokens_from_trunk(self, pre: torch.Tensor, side: torch.Tensor | None,
                          boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(whole, crop) tokens from the trunk's output: the tail, then the same RoI pooling
        as `grid_tokens`. Differentiable in the tail's weights (no no_grad here)."""
        return boxed_tokens(self.net.head(pre, side), boxes, self.cfg.image_size,
                            self.cfg.crop_grid)


def roi_align(features: torch.Tensor, rois: torch.Tensor, output_size: int,
              spatial_scale: float, sampling_ratio: int = 2, aligned: bool = True
              ) -> torch.Tensor:
    """torchvision.ops.roi_align (bilinear, fixed sampling ratio) in plain tensor ops.

    Why not torchvision's: importing torchvision.ops pulls in torch._dynamo, about half of the
    app's import time here, for a 3x3 pooling of a 7x7 grid. Same arithmetic as torchvision's
    CPU kernel (sample points per bin, the -1..size validity window, clamping at the last
    row/column), written as separable bilinear weight matrices; tests compare both.

    features (N, C, H, W); rois (K, 5) = batch index, x1, y1, x2, y2 in input pixels.
    Returns (K, C, output_size, output_size).
    """
    if sampling_ratio <= 0:
        raise ValueError("sampling_ratio must be positive (adaptive sampling is not needed)")
    _, _, height, width = features.shape
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:].to(features.dtype) * spatial_scale - offset  # (K, 4)
    steps = (torch.arange(output_size * sampling_ratio, dtype=features.dtype,
                          device=features.device) + 0.5) / sampling_ratio  # in bins

    def weights(start: torch.Tensor, end: torch.Tensor, size: int) -> torch.Tensor:
        """(K, S, size) bilinear weights of the S sample positions along one axis."""
        extent = end - start
        if not aligned:
            extent = extent.clamp(min=1.0)
        pos = start[:, None] + steps[None, :] * (extent / output_size)[:, None]  # (K, S)
        valid = (pos >= -1.0) & (pos <= size)
        pos = pos.clamp(min=0.0)
        low = pos.floor().long()
        at_edge = low >= size - 1
        low = torch.where(at_edge, torch.full_like(low, size - 1), low)
        high = torch.where(at_edge, low, low + 1)
        pos = torch.where(at_edge, low.to(pos.dtype), pos)
        frac = pos - low.to(pos.dtype)
        w = torch.zeros(*pos.shape, size, dtype=features.dtype, device=features.device)
        w.scatter_add_(2, low[..., None], ((1 - frac) * valid)[..., None])
        w.scatter_add_(2, high[..., None], (frac * valid)[..., None])
        return w

    k = len(rois)
    # A bin's value is the mean of its samples, and sampling is linear: average each bin's
    # sample weights first, then one product per axis gives the bins directly (a strided mean
    # over the samples of all C channels cost half of a query's RoI step).
    wy = weights(boxes[:, 1], boxes[:, 3], height).view(k, output_size, sampling_ratio,
                                                        height).mean(dim=2)  # (K, out, H)
    wx = weights(boxes[:, 0], boxes[:, 2], width).view(k, output_size, sampling_ratio,
                                                       width).mean(dim=2)  # (K, out, W)
    bins = (wy[:, :, None, :, None] * wx[:, None, :, None, :]).reshape(
        k, output_size * output_size, height * width)  # (K, out*out, H*W)
    flat = features.flatten(2)  # (N, C, H*W)
    index = rois[:, 0].long()
    if not torch.equal(index, torch.arange(len(flat), device=index.device)):
        flat = flat[index]  # (K, C, H*W); one box per image in order needs no copy
    out = torch.matmul(bins, flat.transpose(1, 2))  # (K, out*out, C): the crop tokens' layout
    return out.transpose(1, 2).unflatten(2, (output_size, output_size))  # (K, C, out, out)


@torch.no_grad()
def grid_tokens(pixels: torch.Tensor, grid: torch.Tensor, cfg: ModelConfig
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(whole, crop) tokens from the feature map: the garment box found on the pixels is
    RoI-pooled from the grid. Cheap and data-dependent, so it stays in PyTorch whatever runs
    the backbone, and needs no weights (a start from exported engines never builds the CNN)."""
    return boxed_tokens(grid, foreground_boxes(pixels), pixels.shape[-1], cfg.crop_grid)


def boxed_tokens(grid: torch.Tensor, boxes: torch.Tensor, image_side: int, crop_grid: int
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(whole, crop) tokens of a (N, C, g, g) grid whose garment boxes (N, 4, in the pixels of
    an image_side-square input) are already known: one RoI per image. Keeps the grid's
    gradient (a trained tail)."""
    rois = torch.cat([torch.arange(len(grid), dtype=torch.float32)[:, None], boxes.cpu()],
                     dim=1).to(grid.device)
    crop = roi_align(grid, rois, output_size=crop_grid,
                     spatial_scale=grid.shape[-1] / image_side, sampling_ratio=2,
                     aligned=True)  # (N, C, cg, cg)
    return grid.flatten(2).transpose(1, 2), crop.flatten(2).transpose(1, 2)
