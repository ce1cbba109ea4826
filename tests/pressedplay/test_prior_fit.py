"""Calibrating the colour prior: sign-constrained least squares, cross-validated."""

from __future__ import annotations

import numpy as np
import pytest

from pressedplay import prior, prior_fit
from pressedplay.features import NAMES

VALENCE, ENERGY, LOUDNESS = (NAMES.index(n) for n in ("valence", "energy", "loudness"))


def _data(weights: np.ndarray, n: int = 400, noise: float = 0.0, seed: int = 0):
    """Prior scores and targets made by the prior's own form with the given weights."""
    rng = np.random.default_rng(seed)
    scores = np.tanh(rng.normal(size=(n, 5)))
    targets = np.stack(
        [prior_fit.predict_feature(j, weights[:, j], scores) for j in range(len(NAMES))], axis=1
    )
    return scores, targets + noise * rng.normal(size=targets.shape) * targets.std(0)


def test_weights_of_the_allowed_signs_are_recovered():
    true = np.where(prior.DIRECTIONS != 0, prior.DIRECTIONS * 0.4, 0.0)
    scores, targets = _data(true)
    fitted = prior_fit.fit(scores, targets, alpha=0.0)
    np.testing.assert_allclose(fitted, true, atol=1e-6)


def test_a_direction_the_data_contradicts_ends_at_zero():
    true = np.zeros((5, len(NAMES)))
    true[0, VALENCE] = -0.8  # darker covers happier: against Palmer's lightness term
    true[2, VALENCE] = 0.5  # warmer covers happier, as Palmer found
    scores, targets = _data(true, noise=0.1)
    fitted = prior_fit.fit(scores, targets)
    assert fitted[0, VALENCE] == 0.0 and fitted[2, VALENCE] > 0.3
    assert np.all(fitted * prior.DIRECTIONS >= 0)


def test_calibration_drops_features_the_colours_do_not_predict():
    true = np.zeros((5, len(NAMES)))
    true[1, ENERGY] = 0.6
    true[1, LOUDNESS] = 3.0
    scores, targets = _data(true, n=300, noise=0.5, seed=1)
    weights, errors = prior_fit.calibrate(scores, targets)
    moved = {NAMES[j] for j in range(len(NAMES)) if np.any(weights[:, j])}
    assert moved == {"energy", "loudness"}
    for name in moved:
        j = NAMES.index(name)
        assert errors["fitted"][j] < 0.9 * errors["constant"][j]
    assert errors["constant"][VALENCE] == pytest.approx(errors["fitted"][VALENCE], rel=0.05)
