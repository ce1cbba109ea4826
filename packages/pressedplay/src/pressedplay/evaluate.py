"""Score a trained model on a split of a cover dataset against three baselines.

Errors are over the split's (cover, track) pairs, in the dataset's standardised units
(feature_stats: train-split mean and std), so every feature counts alike and a model
that always answers the train mean scores an MSE of about 1. The baselines:

- mean: the train split's mean target, whatever the image;
- ridge: ridge regression on the image's colour statistics (`colour_stats.NAMES`,
  standardised on the train covers), fitted on the train split, with one penalty per
  feature chosen on the valid split from a grid; the model is fitted on train only, like
  the VAE, whose checkpoint was also chosen on valid;
- prior: the training-free colour prior.

The VAE's predictions go from its own units to original units to the dataset's
standardised units, so a model trained on another dataset is scored fairly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from pressedplay import checkpoints, colour_stats, prior
from pressedplay.devices import pick_device
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import CoverPairs, worker_context
from pressedplay.predict import STATS_SIZE, VAEPredictor

ALPHAS = np.logspace(-6, 3, 28)  # ridge penalties tried (per unit of weighted mean loss)


class Split:
    """One split: its covers in id order (images, mean targets) and its pairs' targets."""

    def __init__(self, db: Path, name: str) -> None:
        self.db = Path(db)
        self.name = name
        self.pairs = CoverPairs(db, name, augment=False, cache_mb=0)
        self.covers = self.cover_images(STATS_SIZE)
        self.cover_ids, self.pair_cover, counts = np.unique(
            self.pairs.cover_ids, return_inverse=True, return_counts=True
        )
        if not len(self.cover_ids):
            raise UserError(f"{db} has no covers in the {name} split")
        self.counts = counts.astype(np.float64)  # pairs per cover: the covers' weights
        self.targets = self.pairs.targets.astype(np.float64)  # (pairs, 8) standardised
        self.cover_targets = self.covers.targets.astype(np.float64)  # (covers, 8) means

    def cover_images(self, size: int) -> CoverPairs:
        """One example per cover: the uint8 cover squashed to size x size, as in training."""
        return CoverPairs(
            self.db,
            self.name,
            size=size,
            augment=False,
            normalise=False,
            cache_mb=0,
            targets="cover",
        )

    def standardise(self, original: np.ndarray) -> np.ndarray:
        """(n, 8) original units -> the dataset's standardised units."""
        return (original - self.pairs.mean) / self.pairs.std

    def per_cover(
        self,
        size: int,
        functions: Sequence[Callable[[np.ndarray], np.ndarray]],
        *,
        batch_size: int,
        workers: int,
        progress: Callable[[int], None] | None = None,
    ) -> list[np.ndarray]:
        """Each function applied to batches of the covers (uint8 (b, size, size, 3)),
        concatenated in cover order: streaming, so a split is never held as pixels."""
        covers = self.covers if size == self.covers.size else self.cover_images(size)
        loader = DataLoader(
            covers,
            batch_size=batch_size,
            num_workers=workers,
            multiprocessing_context=worker_context(workers),
        )
        outputs: list[list[np.ndarray]] = [[] for _ in functions]
        for images, _, _ in loader:
            pixels = images.permute(0, 2, 3, 1).numpy()
            for function, output in zip(functions, outputs, strict=True):
                output.append(function(pixels))
            if progress is not None:
                progress(len(images))
        return [np.concatenate(output) for output in outputs]


def scores(predicted: np.ndarray, split: Split) -> dict:
    """MSE and MAE over the split's pairs, overall and per feature, of (covers, 8)
    per-cover predictions in standardised units."""
    error = predicted[split.pair_cover] - split.targets
    mse, mae = (error**2).mean(0), np.abs(error).mean(0)
    return {
        "mse": float(mse.mean()),
        "mae": float(mae.mean()),
        "per_feature": {
            name: {"mse": float(mse[i]), "mae": float(mae[i])} for i, name in enumerate(NAMES)
        },
    }


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


def evaluate(
    model: Path,
    db: Path,
    *,
    split: str = "test",
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> dict:
    """The model's and the baselines' errors on `split`; see the module docstring.

    `progress(n)` is called as covers are read: those of train, valid and `split`.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    vae = VAEPredictor(checkpoints.load_model(Path(model), pick_device(device)))
    splits = {name: Split(db, name) for name in dict.fromkeys((split, "train", "valid"))}
    evaluated, train, valid = splits[split], splits["train"], splits["valid"]
    read = {"batch_size": batch_size, "workers": workers, "progress": progress}
    functions = {name: [colour_stats.matrix] for name in splits}
    same_size = vae.image_size == STATS_SIZE
    if same_size:  # one pass over the split for both
        functions[split].append(vae.predict_pixels)
    outputs = {
        name: part.per_cover(STATS_SIZE, functions[name], **read) for name, part in splits.items()
    }
    stats = {name: output[0] for name, output in outputs.items()}
    if same_size:
        vae_original = outputs[split][1]
    else:
        (vae_original,) = evaluated.per_cover(vae.image_size, [vae.predict_pixels], **read)

    ridge = Ridge(stats["train"], train.cover_targets, train.counts)
    ridge.choose(stats["valid"], valid.cover_targets, valid.counts)
    prior_inputs = stats[split][:, : len(colour_stats.PRIOR_INPUTS)]
    predictions = {
        "vae": evaluated.standardise(vae_original),
        "mean": np.tile(train.targets.mean(0), (len(evaluated.cover_ids), 1)),
        "ridge": ridge.predict(stats[split]),
        "prior": evaluated.standardise(prior.predict_matrix(prior_inputs)),
    }
    models = {name: scores(values, evaluated) for name, values in predictions.items()}
    models["ridge"]["alpha"] = dict(zip(NAMES, map(float, ridge.alpha), strict=True))
    return {
        "split": split,
        "covers": len(evaluated.cover_ids),
        "pairs": len(evaluated.targets),
        "db": str(db),
        "model": str(vae.loaded.path),
        "models": models,
    }
