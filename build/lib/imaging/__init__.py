"""Images in and out, shared by data preparation, the model, the indexer and the app.

``load_image`` is the one way an image enters the system (bad input fails the same way
everywhere), ``make_thumbnail`` the one way a thumbnail is made, ``decode_batches`` the one
DataLoader decoder with per-item error capture. Exports are resolved lazily: the decoder needs
PyTorch, loading an image does not.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOME = {
    "MAX_IMAGE_BYTES": "imaging.loading",
    "MAX_IMAGE_PIXELS": "imaging.loading",
    "ImageLoadError": "imaging.loading",
    "file_sha256": "imaging.loading",
    "load_image": "imaging.loading",
    "THUMBNAIL_SIZE": "imaging.thumbnails",
    "make_thumbnail": "imaging.thumbnails",
    "DecodedBatch": "imaging.decoding",
    "decode_batches": "imaging.decoding",
}
__all__ = [
    "DecodedBatch", "ImageLoadError", "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "THUMBNAIL_SIZE",
    "decode_batches", "file_sha256", "load_image", "make_thumbnail",
]

if TYPE_CHECKING:
    from imaging.decoding import DecodedBatch, decode_batches
    from imaging.loading import (
        MAX_IMAGE_BYTES,
        MAX_IMAGE_PIXELS,
        ImageLoadError,
        file_sha256,
        load_image,
    )
    from imaging.thumbnails import THUMBNAIL_SIZE, make_thumbnail


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(import_module(_HOME[name]), name)
    raise AttributeError(f"module 'imaging' has no attribute {name!r}")
