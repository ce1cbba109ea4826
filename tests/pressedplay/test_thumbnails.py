"""Real cover files are often 64x64 or 300x300 thumbnails: both must read as the same cover."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pressedplay import checkpoints, colour_stats, synth_covers
from pressedplay.features import NAMES
from pressedplay.loader import load_image
from pressedplay.model import VAEAttention
from pressedplay.predict import load_predictor, predict_bytes


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _pairs(n: int = 12) -> list[tuple[bytes, bytes]]:
    """(300x300 cover, its 64x64 thumbnail) JPEGs, as Spotify serves both sizes."""
    rng = np.random.default_rng(0)
    pairs = []
    for _ in range(n):
        cover = synth_covers.render(synth_covers.cover_tracks(rng, 5).mean(0), rng, size=300)
        image = Image.open(io.BytesIO(cover)).convert("RGB")
        pairs.append((_jpeg(image), _jpeg(image.resize((64, 64), Image.Resampling.LANCZOS))))
    return pairs


def test_a_thumbnail_has_the_colour_statistics_of_its_full_size_cover():
    big, small = (np.stack([np.asarray(load_image(p[k])) for p in _pairs()]) for k in (0, 1))
    for name, a, b in zip(
        colour_stats.NAMES, colour_stats.matrix(big).T, colour_stats.matrix(small).T, strict=True
    ):
        # Squashed to 128 px either way: the upscaled thumbnail is smoother, nothing more.
        assert np.abs(a - b).mean() < (0.04 if name == "edge_density" else 0.02), name


@pytest.mark.parametrize("model", ["prior", "vae"])
def test_a_thumbnail_is_predicted_like_its_full_size_cover(model, tmp_path):
    if model == "vae":
        torch.manual_seed(0)
        path = tmp_path / "best.pt"
        checkpoints.save(
            path, checkpoints.payload(VAEAttention(), np.zeros(8), np.ones(8), epoch=1, step=1)
        )
        model = str(path)
    predictor = load_predictor(model)
    pairs = _pairs()
    big = predict_bytes([(f"{i}", p[0]) for i, p in enumerate(pairs)], predictor)
    small = predict_bytes([(f"{i}", p[1]) for i, p in enumerate(pairs)], predictor)
    a = np.array([[r["features"][n] for n in NAMES] for r in big])
    b = np.array([[r["features"][n] for n in NAMES] for r in small])
    spread = np.maximum(a.std(0), 1e-9)
    # Differences between a cover and its thumbnail stay well under the differences
    # between covers.
    assert np.all(np.abs(a - b).mean(0) < 0.35 * spread + 1e-9)
