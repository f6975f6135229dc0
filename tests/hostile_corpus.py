"""A corpus of hostile inputs, made by code (nothing downloaded): what shoppers upload and type,
and what stores ship as catalogs and configuration.

Each entry names its kind; tests/test_hostile_inputs.py feeds every entry to the path that
meets it in use (the page's uploader and feedback box, the indexer's metadata CSV and images
folder, ``.env``). Kept apart from the tests so the browser check and any future fuzzing can
reuse the same corpus.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

# ---- uploads ------------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _garment(size=(160, 160), mode: str = "RGB") -> Image.Image:
    img = Image.new("RGB", size, "white")
    w, h = size
    img.paste((30, 40, 120), (w // 4, h // 8, 3 * w // 4, max(h // 8 + 1, 7 * h // 8)))
    return img.convert(mode) if mode != "RGB" else img


def _bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    """A small valid PNG header declaring 3.6 gigapixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND",
                                                                                     b"")


def _sixteen_bit_png() -> bytes:
    arr = (np.linspace(0, 65535, 64 * 64).reshape(64, 64)).astype(np.uint16)
    return _encode(Image.fromarray(arr), "PNG")  # mode I;16


def _transparent_palette_png() -> bytes:
    img = _garment().convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return _encode(img, "PNG", transparency=0)


def _animated_gif() -> bytes:
    frames = [_garment(), _garment().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    return _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)


@dataclass(frozen=True)
class Upload:
    kind: str
    name: str
    data: bytes
    refused_because: str | None  # words the one error must contain; None: accepted


def uploads() -> list[Upload]:
    """Files a shopper may upload: refused with one message, or converted and accepted."""
    jpeg = _encode(_garment(), "JPEG", quality=90)
    return [
        Upload("zero-byte file", "empty.jpg", b"", "is empty"),
        Upload("truncated JPEG", "cut.jpg", jpeg[: len(jpeg) // 2], "truncated"),
        Upload("garbage after a JPEG header", "noise.jpg",
               b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, "cannot be used"),
        Upload("text file named .jpg", "notes.jpg", b"just some notes\nnot a photo\n",
               "not an image"),
        Upload("SVG / HTML document", "logo.png",
               b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
               "text or document file"),
        Upload("PDF document", "invoice.png", b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n%%EOF\n",
               "text or document file"),
        Upload("decompression bomb PNG", "bomb.png", _bomb_png(), "decompression bomb"),
        Upload("file over the upload limit", "huge.bmp",
               _encode(_garment((1200, 1200)), "BMP"), "the limit is"),
        Upload("file name with Markdown and HTML", "**big** <b>x</b> [a](http://e.x) #1.jpg",
               b"\x00\x01not an image", "cannot be used"),
        Upload("CMYK JPEG", "cmyk.jpg", _encode(_garment(mode="CMYK"), "JPEG"), None),
        Upload("16-bit greyscale PNG", "deep.png", _sixteen_bit_png(), None),
        Upload("palette PNG with transparency", "clear.png", _transparent_palette_png(), None),
        Upload("animated GIF", "moving.gif", _animated_gif(), None),
        Upload("one-pixel image", "dot.png", _encode(Image.new("RGB", (1, 1), "navy"), "PNG"),
               None),
        Upload("6000x3 sliver", "sliver.png", _encode(_garment((6000, 3)), "PNG"), None),
    ]


# ---- feedback -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Feedback:
    kind: str
    raw: str
    model_sees: str | None  # exact text the model gets; None: checked by the test itself
    typable: bool = True  # False: no browser can send it (not UTF-8); only the cleaner sees it


FEEDBACK = [
    Feedback("control characters and an ANSI escape",
             "navy\x00 with\x1b[31m long\r\nsleeves\x07", "navy with [31m long sleeves"),
    Feedback("right-to-left override and RTL scripts",
             "\u202eevitpecer\u202c in \u05db\u05d7\u05d5\u05dc \u0623\u0632\u0631\u0642",
             "evitpecer in \u05db\u05d7\u05d5\u05dc \u0623\u0632\u0631\u0642"),
    Feedback("emoji with joiners, skin tones and flags",
             "like \U0001f469\u200d\U0001f52c but \U0001f44d\U0001f3fd \U0001f1ef\U0001f1f5",
             "like \U0001f469\u200d\U0001f52c but \U0001f44d\U0001f3fd \U0001f1ef\U0001f1f5"),
    Feedback("nothing but spaces, NBSP, ideographic and zero-width spaces",
             " \u00a0\u3000\u200b\t\n \ufeff ", ""),
    Feedback("100,000 characters", "navy " * 20_000, None),
    Feedback("Markdown, HTML, LaTeX and Streamlit directives",
             "**bold** # head [x](http://e.x) <img src=x onerror=alert(1)> $x^2$ :red[red] "
             ":smile:",
             "**bold** # head [x](http://e.x) <img src=x onerror=alert(1)> $x^2$ :red[red] "
             ":smile:"),
    Feedback("lone surrogate", "red \udc80 dress", "red dress", typable=False),
]


# ---- catalog metadata ---------------------------------------------------------------------

MARKUP_TITLES = {
    "m1": "**Bold** claim",
    "m2": "# Heading dress",
    "m3": "[Click me](http://evil.example) shirt",
    "m4": "<b>html</b> <script>alert(1)</script> top",
    "m5": "$E=mc^2$ :red[red] :smile: ~~gone~~ `code`",
    "m6": "> quoted | table | row\n- list item",
}
LONG_TITLE = "Very long title " * 625  # 10,000 characters
