"""The colour prior: a training-free mapping from an image's colours to the eight features.

It answers when no model has been trained. Its direction comes from Palmer, Schloss, Xu
and Prado-Leon (PNAS 2013, "Music-color associations are mediated by emotion"): faster
music in the major mode, which sounds happier and more energetic, is matched with
lighter, more saturated, yellower (warmer) colours, and slower, minor music with darker,
desaturated, bluer ones. Valence, energy, danceability and loudness follow those
findings; contrast and edge density (busy, high-contrast, text-laden covers for intense,
wordy music; smooth, soft ones for acoustic music) are a weaker design heuristic, as is
everything said about instrumentalness, liveness and speechiness.

Each of the five inputs (`colour_stats.PRIOR_INPUTS`) becomes a score in (-1, 1):
tanh((value - reference) / scale), 0 for a typical cover. A feature in 0..1 is
sigmoid(logit(centre) + sum of weight * score); loudness is centre + sum of weight *
score in dB. The centres are the means of the TidyTuesday catalog (28,356 tracks), so a
typical cover gets typical music.

The weights are calibrated on real covers (`prior_fit`: 298 album thumbnails with their
albums' real features, `../shared/data/real-covers-features`): least squares with each
weight held to the sign of its direction (`DIRECTION`: Palmer's, and the heuristics that
contrast, edges and busy, text-laden covers go with intense, wordy, live music). The data
kept saturation (energy, danceability, loudness up; acousticness down), warmth (valence,
acousticness up) and a little lightness (valence); it set every contrast term and the
edge terms but one to 0, and instrumentalness, liveness and speechiness, whose offsets did
not beat the constant under cross-validation, get none: for them the prior says the
catalog's mean. Before calibration the table's hand-set weights scored a
cross-validated MSE 1.25x the constant's on those covers; now 0.89x
(`make bench-prior`).

| input (reference, scale)   | lightness (0.45, 0.2) | saturation (0.25, 0.2) | warmth (0, 0.2) | contrast (0.2, 0.1) | edge density (0.1, 0.1) | centre | grounds |
| -------------------------- | ----: | ----: | ----: | ----: | ----: | -----: | ------- |
| valence                    | +0.06 |       | +0.24 |       |       |  0.510 | Palmer: happy = lighter, yellower |
| energy                     |       | +0.58 |       |       |       |  0.698 | Palmer: fast = more saturated |
| danceability               |       | +0.58 |       |       |       |  0.653 | Palmer: fast, major = saturated |
| loudness (dB)              |       | +2.86 |       |       |       | -6.8 dB | Palmer (arousal: saturated) |
| acousticness               |       | -0.73 | +1.09 |       | -0.09 |  0.177 | Palmer: calm = desaturated; heuristic: warm, smooth |
| instrumentalness           |       |       |       |       |       |  0.091 | none held up |
| liveness                   |       |       |       |       |       |  0.191 | none held up |
| speechiness                |       |       |       |       |       |  0.108 | none held up |
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from pressedplay.colour_stats import PRIOR_INPUTS
from pressedplay.features import FEATURES, NAMES

# (reference, scale) of each input: a score of tanh((value - reference) / scale).
REFERENCE: dict[str, tuple[float, float]] = {
    "lightness": (0.45, 0.2),
    "saturation": (0.25, 0.2),
    "warmth": (0.0, 0.2),
    "contrast": (0.2, 0.1),
    "edge_density": (0.1, 0.1),
}
# Catalog means (TidyTuesday spotify_songs, 28,356 distinct tracks).
CENTRE: dict[str, float] = {
    "acousticness": 0.177,
    "danceability": 0.653,
    "energy": 0.698,
    "instrumentalness": 0.091,
    "liveness": 0.191,
    "loudness": -6.8,
    "speechiness": 0.108,
    "valence": 0.510,
}
# Weights per feature, in PRIOR_INPUTS order (lightness, saturation, warmth, contrast,
# edge density): logits for the 0-1 features, dB for loudness.
WEIGHTS: dict[str, tuple[float, float, float, float, float]] = {
    "acousticness": (0.0, -0.73, 1.09, 0.0, -0.09),
    "danceability": (0.0, 0.58, 0.0, 0.0, 0.0),
    "energy": (0.0, 0.58, 0.0, 0.0, 0.0),
    "instrumentalness": (0.0, 0.0, 0.0, 0.0, 0.0),
    "liveness": (0.0, 0.0, 0.0, 0.0, 0.0),
    "loudness": (0.0, 2.86, 0.0, 0.0, 0.0),
    "speechiness": (0.0, 0.0, 0.0, 0.0, 0.0),
    "valence": (0.06, 0.0, 0.24, 0.0, 0.0),
}
# Allowed signs per input (lightness, saturation, warmth, contrast, edge density).
DIRECTION: dict[str, tuple[int, int, int, int, int]] = {
    "acousticness": (0, -1, 1, -1, -1),
    "danceability": (1, 1, 1, 0, 1),
    "energy": (1, 1, 1, 1, 1),
    "instrumentalness": (-1, 0, -1, 0, -1),
    "liveness": (0, 0, 0, 1, 1),
    "loudness": (0, 1, 0, 1, 1),
    "speechiness": (0, 0, 0, 1, 1),
    "valence": (1, 1, 1, 0, 0),
}
_LINEAR = frozenset({"loudness"})

WEIGHT_MATRIX = np.array([WEIGHTS[name] for name in NAMES]).T  # (5, 8)
# The sign each weight may take when calibrated (`prior_fit`): the directions of the table
# before calibration, Palmer's and the heuristic ones; 0 means no term.
DIRECTIONS = np.array([DIRECTION[name] for name in NAMES]).T  # (5, 8)
IS_LINEAR = np.array([name in _LINEAR for name in NAMES])
LINK_CENTRE = np.array(
    [CENTRE[n] if n in _LINEAR else np.log(CENTRE[n] / (1 - CENTRE[n])) for n in NAMES]
)
_LOW = np.array([f.low for f in FEATURES])
_HIGH = np.array([f.high for f in FEATURES])


def scores(inputs: np.ndarray) -> np.ndarray:
    """(n, 5) prior inputs in PRIOR_INPUTS order -> (n, 5) scores in (-1, 1)."""
    reference = np.array([REFERENCE[name][0] for name in PRIOR_INPUTS])
    scale = np.array([REFERENCE[name][1] for name in PRIOR_INPUTS])
    return np.tanh((inputs - reference) / scale)


def predict_matrix(inputs: np.ndarray) -> np.ndarray:
    """(n, 5) prior inputs in PRIOR_INPUTS order -> (n, 8) features in NAMES order,
    original units (the first five columns of `colour_stats.matrix` are these inputs)."""
    raw = LINK_CENTRE + scores(np.asarray(inputs, dtype=np.float64)) @ WEIGHT_MATRIX
    features = np.where(IS_LINEAR, raw, 1 / (1 + np.exp(-raw)))
    return np.clip(features, _LOW, _HIGH)


def predict(stats: Mapping[str, float]) -> dict[str, float]:
    """The eight features (original units) for one image's colour statistics."""
    missing = [name for name in PRIOR_INPUTS if name not in stats]
    if missing:
        raise ValueError(f"colour statistics lack {', '.join(missing)}")
    row = predict_matrix(np.array([[stats[name] for name in PRIOR_INPUTS]]))[0]
    return {name: float(value) for name, value in zip(NAMES, row, strict=True)}
