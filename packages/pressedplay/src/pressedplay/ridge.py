"""Ridge regression on colour statistics: the baseline a learned model must beat, and one
of the candidates `train` chooses among on small data."""

from __future__ import annotations

import numpy as np

ALPHAS = np.logspace(-6, 3, 28)  # penalties tried (per unit of weighted mean loss)


class Ridge:
    """Multi-output ridge regression with weighted examples and an unpenalised intercept.

    Covers are weighted by their number of tracks, which makes a fit on per-cover mean
    targets the same as a fit on every (cover, track) pair. Inputs are standardised with
    the weighted train statistics; the penalty is per unit of weighted mean squared error,
    so one grid suits any dataset size. Each output has its own penalty (`choose`).
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        w = weights / weights.sum()
        self.x_mean = w @ x
        std = np.sqrt(w @ (x - self.x_mean) ** 2)
        self.x_std = np.where(std > 1e-12, std, 1.0)  # a constant input stays 0
        self.y_mean = w @ y
        z = (x - self.x_mean) / self.x_std
        self.gram = z.T @ (z * w[:, None])
        self.cross = z.T @ ((y - self.y_mean) * w[:, None])
        self.alpha = np.full(y.shape[1], ALPHAS[0])
        self.coef = self.solve(ALPHAS[0])

    def solve(self, alpha: float) -> np.ndarray:
        """(inputs, outputs) coefficients at penalty alpha."""
        return np.linalg.solve(self.gram + alpha * np.eye(len(self.gram)), self.cross)

    def predict(self, x: np.ndarray, coef: np.ndarray | None = None) -> np.ndarray:
        z = (x - self.x_mean) / self.x_std
        return self.y_mean + z @ (self.coef if coef is None else coef)

    def choose(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        """Per output, keep the penalty of ALPHAS with the lowest weighted squared error
        on held-out (x, y)."""
        coefs = [self.solve(alpha) for alpha in ALPHAS]
        errors = np.stack([weights @ (self.predict(x, coef) - y) ** 2 for coef in coefs])
        best = errors.argmin(0)  # per output
        self.alpha = ALPHAS[best]
        self.coef = np.stack([coefs[b][:, i] for i, b in enumerate(best)], axis=1)

    @classmethod
    def cross_validated(
        cls, x: np.ndarray, y: np.ndarray, weights: np.ndarray, folds: int = 5, seed: int = 0
    ) -> Ridge:
        """Fitted on all of (x, y), each output's penalty the one of ALPHAS with the lowest
        k-fold held-out error: no other split is spent on choosing it."""
        fold = np.random.default_rng(seed).permutation(len(x)) % folds
        errors = np.zeros((len(ALPHAS), y.shape[1]))
        for k in range(folds):
            inside, held = fold != k, fold == k
            if not held.any() or inside.sum() < 2:
                continue
            part = cls(x[inside], y[inside], weights[inside])
            for i, alpha in enumerate(ALPHAS):
                error = part.predict(x[held], part.solve(alpha)) - y[held]
                errors[i] += weights[held] @ error**2
        ridge = cls(x, y, weights)
        best = errors.argmin(0)
        ridge.alpha = ALPHAS[best]
        ridge.coef = np.stack([ridge.solve(ALPHAS[b])[:, i] for i, b in enumerate(best)], axis=1)
        return ridge

    def to_dict(self) -> dict:
        return {
            name: getattr(self, name).tolist()
            for name in ("x_mean", "x_std", "y_mean", "alpha", "coef")
        }

    @classmethod
    def from_dict(cls, data: dict) -> Ridge:
        """A fitted ridge from `to_dict` (only what predicting needs)."""
        ridge = cls.__new__(cls)
        for name in ("x_mean", "x_std", "y_mean", "alpha", "coef"):
            setattr(ridge, name, np.asarray(data[name], dtype=np.float64))
        return ridge
