"""JPEG thumbnails: the ~128 px ones stored with catalog items and the larger ones the app keeps."""

from __future__ import annotations

import io

from PIL import Image

THUMBNAIL_SIZE = 128  # longest side of a catalog item's stored JPEG thumbnail, px
THUMBNAIL_QUALITY = 85
MAX_ASPECT = 8  # a thumbnail is at most this many times longer than wide (see _pad_to_aspect)


def make_thumbnail(image: Image.Image, size: int = THUMBNAIL_SIZE,
                   quality: int = THUMBNAIL_QUALITY) -> bytes:
    """JPEG of ``image`` scaled down (aspect kept) so its longest side is at most ``size`` px."""
    thumb = image.convert("RGB")  # a copy, also for RGB input: the caller's image is untouched
    thumb = _pad_to_aspect(thumb, MAX_ASPECT)
    scale = size / max(thumb.size)
    if scale < 1:  # not Image.thumbnail: it rounds a 6000x3 sliver to 0 px high and fails
        w, h = thumb.size
        thumb = thumb.resize((max(1, round(w * scale)), max(1, round(h * scale))),
                             Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    thumb.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _pad_to_aspect(image: Image.Image, max_aspect: float) -> Image.Image:
    """Centre a sliver (a 6000x3 upload) on a white canvas no more than ``max_aspect`` times
    longer than wide, so every later resize of its thumbnail (the page shows it 220 and 64 px
    wide) keeps at least one pixel on each side instead of failing."""
    w, h = image.size
    if max(w, h) <= max_aspect * min(w, h):
        return image
    canvas = (w, max(h, round(w / max_aspect))) if w > h else (max(w, round(h / max_aspect)), h)
    padded = Image.new("RGB", canvas, "white")
    padded.paste(image, ((canvas[0] - w) // 2, (canvas[1] - h) // 2))
    return padded
