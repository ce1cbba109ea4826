"""Colour statistics: CIELAB reference values, contrast and edges of known images, batching."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from pressedplay import colour_stats
from pressedplay.colour_stats import NAMES, lab, matrix, stats
from pressedplay.loader import load_image


def _flat(rgb: tuple[int, int, int], size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), rgb)


def test_cielab_matches_published_values():
    # sRGB primaries and greys in CIELAB (D65), as tabulated by e.g. Bruce Lindbloom.
    pixels = np.array([[255, 0, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0], [119, 119, 119]])
    expected = [[53.24, 80.09, 67.20], [32.30, 79.19, -107.86], [100, 0, 0], [0, 0, 0], [50, 0, 0]]
    np.testing.assert_allclose(lab(pixels.astype(np.uint8)), expected, atol=0.3)


def test_a_flat_red_image():
    s = stats(_flat((255, 0, 0)))
    assert s["lightness"] == pytest.approx(0.5324, abs=1e-3)
    assert s["saturation"] == pytest.approx(math.hypot(0.8009, 0.6720), abs=1e-3)
    assert s["warmth"] == pytest.approx((0.8009 + 0.6720) / math.sqrt(2), abs=1e-3)
    assert s["lab_a"] == pytest.approx(0.8009, abs=1e-3)
    assert s["lab_b"] == pytest.approx(0.6720, abs=1e-3)
    for name in ("contrast", "edge_density", "gradient", "lab_a_std", "red_std"):
        assert s[name] == pytest.approx(0, abs=1e-6)
    assert (s["red"], s["green"], s["blue"]) == pytest.approx((1, 0, 0))
    # Hasler and Suesstrunk: rg = 1, yb = 0.5, no spread: 0.3 * sqrt(1.25).
    assert s["colourfulness"] == pytest.approx(0.3 * math.sqrt(1.25), abs=1e-6)
    assert s["lightness_p10"] == s["lightness_p90"] == pytest.approx(s["lightness"], abs=1e-6)


def test_black_and_white_halves_give_full_contrast_and_one_edge_column():
    pixels = np.zeros((128, 128, 3), dtype=np.uint8)
    pixels[:, 64:] = 255
    s = stats(pixels)
    assert s["lightness"] == pytest.approx(0.5, abs=1e-4)
    assert s["contrast"] == pytest.approx(0.5, abs=1e-4)
    assert s["saturation"] == pytest.approx(0, abs=1e-3)
    assert (s["lightness_p10"], s["lightness_p90"]) == pytest.approx((0, 1), abs=1e-4)
    # Gradients live on the 127 x 127 grid of pixel steps: one column of them crosses.
    assert s["edge_density"] == pytest.approx(1 / 127)
    assert s["gradient"] == pytest.approx(1 / 127, rel=1e-3)


def test_warmth_and_saturation_order_colours_as_people_do():
    warmth = {
        name: stats(_flat(rgb))["warmth"]
        for name, rgb in {
            "orange": (255, 150, 30),
            "red": (220, 30, 30),
            "grey": (128, 128, 128),
            "sky blue": (80, 160, 240),
            "cyan": (0, 200, 220),
        }.items()
    }
    assert warmth["red"] > 0.5 and warmth["orange"] > 0.5
    assert warmth["grey"] == pytest.approx(0, abs=1e-3)
    assert warmth["sky blue"] < -0.1 and warmth["cyan"] < -0.1
    vivid, muted = stats(_flat((230, 40, 160))), stats(_flat((150, 120, 140)))
    assert vivid["saturation"] > 3 * muted["saturation"]
    assert vivid["colourfulness"] > 3 * muted["colourfulness"]


def test_a_busy_image_has_more_edges_than_a_smooth_one():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], 128, 0)
    smooth = np.repeat(ramp, 3, axis=2)
    busy, calm = stats(noise), stats(smooth)
    assert busy["edge_density"] > 0.8 and calm["edge_density"] == 0
    assert busy["gradient"] > 10 * calm["gradient"]


def test_matrix_batches_like_single_images_across_chunks():
    rng = np.random.default_rng(1)
    n = colour_stats._CHUNK + 6  # more than one vectorised pass
    pixels = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
    batched = matrix(pixels)
    assert batched.shape == (n, len(NAMES))
    singles = np.array([[stats(p)[name] for name in NAMES] for p in pixels])
    np.testing.assert_allclose(batched, singles, rtol=1e-6, atol=1e-9)
    images = [Image.fromarray(p) for p in pixels[:3]]
    np.testing.assert_allclose(matrix(images), batched[:3])
    assert matrix([]).shape == (0, len(NAMES))


def test_a_real_cover_through_the_training_squash():
    buffer = io.BytesIO()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save(buffer, "JPEG")
    s = stats(load_image(buffer.getvalue()))
    assert all(math.isfinite(v) for v in s.values())
    assert 0 < s["lightness"] < 1 and 0 < s["contrast"] < 0.5 and 0 <= s["edge_density"] <= 1


def test_refuses_what_is_not_an_rgb_image():
    with pytest.raises(ValueError, match="uint8"):
        matrix(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="RGB"):
        stats(np.zeros((8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match="2x2"):
        stats(np.zeros((1, 8, 3), dtype=np.uint8))
