"""Do predicted features tell genres apart the way the catalog's genres differ?

Real covers labelled with a genre but no audio features (`build-db --genre-column`) still
say something: a model whose predictions carry signal should put a Hip-Hop cover nearer
the catalog's rap tracks than a Rock cover. Each label is mapped onto the catalog's
genres (`genres.GenreMapper`: "Hip-Hop" -> rap, "Dance" -> edm; labels that map to no
genre or to several, such as regions, are left out), and predictions are compared with the
genres' centroids in the catalog's standardised feature space. Two scores:

- **pairwise AUC**: for two genres a and b, project each prediction on the direction from
  b's centroid to a's and ask how often a cover of a lands further along it than a cover
  of b (ties count half); averaged over the genre pairs, weighted by their cover pairs.
  Chance is 0.5 whatever the predictions' offset or spread, so a model trained on other
  music (all its answers rock-like) still scores the direction it gets right.
- **nearest-centroid accuracy**: the share of covers whose prediction is nearest their own
  genre's centroid, against chance: the accuracy that the same predicted labels would
  have if they were independent of the true ones (sum over genres of true share x
  predicted share). Easy to read, but a constant offset makes it collapse to one genre.

Both come with bootstrap 95% intervals over covers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from pathlib import Path

import numpy as np

from pressedplay.catalog import Catalog, resolve_catalog
from pressedplay.dataset import connect_readonly, cover_genres
from pressedplay.genres import GenreMapper
from pressedplay.loader import load_image

BOOTSTRAP = 1000


class LabelledCovers:
    """The genre-labelled covers of a split whose label maps to exactly one catalog genre."""

    def __init__(self, db: Path, split: str, catalog_genres: Sequence[str]) -> None:
        self.db = Path(db)
        mapper = GenreMapper(catalog_genres)
        with closing(connect_readonly(self.db)) as conn:
            labelled = cover_genres(conn, split)
        self.mapping = {label: mapper.map(label) for label in sorted({g for _, g in labelled})}
        kept = [(i, label) for i, label in labelled if len(self.mapping[label]) == 1]
        self.cover_ids = np.array([i for i, _ in kept], dtype=np.int64)
        self.genres = [next(iter(self.mapping[label])) for _, label in kept]
        self.left_out = len(labelled) - len(kept)

    def __len__(self) -> int:
        return len(self.cover_ids)

    def pixels(self, size: int, batch: int = 256) -> list[np.ndarray]:
        """The covers squashed to size x size as in training, uint8, in batches."""
        out = []
        with closing(connect_readonly(self.db)) as conn:
            for start in range(0, len(self.cover_ids), batch):
                out.append(
                    np.stack([_read(conn, i, size) for i in self.cover_ids[start : start + batch]])
                )
        return out


def _read(conn: sqlite3.Connection, cover_id: int, size: int) -> np.ndarray:
    (data,) = conn.execute("SELECT image FROM covers WHERE id = ?", (int(cover_id),)).fetchone()
    return np.asarray(load_image(data, size))


class Centroids:
    """Per catalog genre, the mean of its tracks' features in the catalog's standardised
    units (a track listed under several genres counts in each)."""

    def __init__(self, catalog: str | Path | None = None) -> None:
        with Catalog(resolve_catalog(catalog)) as source:
            rows = list(source.tracks_with_genres())
        features = np.array([row[3] for row in rows], dtype=np.float64)
        self.mean, self.std = features.mean(0), features.std(0)
        standardised = (features - self.mean) / np.where(self.std > 0, self.std, 1.0)
        self.genres = sorted({genre for row in rows for genre in row[4]})
        self.centres = np.stack(
            [standardised[[genre in row[4] for row in rows]].mean(0) for genre in self.genres]
        )

    def standardise(self, original: np.ndarray) -> np.ndarray:
        return (original - self.mean) / np.where(self.std > 0, self.std, 1.0)


def _auc(scores_a: np.ndarray, scores_b: np.ndarray) -> tuple[float, float]:
    """(wins of a's scores over b's, ties counting half; number of pairs)."""
    ordered = np.sort(scores_b)
    below = np.searchsorted(ordered, scores_a, "left")
    tied = np.searchsorted(ordered, scores_a, "right") - below
    return float(below.sum() + 0.5 * tied.sum()), float(len(scores_a) * len(scores_b))


def scores(
    predicted: np.ndarray, genres: Sequence[str], centroids: Centroids
) -> tuple[float, float, float]:
    """(pairwise AUC, nearest-centroid accuracy, its chance) of (n, 8) predictions in
    original units for covers of the given catalog genres."""
    present = sorted(set(genres))
    index = [centroids.genres.index(g) for g in present]
    centres = centroids.centres[index]
    z = centroids.standardise(predicted)
    truth = np.array([present.index(g) for g in genres])
    wins = pairs = 0.0
    for a in range(len(present)):
        for b in range(a + 1, len(present)):
            direction = centres[a] - centres[b]
            along = np.round(z @ direction, 9)  # equal predictions tie exactly (BLAS rounding)
            w, p = _auc(along[truth == a], along[truth == b])
            wins, pairs = wins + w, pairs + p
    nearest = ((z[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
    accuracy = float((nearest == truth).mean())
    true_share = np.bincount(truth, minlength=len(present)) / len(truth)
    predicted_share = np.bincount(nearest, minlength=len(present)) / len(truth)
    chance = float(true_share @ predicted_share)
    return (wins / pairs if pairs else 0.5), accuracy, chance


def separation(
    predictions: Mapping[str, np.ndarray],
    covers: LabelledCovers,
    centroids: Centroids,
    seed: int = 0,
) -> dict:
    """Per model: AUC and accuracy vs chance with bootstrap 95% intervals (covers
    resampled, the same resamples for every model)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(covers), (BOOTSTRAP, len(covers)))
    genres = np.array(covers.genres)
    models = {}
    for name, predicted in predictions.items():
        auc, accuracy, chance = scores(predicted, covers.genres, centroids)
        samples = np.array([scores(predicted[d], list(genres[d]), centroids) for d in draws])
        margin = samples[:, 1] - samples[:, 2]
        models[name] = {
            "auc": auc,
            "auc_ci": interval95(samples[:, 0]),
            "accuracy": accuracy,
            "chance": chance,
            "accuracy_minus_chance_ci": interval95(margin),
        }
    counts = {g: int((genres == g).sum()) for g in sorted(set(covers.genres))}
    return {
        "covers": len(covers),
        "left_out": covers.left_out,
        "genres": counts,
        "mapping": {label: sorted(found) for label, found in covers.mapping.items()},
        "models": models,
    }


def interval95(samples: np.ndarray) -> list[float]:
    """The 2.5th and 97.5th percentiles of bootstrap samples."""
    low, high = np.percentile(samples, [2.5, 97.5])
    return [float(low), float(high)]
