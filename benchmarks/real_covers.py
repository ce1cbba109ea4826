"""pressedplay on real covers: the documented path, held out by repeated random splits.

The 298 real album thumbnails of `../shared/data/real-covers-features` are too few for
one test split (27 covers), so the path a user runs is repeated with --seeds split seeds:
`build-db --seed S` (a different 80/10/10 split each time), `train` with the defaults
(--epochs may be lowered: on these covers the best epoch comes early), then `evaluate`
on that split's test covers, and on every cover of `../shared/data/real-covers-genre`
(labelled with their playlist's genre, no features) for genre separation. Prints, per
model, the test MSE over the mean's for each seed, their average with a 95% t-interval
over seeds, the candidate `train` chose, and the genre-separation AUC.

    uv run python benchmarks/real_covers.py [--seeds 5] [--epochs 50] [--work DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from pressedplay.config import TrainConfig
from pressedplay.evaluate import evaluate
from pressedplay.folder import build_from_folder
from pressedplay.train import train

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
T95 = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}


def interval(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3f}"
    half = T95.get(len(values), 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.3f} [{mean - half:.3f}, {mean + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=TrainConfig().epochs)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--work", type=Path, help="keep datasets and runs here")
    parser.add_argument("--catalog", default="tidytuesday", help="genres for separation")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        genre_db = work / "genres.db"
        if not genre_db.exists():
            genres = DATA / "real-covers-genre"
            build_from_folder(
                genre_db, genres / "img", genres / "labels.csv", genre_column="playlist"
            )
        ratios: dict[str, list[float]] = {}
        auc: dict[str, list[float]] = {}
        for seed in range(args.seeds):
            db, run = work / f"real-{seed}.db", work / f"run-{seed}"
            if not db.exists():
                real = DATA / "real-covers-features"
                build_from_folder(db, real / "img", real / "labels.csv", seed=seed)
            if not (run / "candidates.json").exists():
                config = TrainConfig(epochs=args.epochs, seed=seed, workers=args.workers)
                summary = train(config, run, db)
                print(f"seed {seed}: chose {summary['chosen']}, valid MSE {summary['valid_mse']}")
            report = evaluate(run, db, workers=args.workers)
            models = report["models"]
            models.setdefault("run", models["vae"])  # the run answers with its VAE
            cells = []
            for name, scores in models.items():
                ratio = scores["mse"] / models["mean"]["mse"]
                ratios.setdefault(name, []).append(ratio)
                cells.append(f"{name} {ratio:.3f}")
            print(f"seed {seed}: {report['covers']} test covers; MSE / mean's: {', '.join(cells)}")
            separation = evaluate(run, genre_db, split="all", catalog=args.catalog)["genres"]
            separation["models"].setdefault("run", separation["models"]["vae"])
            for name, scores in separation["models"].items():
                auc.setdefault(name, []).append(scores["auc"])
            print(
                f"seed {seed}: genre AUC "
                + ", ".join(
                    f"{n} {s['auc']:.3f} [{s['auc_ci'][0]:.3f}, {s['auc_ci'][1]:.3f}]"
                    for n, s in separation["models"].items()
                )
            )
    print(f"\nover {args.seeds} split seeds, {args.epochs} epochs (95% t-interval over seeds):")
    print(f"{'model':8s} {'test MSE / mean':>28s} {'genre AUC':>28s}")
    for name in ratios:
        print(f"{name:8s} {interval(ratios[name]):>28s} {interval(auc.get(name, [np.nan])):>28s}")


if __name__ == "__main__":
    main()
