"""images.decode on real encoded bytes made with Pillow: each kind of awkward input is
either decoded to upright 8-bit RGB or refused with a short reason."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pressedplay import images
from pressedplay.errors import UserError
from pressedplay.images import ImageError, decode


def encode(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def pixel(image: Image.Image, xy=(0, 0)) -> tuple[int, ...]:
    return image.getpixel(xy)


def close(a, b, tolerance=6) -> bool:
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def reason(data: bytes) -> str:
    with pytest.raises(ImageError) as caught:
        decode(data)
    assert isinstance(caught.value, UserError)
    assert caught.value.reason in str(caught.value)
    return caught.value.reason


def test_plain_jpeg_and_png_decode_to_rgb():
    source = Image.new("RGB", (40, 30), (200, 30, 60))
    for data in (encode(source, "JPEG", quality=95), encode(source, "PNG")):
        image = decode(data)
        assert (image.mode, image.size) == ("RGB", (40, 30))
        assert close(pixel(image, (20, 15)), (200, 30, 60))


def test_greyscale_and_one_bit():
    grey = decode(encode(Image.new("L", (8, 8), 90), "PNG"))
    assert grey.mode == "RGB" and pixel(grey) == (90, 90, 90)
    bits = Image.new("1", (8, 8), 1)
    bits.putpixel((0, 0), 0)
    image = decode(encode(bits, "PNG"))
    assert pixel(image) == (0, 0, 0) and pixel(image, (1, 1)) == (255, 255, 255)


def test_sixteen_bit_png_is_scaled_not_clipped():
    values = np.array([[0, 257 * 100], [32768, 65535]], dtype=np.uint16)
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit on disk
    image = decode(data)
    assert image.mode == "RGB"
    assert [pixel(image, xy)[0] for xy in ((0, 0), (1, 0), (0, 1), (1, 1))] == [0, 100, 128, 255]


def test_alpha_is_composited_over_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((1, 1), (0, 0, 255, 255))  # opaque blue
    rgba.putpixel((2, 2), (0, 0, 0, 128))  # half-transparent black
    image = decode(encode(rgba, "PNG"))
    assert pixel(image) == (255, 255, 255)
    assert pixel(image, (1, 1)) == (0, 0, 255)
    assert close(pixel(image, (2, 2)), (127, 127, 127), 1)
    grey_alpha = decode(encode(Image.new("LA", (2, 2), (0, 0)), "PNG"))
    assert pixel(grey_alpha) == (255, 255, 255)


def test_palette_with_and_without_transparency():
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([10, 20, 30, 250, 0, 0] + [0] * 762)
    palette.putpixel((1, 1), 1)
    image = decode(encode(palette, "PNG"))
    assert pixel(image) == (10, 20, 30) and pixel(image, (1, 1)) == (250, 0, 0)
    image = decode(encode(palette, "PNG", transparency=0))
    assert pixel(image) == (255, 255, 255) and pixel(image, (1, 1)) == (250, 0, 0)


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red in print colours
    data = encode(cmyk, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    image = decode(data)
    assert image.mode == "RGB"
    assert close(pixel(image, (8, 8)), (255, 0, 0), 8)


def test_animated_gif_keeps_the_first_frame():
    frames = [Image.new("RGB", (10, 10), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2
    image = decode(data)
    assert image.mode == "RGB" and close(pixel(image, (5, 5)), (255, 0, 0), 2)


def test_exif_rotated_jpeg_is_turned_upright():
    stored = Image.new("RGB", (60, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the left of the stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    image = decode(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert image.size == (20, 60)
    assert close(pixel(image, (10, 3)), (255, 0, 0), 30)  # red now along the top
    assert close(pixel(image, (10, 50)), (0, 0, 255), 30)


@pytest.mark.parametrize("format", ["JPEG", "PNG"])
def test_truncated_images_are_refused(format):
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), format)
    assert decode(data).size == (64, 64)
    assert reason(data[: len(data) // 2]) == "corrupt image"


def test_corrupt_png_data_is_refused():
    data = bytearray(encode(Image.new("RGB", (32, 32), (1, 2, 3)), "PNG"))
    start = data.index(b"IDAT") + 4
    data[start : start + 8] = b"\xff" * 8  # garbage in the zlib stream
    assert reason(bytes(data)) == "corrupt image"


def test_non_images_empty_and_oversized_files():
    assert reason(b"<html><body>404 Not Found</body></html>") == "not an image"
    assert reason(b"") == "empty file"
    assert reason(b"\xff\xd8\xff" + b"\x00" * 10) in {"not an image", "corrupt image"}
    assert reason(b"x" * (images.MAX_BYTES + 1)) == "too large file"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size in a few bytes: the shape of a decompression bomb."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_decompression_bombs_are_refused_before_decoding():
    # Above our limit but below Pillow's own warning threshold: our check refuses it.
    assert reason(png_header_only(8000, 8000)) == "too many pixels"
    # Above twice Pillow's limit: Pillow's DecompressionBombError, same reason.
    assert reason(png_header_only(20000, 20000)) == "too many pixels"


def test_size_validates_fully():
    data = encode(Image.new("RGB", (33, 17)), "JPEG")
    assert images.size(data) == (33, 17)
    assert reason(data[:100]) == "corrupt image"
    big = encode(Image.new("RGB", (640, 320), (9, 9, 9)), "JPEG")
    assert images.size(big) == (640, 320)  # as stored, though checked at 1/8 scale


def outcome(check, data: bytes) -> str:
    try:
        check(data)
    except images.ImageError as exc:
        return exc.reason
    return "ok"


def test_size_refuses_exactly_what_a_full_decode_refuses():
    """size() checks JPEGs at their smallest DCT scale; damage shows there as in full
    (colour, greyscale and CMYK, baseline and progressive)."""
    rng = np.random.default_rng(0)
    outcomes = []
    for case in range(150):
        r = np.random.default_rng(case % 10)
        pixels = r.integers(0, 64, (96, 128, 3)) + np.linspace(0, 180, 128)[None, :, None]
        image = Image.fromarray(pixels.astype(np.uint8)).convert(("RGB", "L", "CMYK")[case % 3])
        data = bytearray(encode(image, "JPEG", progressive=case // 3 % 2 == 1))
        if case // 6 % 3 == 0:  # cut anywhere
            data = data[: rng.integers(2, len(data))]
        elif case // 6 % 3 == 1:  # a few bytes changed
            for at in rng.integers(0, len(data), rng.integers(1, 4)):
                data[at] = rng.integers(0, 256)
        else:  # a run of garbage
            at = rng.integers(0, len(data) - 50)
            data[at : at + 50] = rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
        full = outcome(decode, bytes(data))
        assert outcome(images.size, bytes(data)) == full, case
        outcomes.append(full)
    assert {"ok", "corrupt image"} <= set(outcomes)  # both kinds of case were made
