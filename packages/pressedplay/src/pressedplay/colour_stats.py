"""Colour statistics of cover images: the colour prior's inputs and the ridge baseline's.

Statistics are computed in CIELAB (D65), where distances follow perceived colour, on
images squashed to 128 px by `loader.load_image` (as the model sees them; edge density
depends on that scale). The first five are the colour prior's inputs:

- lightness: mean L* / 100 (0 black, 1 white)
- saturation: mean chroma C*ab / 100 (0 grey; the most saturated sRGB colours reach ~1.3)
- warmth: mean projection of (a*, b*) on the orange-to-sky-blue diagonal, / 100
  (orange and red positive, blue and cyan negative, greys and greens near 0)
- contrast: standard deviation of L* / 100 (RMS contrast)
- edge density: fraction of pixels whose lightness gradient exceeds 10 L* per pixel

The rest are generic statistics a fair linear baseline should have: RGB channel means and
standard deviations, mean and spread of a* and b* (chroma-weighted hue cosine and sine),
Hasler and Suesstrunk's colourfulness, mean gradient (sharpness vs blur) and the 10th and
90th lightness percentiles.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from PIL import Image

PRIOR_INPUTS: tuple[str, ...] = ("lightness", "saturation", "warmth", "contrast", "edge_density")
NAMES: tuple[str, ...] = (
    *PRIOR_INPUTS,
    "red",
    "green",
    "blue",
    "red_std",
    "green_std",
    "blue_std",
    "lab_a",
    "lab_b",
    "lab_a_std",
    "lab_b_std",
    "colourfulness",
    "gradient",
    "lightness_p10",
    "lightness_p90",
)

EDGE_THRESHOLD = 0.10  # lightness step (in L*/100) between neighbouring pixels at 128 px
_CHUNK = 64  # images per vectorised pass: bounds the float32 working set to ~40 MB

# sRGB decoding: a table over the 256 byte values instead of a power per pixel.
_codes = np.arange(256, dtype=np.float64) / 255
_LINEAR = np.where(_codes <= 0.04045, _codes / 12.92, ((_codes + 0.055) / 1.055) ** 2.4).astype(
    np.float32
)
# Linear sRGB -> XYZ, each row divided by the D65 white point's X, Y, Z.
_TO_XYZ = (
    np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    / np.array([[0.95047], [1.0], [1.08883]])
).T.astype(np.float32)
_EPSILON = (6 / 29) ** 3


def lab(pixels: np.ndarray) -> np.ndarray:
    """uint8 sRGB (..., 3) -> float32 CIELAB (..., 3): L* 0-100, a* and b* about -128-128."""
    xyz = _LINEAR[pixels] @ _TO_XYZ
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def _chunk_stats(pixels: np.ndarray) -> np.ndarray:
    """(n, H, W, 3) uint8 -> (n, len(NAMES)) float64."""
    n = len(pixels)
    values = lab(pixels)
    lightness = values[..., 0] / 100
    a, b = values[..., 1] / 100, values[..., 2] / 100
    dx = np.diff(lightness, axis=2)[:, :-1, :]
    dy = np.diff(lightness, axis=1)[:, :, :-1]
    gradient = np.sqrt(dx * dx + dy * dy).reshape(n, -1)
    rgb = pixels.reshape(n, -1, 3).astype(np.float32) / 255
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = np.sqrt(rg.var(1) + yb.var(1)) + 0.3 * np.sqrt(
        rg.mean(1) ** 2 + yb.mean(1) ** 2
    )
    flat_l, flat_a, flat_b = (x.reshape(n, -1) for x in (lightness, a, b))
    p10, p90 = np.percentile(flat_l, [10, 90], axis=1)
    columns = [
        flat_l.mean(1),
        np.hypot(flat_a, flat_b).mean(1),
        ((flat_a + flat_b) / np.sqrt(2)).mean(1),
        flat_l.std(1),
        (gradient > EDGE_THRESHOLD).mean(1),
        *rgb.mean(1).T,
        *rgb.std(1).T,
        flat_a.mean(1),
        flat_b.mean(1),
        flat_a.std(1),
        flat_b.std(1),
        colourfulness,
        gradient.mean(1),
        p10,
        p90,
    ]
    return np.stack(columns, axis=1).astype(np.float64)


def _pixels(image: Image.Image | np.ndarray) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an RGB image or uint8 (H, W, 3) array, got {array.shape}")
    return array


def matrix(images: np.ndarray | Iterable[Image.Image | np.ndarray]) -> np.ndarray:
    """(n, len(NAMES)) statistics of n images: a uint8 array (n, H, W, 3), or an iterable
    of same-sized RGB images or arrays (covers from `loader.load_image`)."""
    if not isinstance(images, np.ndarray):
        images = [_pixels(image) for image in images]
        if not images:
            return np.zeros((0, len(NAMES)))
        images = np.stack(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise ValueError(f"expected uint8 images (n, H, W, 3), got {images.dtype} {images.shape}")
    if min(images.shape[1:3]) < 2:
        raise ValueError(f"images need at least 2x2 pixels for gradients, got {images.shape}")
    return np.concatenate(
        [_chunk_stats(images[i : i + _CHUNK]) for i in range(0, len(images), _CHUNK)]
        or [np.zeros((0, len(NAMES)))]
    )


def stats(image: Image.Image | np.ndarray) -> dict[str, float]:
    """The statistics of one image by name (squash it to 128 px first, as predict does)."""
    row = matrix(_pixels(image)[None])[0]
    return {name: float(value) for name, value in zip(NAMES, row, strict=True)}
