"""Calibrate the colour prior on labelled real covers and print its cross-validated errors.

Builds (or reuses) a cover dataset from `../shared/data/real-covers-features` (298 real
album thumbnails with their albums' features; give another with --db), measures the
prior's five inputs on every cover at 128 px as `predict` does, then:

- repeated 10-fold cross-validation (3 repeats) of the calibration (`prior_fit.fit`)
  against the constant it starts from (the catalog's mean) and the weights prior.py ships
  (fitted on these covers, so in-sample), per feature, in units of the labels' std;
- the weights fitted on every cover, with features that do not beat the constant under
  cross-validation set to 0: the `prior.WEIGHTS` table.

    uv run python benchmarks/prior_calibration.py [--db covers.db]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from pressedplay import colour_stats, prior, prior_fit
from pressedplay.features import NAMES
from pressedplay.folder import build_from_folder
from pressedplay.loader import CoverPairs
from pressedplay.predict import STATS_SIZE

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-covers-features"


def covers(db: Path) -> tuple[np.ndarray, np.ndarray]:
    """(prior scores, per-cover mean targets in original units) of every cover."""
    data = CoverPairs(
        db, "all", size=STATS_SIZE, augment=False, normalise=False, cache_mb=0, targets="cover"
    )
    pixels = np.stack([data[i][0].permute(1, 2, 0).numpy() for i in range(len(data))])
    inputs = colour_stats.matrix(pixels)[:, : len(colour_stats.PRIOR_INPUTS)]
    return prior.scores(inputs), data.targets * data.std + data.mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="a cover dataset with features")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            db = Path(tmp) / "real.db"
            build_from_folder(db, REAL / "img", REAL / "labels.csv", workers=1)
        scores, targets = covers(db)
    weights, errors = prior_fit.calibrate(scores, targets)
    print(f"{len(targets)} covers of {db}; cross-validated MSE (10-fold x 3, units of label std)")
    print(f"{'feature':18s} {'calibrated':>10s} {'constant':>9s} {'shipped':>8s}  weights")
    for j, name in enumerate(NAMES):
        row = " ".join(f"{weights[i, j]:+.2f}" for i in range(5))
        print(
            f"{name:18s} {errors['fitted'][j]:10.3f} {errors['constant'][j]:9.3f} "
            f"{errors['shipped'][j]:8.3f}  {row}"
        )
    kept = np.where(weights.any(0), errors["fitted"], errors["constant"])
    constant = errors["constant"].mean()
    print(
        f"{'overall':18s} {kept.mean():10.3f} {constant:9.3f} {errors['shipped'].mean():8.3f}"
        f"  calibrated / constant = {kept.mean() / constant:.3f}"
    )


if __name__ == "__main__":
    main()
