"""Robust image loading shared by data preparation, training, the indexer and the app.

Every image that enters the system (catalog photos, shopper uploads, dataset files) goes through
:func:`load_image`, so bad input fails the same way everywhere: one :class:`ImageLoadError` whose
message says what is wrong and what to do, instead of a PIL exception from deep inside a worker,
a silently half-grey truncated JPEG, or a decompression bomb that exhausts memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

# About 40 megapixels (e.g. 8000x5000): far above any product photo, far below what would
# exhaust memory once decoded to RGB (~120 MB).
MAX_IMAGE_PIXELS = 40_000_000
# Upload / file size limit; a product photo is well under a few megabytes.
MAX_IMAGE_BYTES = 32 * 1024 * 1024

ImageSource = str | Path | bytes | bytearray | memoryview | BinaryIO

# Formats PIL can open that are not photographs (or need extra care) are still accepted; this is
# only used to word the error message for obvious non-images.
_TEXT_PREFIXES = (b"<", b"{", b"[", b"%PDF", b"PK\x03\x04")


class ImageLoadError(ValueError):
    """An image could not be used; the message says why and what to do about it."""


def _describe(source: ImageSource) -> str:
    if isinstance(source, str | Path):
        return f"image file {str(source)!r}"
    name = getattr(source, "name", None)
    return f"image {name!r}" if isinstance(name, str) else "uploaded image"


def _read_bytes(source: ImageSource, max_bytes: int, what: str) -> bytes:
    """Return the raw bytes, refusing more than ``max_bytes`` without reading them all."""
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ImageLoadError(f"{what} does not exist; check the path.") from None
        except OSError as e:
            raise ImageLoadError(f"{what} cannot be read ({e.strerror}); check the path.") from e
        if size > max_bytes:
            raise ImageLoadError(
                f"{what} is {size:,} bytes, over the {max_bytes:,}-byte limit; "
                "resize or recompress it."
            )
        try:
            return path.read_bytes()
        except OSError as e:
            raise ImageLoadError(f"{what} cannot be read ({e.strerror}); check permissions.") from e
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    else:
        data = source.read(max_bytes + 1)
        if not isinstance(data, bytes | bytearray):
            raise ImageLoadError(f"{what} is not a binary stream; open the file in 'rb' mode.")
        data = bytes(data)
    if len(data) > max_bytes:
        raise ImageLoadError(
            f"{what} is over the {max_bytes:,}-byte limit; resize or recompress it."
        )
    return data


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with transparency composited onto white (product photos use white backgrounds)."""
    if img.mode == "RGB":
        return img
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def load_image(
    source: ImageSource,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> Image.Image:
    """Open ``source`` as a fully decoded, EXIF-upright RGB image.

    ``source`` is a path, raw bytes, or a binary file object (e.g. a Streamlit upload).
    Raises :class:`ImageLoadError` for a missing, zero-byte, oversized, non-image, corrupt or
    truncated file, and for more than ``max_pixels`` pixels (checked from the header, before
    anything is decoded, so a decompression bomb never allocates its pixels).
    """
    what = _describe(source)
    data = _read_bytes(source, max_bytes, what)
    if not data:
        raise ImageLoadError(f"{what} is empty (0 bytes); re-download or re-export it.")
    with warnings.catch_warnings():
        # Our own pixel limit replaces PIL's global one (which only warns below 2x).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            looks_textual = data.lstrip()[:4].startswith(_TEXT_PREFIXES)
            kind = "a text or document file" if looks_textual else "in no recognised image format"
            raise ImageLoadError(
                f"{what} is {kind}, not an image; use a JPEG, PNG or WebP photo."
            ) from None
        except Image.DecompressionBombError:
            raise ImageLoadError(
                f"{what} declares too many pixels (possible decompression bomb); "
                f"use an image under {max_pixels:,} pixels."
            ) from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageLoadError(f"{what} is corrupt ({e}); re-download or re-export it.") from e
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"{what} has no pixels ({width}x{height}); it is corrupt.")
        if width * height > max_pixels:
            raise ImageLoadError(
                f"{what} is {width}x{height} = {width * height:,} pixels, over the "
                f"{max_pixels:,}-pixel limit (possible decompression bomb); downscale it."
            )
        try:
            img.load()
        except Image.DecompressionBombError:
            raise ImageLoadError(
                f"{what} decodes to too many pixels (possible decompression bomb); downscale it."
            ) from None
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            reason = "truncated" if "truncated" in str(e).lower() else "corrupt"
            raise ImageLoadError(
                f"{what} is {reason} and cannot be decoded ({e}); re-download or re-export it."
            ) from e
    return _to_rgb(_upright(img))


def _upright(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a malformed EXIF block is ignored rather than fatal."""
    try:
        return ImageOps.exif_transpose(img) or img
    except Exception:  # noqa: BLE001 - bad metadata must not make good pixels unusable
        logger.debug("ignoring unreadable EXIF orientation", exc_info=True)
        return img


def file_sha256(path: str | Path) -> str:
    """Content hash of an image file: the key under which its features and vectors are stored."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
