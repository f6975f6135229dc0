"""JPEG thumbnails: the ~128 px ones stored with catalog items and the larger ones the app keeps."""

from __future__ import annotations

import io

from PIL import Image

THUMBNAIL_SIZE = 128  # longest side of a catalog item's stored JPEG thumbnail, px
THUMBNAIL_QUALITY = 85


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE,
                   quality: int = THUMBNAIL_QUALITY) -> bytes:
    """JPEG of ``image`` scaled down (aspect kept) so its longest side is at most ``size`` px."""
    thumb = image.convert("RGB")  # a copy, also for RGB input: the caller's image is untouched
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()
