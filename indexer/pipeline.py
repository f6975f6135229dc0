"""Decode -> preprocess -> thumbnail in DataLoader workers, so the main process only runs the
model (the expensive part) and writes to the database.

Why per-item error capture: one corrupt file must not kill a worker (and with it the run);
the failure travels back with the batch and is counted and listed by the build.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from model.images import ImageLoadError, load_image

THUMBNAIL_SIZE = 128  # longest side of the stored JPEG thumbnail, px
THUMBNAIL_QUALITY = 85


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE) -> bytes:
    """~size px JPEG of the image (aspect kept) for result lists in the app."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buf.getvalue()


@dataclass
class Prepared:
    """A decoded batch: tensors of the items that worked, errors of those that did not."""

    ok: list[int]  # positions (into the dataset's path list) of decoded items
    tensors: torch.Tensor | None  # (len(ok), 3, H, W)
    thumbnails: list[bytes]
    failed: list[tuple[int, str]]  # (position, reason)


class ImageDataset(Dataset):
    def __init__(self, paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor]):
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            image = load_image(self.paths[i])
            return i, self.preprocess(image), make_thumbnail(image), None
        except (ImageLoadError, OSError, ValueError) as exc:
            return i, None, b"", f"{type(exc).__name__}: {exc}"


def collate(samples: list) -> Prepared:
    ok = [s for s in samples if s[3] is None]
    return Prepared(
        ok=[s[0] for s in ok],
        tensors=torch.stack([s[1] for s in ok]) if ok else None,
        thumbnails=[s[2] for s in ok],
        failed=[(s[0], s[3]) for s in samples if s[3] is not None],
    )


def batches(paths: Sequence[Path], preprocess: Callable[[Image.Image], torch.Tensor],
            batch_size: int, workers: int) -> DataLoader:
    """Ordered batches of decoded images (DataLoader keeps submission order)."""
    return DataLoader(
        ImageDataset(paths, preprocess), batch_size=batch_size, shuffle=False,
        num_workers=workers, collate_fn=collate, persistent_workers=False,
        prefetch_factor=4 if workers else None,
    )
