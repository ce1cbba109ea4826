"""Score a trained model on a cover dataset against four baselines, with 95% intervals.

Errors are over the evaluated covers' (cover, track) pairs, in the evaluated dataset's
standardised units (feature_stats: its train-split mean and std), so every feature counts
alike and a model that always answers the train mean scores an MSE of about 1. The
baselines are fitted on the run's own training data (the dataset its checkpoint records),
never on the covers being scored, so `--db OTHER --split all` is an external test:

- mean: the training split's mean target, whatever the image;
- ridge: ridge regression on the image's colour statistics (`colour_stats.NAMES`,
  standardised on the train covers), fitted on the train split, with one penalty per
  feature chosen on the valid split from a grid; the model is fitted on train only, like
  the VAE, whose checkpoint was also chosen on valid;
- prior: the training-free colour prior;
- catalog: the catalog's mean track, the constant the prior starts from.

Real test sets are small, so each MSE comes with a bootstrap 95% interval over covers, and
so does each model's difference to the mean's (below 0 throughout: it beats the mean).
Covers with genre labels get a genre-separation score (`genre_separation`).

The VAE's predictions go from its own units to original units to the dataset's
standardised units, so a model trained on another dataset is scored fairly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from pressedplay import checkpoints, colour_stats, genre_separation, prior
from pressedplay.dataset import SPLITS, connect_readonly, cover_genres
from pressedplay.devices import pick_device
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import CoverPairs, worker_context
from pressedplay.predict import STATS_SIZE, ChosenPredictor, Predictor, VAEPredictor, load_choice
from pressedplay.ridge import Ridge

BOOTSTRAP = 1000  # resamples of the evaluated covers for the 95% intervals


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


class Baselines:
    """The mean and ridge baselines, fitted on a run's own training data (its dataset's
    train split; ridge penalties on its valid split), answering in original units."""

    def __init__(self, home: Path, read: dict) -> None:
        train, valid = Split(home, "train"), Split(home, "valid")
        stats = [
            part.per_cover(STATS_SIZE, [colour_stats.matrix], **read)[0] for part in (train, valid)
        ]
        self.ridge = Ridge(stats[0], train.cover_targets, train.counts)
        self.ridge.choose(stats[1], valid.cover_targets, valid.counts)
        self.home_mean, self.home_std = train.pairs.mean, train.pairs.std
        self.mean = self.home_mean + train.targets.mean(0) * self.home_std

    def predict(self, stats: np.ndarray) -> dict[str, np.ndarray]:
        """(n, 8) original-unit predictions of each baseline from colour statistics."""
        n = len(stats)
        return {
            "mean": np.tile(self.mean, (n, 1)),
            "ridge": self.home_mean + self.ridge.predict(stats) * self.home_std,
            "prior": prior.predict_matrix(stats[:, : len(colour_stats.PRIOR_INPUTS)]),
            "catalog": np.tile([prior.CENTRE[name] for name in NAMES], (n, 1)),
        }


def _home(trained_on: str | None, db: Path, split: str) -> Path:
    """The dataset the baselines are fitted on: the one the run was trained on, or, when
    that file is gone, the evaluated dataset's own train split (never for --split all,
    which would fit them on the covers being scored)."""
    if trained_on and Path(trained_on).is_file():
        return Path(trained_on)
    if split == "all":
        raise UserError(
            f"the baselines are fitted on the run's training data, and its dataset "
            f"{trained_on or '(not recorded)'} is not there; --split all needs it"
        )
    return Path(db)


def _has_pairs(db: Path, split: str) -> bool:
    with closing(connect_readonly(db)) as conn:
        where = "" if split == "all" else " WHERE covers.split = ?"
        row = conn.execute(
            f"SELECT 1 FROM pairs JOIN covers ON covers.id = pairs.cover_id{where} LIMIT 1",
            () if split == "all" else (split,),
        ).fetchone()
    return row is not None


def _intervals(
    predictions: dict[str, np.ndarray], split: Split, rng: np.random.Generator
) -> dict[str, dict]:
    """Bootstrap 95% intervals over covers of each model's MSE and of its difference to
    the mean's (the same resamples for every model)."""
    draws = rng.integers(0, len(split.cover_ids), (BOOTSTRAP, len(split.cover_ids)))
    pairs = split.counts[draws].sum(1) * len(NAMES)
    sse = {}
    for name, values in predictions.items():
        per_pair = ((values[split.pair_cover] - split.targets) ** 2).sum(1)
        sse[name] = np.bincount(split.pair_cover, per_pair, minlength=len(split.cover_ids))
    mse = {name: total[draws].sum(1) / pairs for name, total in sse.items()}
    return {
        name: {
            "mse_ci": genre_separation.interval95(mse[name]),
            "minus_mean_ci": genre_separation.interval95(mse[name] - mse["mean"]),
        }
        for name in predictions
    }


def evaluate(
    model: Path,
    db: Path,
    *,
    split: str = "test",
    catalog: str | Path | None = None,
    batch_size: int = 64,
    workers: int = 0,
    device: str = "cpu",
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """The model's and the baselines' errors on `split` ("all": every cover) of `db`, and
    how well their predictions separate genres where `db` has genre labels (against the
    genres of `catalog`, default tidytuesday); see the module docstring.

    `progress(n)` is called as covers are read.
    """
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")
    if split not in (*SPLITS, "all"):
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all.")
    vae = VAEPredictor(checkpoints.load_model(Path(model), pick_device(device)))
    home = _home((vae.loaded.meta.get("config") or {}).get("db"), db, split)
    read = {"batch_size": batch_size, "workers": workers, "progress": progress}
    with_pairs = _has_pairs(db, split)
    genre_labels = _genre_labels(db, split)
    if not with_pairs and not genre_labels:
        raise UserError(f"{db} has no covers in the {split} split with features or genre labels")
    baselines = Baselines(home, read)
    report: dict = {"split": split, "db": str(db), "baselines_from": str(home)}
    report["model"] = str(vae.loaded.path)
    answers = _learned(Path(model), vae)
    if "run" in answers:
        report["chosen"] = answers["run"].chosen
    rng = np.random.default_rng(seed)
    if with_pairs:
        evaluated = Split(db, split)
        stats, learned = predict_covers(
            lambda size, functions: evaluated.per_cover(size, functions, **read), answers
        )
        original = {**learned, **baselines.predict(stats)}
        predictions = {name: evaluated.standardise(values) for name, values in original.items()}
        models = {name: scores(values, evaluated) for name, values in predictions.items()}
        for name, intervals in _intervals(predictions, evaluated, rng).items():
            models[name].update(intervals)
        models["ridge"]["alpha"] = dict(zip(NAMES, map(float, baselines.ridge.alpha), strict=True))
        report.update(covers=len(evaluated.cover_ids), pairs=len(evaluated.targets), models=models)
    if genre_labels:
        report["genres"] = _genres(db, split, catalog, answers, baselines, rng)
    return report


def _learned(model: Path, vae: VAEPredictor) -> dict[str, Predictor]:
    """The run's VAE, and the predictor `train` chose for it when that is another
    (`candidates`): as "run", what `predict RUN` answers with."""
    record = load_choice(Path(model))
    if record is None or record["chosen"] == "vae":
        return {"vae": vae}
    return {"vae": vae, "run": ChosenPredictor(vae, record)}


def predict_covers(
    per_cover: Callable[[int, list], list[np.ndarray]], answers: dict[str, Predictor]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Colour statistics and each predictor's answers (original units) for the same
    covers, one pass over them per image size; `per_cover(size, functions)` applies the
    functions to the covers squashed to size x size."""
    sizes: dict[int, list] = {STATS_SIZE: [colour_stats.matrix]}
    where = {}
    for name, predictor in answers.items():
        functions = sizes.setdefault(predictor.image_size, [])
        where[name] = (predictor.image_size, len(functions))
        functions.append(predictor.predict_pixels)
    outputs = {size: per_cover(size, functions) for size, functions in sizes.items()}
    return outputs[STATS_SIZE][0], {name: outputs[size][i] for name, (size, i) in where.items()}


def _genre_labels(db: Path, split: str) -> bool:
    with closing(connect_readonly(db)) as conn:
        return bool(cover_genres(conn, split))


def _genres(
    db: Path,
    split: str,
    catalog: str | Path | None,
    answers: dict[str, Predictor],
    baselines: Baselines,
    rng: np.random.Generator,
) -> dict:
    """Genre separation of every model's predictions on the genre-labelled covers."""
    centroids = genre_separation.Centroids(catalog)
    covers = genre_separation.LabelledCovers(db, split, centroids.genres)
    if not len(covers):
        raise UserError(
            f"{db}: none of the genre labels in the {split} split maps to one genre of the "
            f"catalog ({', '.join(centroids.genres)})"
        )

    def per_cover(size: int, functions: list) -> list[np.ndarray]:
        batches = covers.pixels(size)
        return [np.concatenate([function(b) for b in batches]) for function in functions]

    stats, learned = predict_covers(per_cover, answers)
    predictions = {**learned, **baselines.predict(stats)}
    return genre_separation.separation(
        predictions, covers, centroids, seed=int(rng.integers(2**31))
    )
