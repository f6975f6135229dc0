"""On-disk cache of frozen-backbone features, so each image passes the CNN once.

Keyed by the image's content hash and the backbone's cache key (name, input size, weights
digest): renaming a file costs nothing, changing a pixel or the backbone recomputes. Stored as
fp16 .npy, one file per image, sharded by hash prefix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from imaging import decode_batches, file_sha256
from model.image_features import ImageEncoder, preprocess_image

logger = logging.getLogger(__name__)


class FeatureCache:
    """fp16 (whole + crop) token arrays on disk under root/backbone_key/ab/abcdef....npy."""

    def __init__(self, root: str | Path, backbone_key: str):
        self.dir = Path(root) / backbone_key

    def _path(self, sha: str) -> Path:
        return self.dir / sha[:2] / f"{sha}.npy"

    def load(self, sha: str) -> np.ndarray | None:
        path = self._path(sha)
        try:
            return np.load(path) if path.is_file() else None
        except (ValueError, OSError):  # a half-written file from a killed run: recompute it
            logger.warning("ignoring unreadable cache entry %s", path)
            return None

    def store(self, sha: str, tokens: np.ndarray) -> None:
        path = self._path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, tokens.astype(np.float16))
        tmp.replace(path)


@dataclass
class FeatureBank:
    """All features of a dataset in memory: row `index[id]` of `whole` (N,G,C) and `crop`."""

    index: dict[str, int]
    whole: torch.Tensor  # (N, G, C) float16
    crop: torch.Tensor  # (N, Tc, C) float16
    failed: dict[str, str]  # id -> why its image could not be used

    def lookup(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([self.index[i] for i in ids], dtype=torch.long)
        return self.whole[rows].float(), self.crop[rows].float()


def _cached_arrays(encoder: ImageEncoder, image_paths: Mapping[str, Path], key: str,
                   compute: Callable[[torch.Tensor], np.ndarray], cache_dir: str | Path | None,
                   batch_size: int, workers: int, what: str
                   ) -> tuple[list[str], list[np.ndarray | None], dict[str, str]]:
    """One array per image from the cache under ``key`` where present, else from
    ``compute`` (a preprocessed batch -> one row per image), stored for next time."""
    ids = list(image_paths)
    cache = FeatureCache(cache_dir, key) if cache_dir else None
    hashes = [file_sha256(image_paths[i]) for i in tqdm(ids, desc="hashing images", unit="img",
                                                          disable=len(ids) < 2000)]
    arrays: list[np.ndarray | None] = [cache.load(h) if cache else None for h in hashes]
    todo = [k for k, t in enumerate(arrays) if t is None]
    failed: dict[str, str] = {}
    if todo:
        logger.info("computing %s for %d of %d images (%d cached)", what, len(todo), len(ids),
                    len(ids) - len(todo))
        loader = decode_batches([image_paths[ids[k]] for k in todo],
                                partial(preprocess_image, cfg=encoder.cfg), batch_size, workers,
                                thumbnails=False)
        with tqdm(total=len(todo), desc=what, unit="img") as bar:
            for batch in loader:
                positions, x, errors = batch.ok, batch.tensors, batch.failed
                for p, err in errors:
                    failed[ids[todo[p]]] = err
                if x is not None:
                    for p, arr in zip(positions, compute(x.to(encoder.mean.device)), strict=True):
                        k = todo[p]
                        arrays[k] = arr
                        if cache:
                            cache.store(hashes[k], arr)
                bar.update(len(positions) + len(errors))
    if failed:
        logger.warning("%d images could not be used (e.g. %s)", len(failed),
                       "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:3]))
    return ids, arrays, failed


def extract_features(encoder: ImageEncoder, image_paths: Mapping[str, Path],
                     cache_dir: str | Path | None, batch_size: int = 32, workers: int = 1,
                     ) -> FeatureBank:
    """Backbone features for every image, from the cache where present, else computed."""
    def compute(x: torch.Tensor) -> np.ndarray:
        whole, crop = encoder(x)
        return torch.cat([whole, crop], dim=1).cpu().half().numpy()

    ids, tokens, failed = _cached_arrays(encoder, image_paths, encoder.cache_key, compute,
                                         cache_dir, batch_size, workers, "backbone features")
    kept = [k for k, t in enumerate(tokens) if t is not None]
    grid_tokens = encoder.grid * encoder.grid
    stacked = torch.from_numpy(np.stack([tokens[k] for k in kept])) if kept else torch.zeros(
        0, grid_tokens + encoder.cfg.crop_grid ** 2, encoder.channels, dtype=torch.float16)
    return FeatureBank(index={ids[k]: row for row, k in enumerate(kept)},
                       whole=stacked[:, :grid_tokens].contiguous(),
                       crop=stacked[:, grid_tokens:].contiguous(), failed=failed)


@dataclass
class TrunkBank:
    """The frozen trunk's output of every image (`ImageEncoder.trunk`), for training the
    backbone's tail: ``lookup`` runs the tail, so its tokens follow the tail's weights and
    carry their gradient. Same ``index``/``failed``/``lookup`` as a FeatureBank."""

    index: dict[str, int]
    pre: torch.Tensor  # (N, Cp, h, w) float16: the tail's input
    side: torch.Tensor | None  # (N, Cs, g, g) float16: the pooled map beside the grid
    boxes: torch.Tensor  # (N, 4) garment boxes in input pixels
    failed: dict[str, str]
    encoder: ImageEncoder

    def lookup(self, ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([self.index[i] for i in ids], dtype=torch.long)
        device = self.encoder.mean.device
        side = None if self.side is None else self.side[rows].to(device).float()
        return self.encoder.tokens_from_trunk(self.pre[rows].to(device).float(), side,
                                              self.boxes[rows].to(device))


def extract_trunk_features(encoder: ImageEncoder, image_paths: Mapping[str, Path],
                           cache_dir: str | Path | None, batch_size: int = 32, workers: int = 1,
                           ) -> TrunkBank:
    """The trunk's output for every image, cached like extract_features (one flat fp16 row
    per image: tail input, side map, box) under the trunk's own key."""
    probe = encoder.trunk(torch.zeros(1, 3, encoder.cfg.image_size, encoder.cfg.image_size,
                                      device=encoder.mean.device))
    shapes = [tuple(t.shape[1:]) for t in probe if t is not None]
    sizes = [int(np.prod(s)) for s in shapes]

    def compute(x: torch.Tensor) -> np.ndarray:
        parts = [t.flatten(1) for t in encoder.trunk(x) if t is not None]
        return torch.cat(parts, dim=1).cpu().half().numpy()

    ids, rows, failed = _cached_arrays(encoder, image_paths, encoder.trunk_cache_key, compute,
                                       cache_dir, batch_size, workers, "backbone trunk")
    kept = [k for k, t in enumerate(rows) if t is not None]
    flat = torch.from_numpy(np.stack([rows[k] for k in kept])) if kept else torch.zeros(
        0, sum(sizes), dtype=torch.float16)
    parts = [p.reshape(len(flat), *s) for p, s in
             zip(flat.split(sizes, dim=1), shapes, strict=True)]
    return TrunkBank(index={ids[k]: row for row, k in enumerate(kept)}, pre=parts[0].clone(),
                     side=parts[1].clone() if len(parts) == 3 else None,
                     boxes=parts[-1].float().clone(), failed=failed, encoder=encoder)
