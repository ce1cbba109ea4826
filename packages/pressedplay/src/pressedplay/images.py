"""Decode untrusted cover images into plain 8-bit RGB, or refuse them with a short reason.

Covers come from Spotify's CDN and from users' folders: truncated downloads, HTML saved
as .jpg, CMYK scans, 16-bit PNGs, animated GIFs and phone photos that are only upright
through their EXIF tag all occur. Every image the dataset keeps must decode the same way
in the training loader later, so validation is a full decode, not a header sniff (JPEGs
at their smallest DCT scale, which reads and entropy-decodes every byte all the same).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pressedplay.errors import UserError

# About 6,300 x 6,300: far above any cover art, far below what exhausts memory
# (a decoded RGBA image of this size is 160 MB).
MAX_PIXELS = 40_000_000
# What is actually decoded, after a JPEG's draft scaling: 4,000 x 4,000 at most (64 MB as
# Pillow holds RGB). A JPEG up to MAX_PIXELS drafts below it; a PNG or TIFF cannot
# be decoded smaller, so a bigger one is refused from its header, before any decoding
# (a burst of 85 KB 6,300 x 6,300 16-bit PNGs once took a server to 4.7 GB).
MAX_DECODED_PIXELS = 16_000_000
MAX_BYTES = 20 * 1024 * 1024

_WHITE = (255, 255, 255)
# 0..65535 rounded to 0..255, as a table: one gather per pixel instead of int64 arithmetic.
_SIXTEEN_TO_EIGHT = ((np.arange(65536, dtype=np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


class ImageError(UserError):
    """An image that cannot be used; `reason` is short and stable, for counting skips."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def decode(data: bytes, draft: tuple[int, int] | None = None) -> Image.Image:
    """The image fully decoded, upright, first frame only, as 8-bit RGB; else ImageError.

    With `draft` (width, height), a JPEG is decoded by the decoder's DCT scaling straight
    to the smallest scale still at least that size: the same checks, the whole stream
    still read (so truncation still shows), a fraction of the work for a small result.
    """
    return to_rgb(_load(data, draft)[0])


def size(data: bytes) -> tuple[int, int]:
    """(width, height) as stored, after the validating decode at the smallest draft scale.

    For workers that only check: every byte of the stream is still entropy-decoded (a
    JPEG's scale changes only the inverse DCT), so what fails here fails at any size the
    loader later asks for, and what passes passes; a 640 px cover costs a third less.
    """
    image, stored = _load(data, (1, 1))
    to_rgb(image)
    return stored


def _load(data: bytes, draft: tuple[int, int] | None) -> tuple[Image.Image, tuple[int, int]]:
    """The loaded first frame, upright, in its own mode, and the size the file declares."""
    if not data:
        raise ImageError("empty file")
    if len(data) > MAX_BYTES:
        raise ImageError("too large file", f"{len(data):,} bytes, limit {MAX_BYTES:,}")
    with warnings.catch_warnings():
        # Pillow only warns between its own limit and twice it; we refuse instead.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("too many pixels", str(exc)) from None
        except UnidentifiedImageError:
            raise ImageError("not an image") from None
        except Exception as exc:  # a broken header may raise anything
            raise ImageError("corrupt image", str(exc)) from None
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageError("corrupt image", f"size {width}x{height}")
        if width * height > MAX_PIXELS:
            raise ImageError("too many pixels", f"{width}x{height}, limit {MAX_PIXELS:,}")
        try:
            if image.format == "JPEG":
                image.draft("RGB", _draft_size(width, height, draft))
            if image.width * image.height > MAX_DECODED_PIXELS:
                raise ImageError(
                    "too many pixels to decode",
                    f"{image.width}x{image.height}, limit {MAX_DECODED_PIXELS:,} "
                    "(JPEGs are decoded scaled down; other formats in full)",
                )
            image.load()  # the first frame of an animation; truncation shows up here
            ImageOps.exif_transpose(image, in_place=True)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageError("too many pixels", str(exc)) from None
        except ImageError:
            raise
        except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError...
            raise ImageError("corrupt image", str(exc)) from None
    return image, (width, height)


def _draft_size(width: int, height: int, wanted: tuple[int, int] | None) -> tuple[int, int] | None:
    """The size to ask a JPEG's draft for: `wanted`, and small enough that the decode fits
    MAX_DECODED_PIXELS (draft scales by 1/2, 1/4 or 1/8 to at least the size asked for, so
    half the fitting size is asked: the result lies between it and the fitting size)."""
    if width * height <= MAX_DECODED_PIXELS:
        return wanted
    scale = (MAX_DECODED_PIXELS / (width * height)) ** 0.5 / 2
    fit = (max(1, int(width * scale)), max(1, int(height * scale)))
    return fit if wanted is None else (min(fit[0], wanted[0]), min(fit[1], wanted[1]))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited over white, as cover art is shown on a page."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        # 16-bit greyscale: scale 0..65535 to 0..255 (convert("L") would clip instead).
        values = np.asarray(image if image.mode == "I;16" else image.convert("I"))
        grey = _SIXTEEN_TO_EIGHT[np.clip(values, 0, 65535)]
        return Image.fromarray(grey).convert("RGB")
    if image.mode == "F":
        grey = np.clip(np.asarray(image, dtype=np.float64), 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode != "RGB":
        return image.convert("RGB")
    return image
