"""Behaviour of the shared image loader on good and bad input."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pytest
from PIL import Image

from imaging import MAX_IMAGE_PIXELS, ImageLoadError, load_image


def _jpeg_bytes(size=(40, 30), color=(200, 10, 10), exif=None) -> bytes:
    buf = io.BytesIO()
    kwargs = {"exif": exif} if exif is not None else {}
    Image.new("RGB", size, color).save(buf, "JPEG", quality=95, **kwargs)
    return buf.getvalue()


def test_loads_path_bytes_and_stream_as_rgb(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "a.jpg"
    path.write_bytes(data)
    for source in (path, str(path), data, io.BytesIO(data)):
        img = load_image(source)
        assert img.mode == "RGB"
        assert img.size == (40, 30)
        r, g, b = img.getpixel((20, 15))
        assert r > 150 and g < 60 and b < 60


def test_grayscale_and_palette_become_rgb() -> None:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buf, "PNG")
    assert load_image(buf.getvalue()).mode == "RGB"
    buf = io.BytesIO()
    Image.new("P", (8, 8), 3).save(buf, "GIF")
    assert load_image(buf.getvalue()).mode == "RGB"


def test_transparency_is_composited_on_white() -> None:
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(buf, "PNG")
    img = load_image(buf.getvalue())
    assert img.mode == "RGB"
    assert img.getpixel((4, 4)) == (255, 255, 255)


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img = load_image(_jpeg_bytes(size=(40, 30), exif=exif.tobytes()))
    assert img.size == (30, 40)


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty"):
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize(
    "payload",
    [b"hello, this is a text file\n", b"<html><body>404</body></html>", b"%PDF-1.4 ..."],
)
def test_non_image_input(payload: bytes) -> None:
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(payload)


def test_corrupt_image_body() -> None:
    data = bytearray(_jpeg_bytes(size=(64, 64)))
    # Keep the JPEG header (so PIL identifies it) and overwrite the entropy-coded data.
    for i in range(200, len(data) - 2):
        data[i] = 0xFF if i % 2 else 0xD9
    with pytest.raises(ImageLoadError, match="corrupt|truncated"):
        load_image(bytes(data))


def test_corrupt_header() -> None:
    data = bytearray(_jpeg_bytes())
    data[2:40] = b"\x00" * 38
    with pytest.raises(ImageLoadError):
        load_image(bytes(data))


def test_truncated_image(tmp_path: Path) -> None:
    buf = io.BytesIO()
    # Noise does not compress, so cutting the file in half loses real pixel data.
    Image.effect_noise((128, 128), 64).convert("RGB").save(buf, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageLoadError, match="truncated|corrupt"):
        load_image(path)


def test_pixel_limit_is_checked_before_decoding() -> None:
    buf = io.BytesIO()
    Image.new("L", (2000, 2000), 0).save(buf, "PNG")  # tiny file, 4 megapixels
    data = buf.getvalue()
    assert len(data) < 100_000
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(data, max_pixels=1_000_000)
    assert load_image(data, max_pixels=MAX_IMAGE_PIXELS).size == (2000, 2000)


def test_declared_bomb_beyond_pil_limit() -> None:
    # A PNG header declaring 100k x 100k pixels: refused from the header alone.
    buf = io.BytesIO()
    Image.new("1", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = (100_000).to_bytes(4, "big") + (100_000).to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # keep the IHDR CRC valid
    with pytest.raises(ImageLoadError, match="pixels"):
        load_image(bytes(data))


def test_byte_limit(tmp_path: Path) -> None:
    data = _jpeg_bytes(size=(64, 64))
    path = tmp_path / "big.jpg"
    path.write_bytes(data)
    for source in (path, data, io.BytesIO(data)):
        with pytest.raises(ImageLoadError, match="byte limit"):
            load_image(source, max_bytes=len(data) - 1)
    assert load_image(path, max_bytes=len(data)).size == (64, 64)


def test_error_is_a_value_error_with_actionable_message(tmp_path: Path) -> None:
    path = tmp_path / "x.jpg"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ValueError) as info:
        load_image(path)
    message = str(info.value)
    assert "x.jpg" in message
    assert "use a JPEG" in message
