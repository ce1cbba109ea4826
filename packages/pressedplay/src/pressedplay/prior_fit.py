"""Calibrating the colour prior on real covers: how its weights in `prior.WEIGHTS` were set.

The prior's form stays: the catalog's mean plus colour-driven offsets (`prior`'s module
docstring). What is fitted is the size of each offset, per feature, by least squares on
labelled real covers in standardised units, with every weight held to the sign of the
direction it stands for (a direction the data contradicts ends at 0, dropped) and a small
ridge penalty. A feature whose fitted offsets do not beat the constant under
cross-validation keeps none, so the prior never claims to move what it cannot.

`benchmarks/prior_calibration.py` runs this on a cover dataset and prints the weights and
the cross-validated errors; the weights in `prior.py` are its output on the 298 real covers
of `../shared/data/real-covers-features`.
"""

from __future__ import annotations

import itertools

import numpy as np

from pressedplay import prior
from pressedplay.features import NAMES

ALPHA = 0.01  # ridge penalty per unit of mean squared error (standardised units)
_STEPS = 30  # Gauss-Newton steps: the problems are tiny and converge in a handful


def predict_feature(j: int, weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Feature j (NAMES order, original units) from (n, 5) prior scores and its 5 weights."""
    raw = prior.LINK_CENTRE[j] + scores @ weights
    return raw if prior.IS_LINEAR[j] else 1 / (1 + np.exp(-raw))


def _gauss_newton(
    j: int, scores: np.ndarray, target: np.ndarray, scale: float, terms: list[int], alpha: float
) -> np.ndarray:
    weights = np.zeros(scores.shape[1])
    for _ in range(_STEPS if terms else 0):
        value = predict_feature(j, weights, scores)
        slope = np.ones_like(value) if prior.IS_LINEAR[j] else value * (1 - value)
        jacobian = scores[:, terms] * slope[:, None] / scale
        residual = (target - value) / scale
        hessian = jacobian.T @ jacobian / len(target) + alpha * np.eye(len(terms))
        gradient = jacobian.T @ residual / len(target) - alpha * weights[terms]
        weights[terms] += np.linalg.solve(hessian, gradient)
    return weights


def fit_feature(
    j: int, scores: np.ndarray, target: np.ndarray, scale: float, alpha: float = ALPHA
) -> np.ndarray:
    """The 5 weights of feature j minimising penalised squared error with each weight on
    the side of 0 that `prior.DIRECTIONS` gives it (0 where it gives none).

    Exact for the sign constraints: the optimum lies on one face of the feasible orthant,
    so every subset of free terms is fitted unconstrained and the best feasible one kept.
    """
    signs = prior.DIRECTIONS[:, j]
    free = [i for i in range(len(signs)) if signs[i] != 0]
    best, best_loss = np.zeros(scores.shape[1]), np.inf
    for size in range(len(free) + 1):
        for terms in itertools.combinations(free, size):
            weights = _gauss_newton(j, scores, target, scale, list(terms), alpha)
            if np.any(weights * signs < 0):
                continue
            error = (predict_feature(j, weights, scores) - target) / scale
            loss = float(np.mean(error**2) + alpha * weights @ weights)
            if loss < best_loss:
                best, best_loss = weights, loss
    return best


def fit(scores: np.ndarray, targets: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """(5, 8) weights for (n, 5) prior scores and (n, 8) targets in original units."""
    scale = targets.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    return np.stack(
        [fit_feature(j, scores, targets[:, j], scale[j], alpha) for j in range(len(NAMES))],
        axis=1,
    )


def cross_validate(
    scores: np.ndarray,
    targets: np.ndarray,
    *,
    folds: int = 10,
    repeats: int = 3,
    alpha: float = ALPHA,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per-feature MSE (standardised by the targets' std) of the fitted prior, the
    constant (catalog mean) and the weights prior.py ships, over repeated k-fold."""
    n = len(targets)
    scale = targets.std(0)
    scale = np.where(scale > 0, scale, 1.0)
    names = ("fitted", "constant", "shipped")
    errors = {name: np.zeros(len(NAMES)) for name in names}
    for repeat in range(repeats):
        fold = np.random.default_rng(seed + repeat).permutation(n) % folds
        for k in range(folds):
            train, test = fold != k, fold == k
            weights = {
                "fitted": fit(scores[train], targets[train], alpha),
                "constant": np.zeros_like(prior.WEIGHT_MATRIX),
                "shipped": prior.WEIGHT_MATRIX,
            }
            for name in names:
                for j in range(len(NAMES)):
                    value = predict_feature(j, weights[name][:, j], scores[test])
                    errors[name][j] += (((value - targets[test, j]) / scale[j]) ** 2).sum()
    return {name: error / (n * repeats) for name, error in errors.items()}


def calibrate(
    scores: np.ndarray, targets: np.ndarray, alpha: float = ALPHA
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weights fitted on all covers, with every feature whose fitted offsets do not beat
    the constant under cross-validation set back to 0; and the cross-validated errors."""
    errors = cross_validate(scores, targets, alpha=alpha)
    weights = fit(scores, targets, alpha)
    weights[:, errors["fitted"] >= errors["constant"]] = 0.0
    return weights, errors
