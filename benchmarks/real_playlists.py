"""trecs on real playlists: the documented path over split seeds, scored by category.

The 2,000 real MPD playlists of `../shared/data/real-mpd` leave about 750 test cases per
split, 21-150 per category: one split cannot tell a 15% margin in a category from noise.
So the path a user runs is repeated with --seeds split seeds (42, the default, then 7,
1, 2, ...): `build-db --seed S`, `train --num-steps 3000 --batch-size 32` (every other
setting at its default), `train-ranker` with its defaults, then every test playlist in
every category it fits, recommended by the ranker, its transformer and the baselines and
scored with the challenge's metrics.

Prints per category and overall, per seed and pooled over seeds: R-precision and NDCG
of each model with 95% intervals, and the ranker over the best of co-occurrence and
playlist-kNN (category 1, title only: over popularity) with a 95% bootstrap interval
(cases resampled, paired). Pooled cases of different seeds overlap in playlists (a
playlist can be a test playlist of two splits), so pooled intervals are a little narrow.

    uv run python benchmarks/real_playlists.py [--seeds 2] [--num-steps 3000] [--work DIR]

--work keeps each seed's database, run and ranker (seed-S/) and reuses those present:
about 20 minutes a seed on 2 cores, most of it training.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from trecs.build_db import build_database
from trecs.challenge import CATEGORIES, make_cases, recommend_batches
from trecs.checkpoints import load_run
from trecs.config import TrainConfig
from trecs.errors import UserError
from trecs.evaluate import artists
from trecs.metrics import ndcg, r_precision, summarise
from trecs.ranker import META_FILE, train_ranker
from trecs.recommenders import BASELINES, load
from trecs.train import train

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-mpd"
SPLIT_SEEDS = (42, 7, 1, 2, 3, 4, 5, 6)
BOOTSTRAP = 2000


def prepare(work: Path, seed: int, num_steps: int) -> tuple[Path, Path]:
    """(database, ranker) of one split seed, built and trained where not yet present. A
    run stopped before `num_steps` is resumed (one without a checkpoint starts again), and
    a ranker trained on another step of its run is trained again: an interrupted earlier
    call is finished, never scored as it stands."""
    work.mkdir(parents=True, exist_ok=True)
    db, run, ranker = work / "real2k.db", work / "run", work / "ranker"
    if not db.exists():
        inputs = [DATA / "mpd.slice.0-999.json", DATA / "mpd.sample.json"]
        build_database(db, inputs, seed=seed)
    config = TrainConfig(db=db, num_steps=num_steps, batch_size=32)
    step = run_step(run)
    if step is None or step < num_steps:
        if step is None:
            shutil.rmtree(run, ignore_errors=True)
            print(f"seed {seed}: training {run} ({num_steps} steps) ...", flush=True)
        else:
            print(f"seed {seed}: resuming {run} at step {step} of {num_steps} ...", flush=True)
        train(run, config, resume=step is not None)
        step = run_step(run)
    if step != num_steps:
        raise UserError(f"{run}: a run of {step} steps, not {num_steps} (use another --work)")
    meta = ranker / META_FILE
    if not meta.exists() or json.loads(meta.read_text())["run_step"] != step:
        print(f"seed {seed}: training the ranker {ranker} ...", flush=True)
        train_ranker(ranker, run, db, force=True)
    return db, ranker


def run_step(run: Path) -> int | None:
    """The step of a run's newest checkpoint that restores; None without one."""
    if not (run / "config.json").exists():
        return None
    try:
        return load_run(run).step
    except UserError:  # no complete checkpoint yet
        return None


def case_values(db: Path, ranker: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each test case's category, and per model its (R-precision, NDCG) per case."""
    cases = make_cases(db, "test", None)
    artist_of = artists(db)
    models = {"ranker": str(ranker), "transformer": str(ranker.parent / "run")}
    models.update({name: name for name in BASELINES})
    queries = [c.query for c in cases]
    values = {}
    for name, model in models.items():
        recommended = recommend_batches(load(model, db), queries, 500, batch_size=1024)
        values[name] = np.array(
            [
                (r_precision(recs, case.held_out, artist_of), ndcg(recs, case.held_out))
                for recs, case in zip(recommended, cases, strict=True)
            ]
        )
    return np.array([c.category for c in cases]), values


def ratio(ranker: np.ndarray, rivals: list[np.ndarray], rng: np.random.Generator) -> str:
    """Ranker mean over the best rival's mean, with a paired bootstrap 95% interval."""
    point = ranker.mean() / max(r.mean() for r in rivals)
    draws = rng.integers(0, len(ranker), (BOOTSTRAP, len(ranker)))
    best = np.max([r[draws].mean(axis=1) for r in rivals], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        low, high = np.nanpercentile(ranker[draws].mean(axis=1) / best, [2.5, 97.5])
    return f"{point:.2f} [{low:.2f}, {high:.2f}]"


def report(title: str, category: np.ndarray, values: dict[str, np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    names = list(values)
    for column, metric in enumerate(("R-precision", "NDCG")):
        print(f"\n{title}, {metric} (95% intervals)")
        print("| category | n | " + " | ".join(names) + " | ranker / best baseline |")
        print("| --- " * (len(names) + 3) + "|")
        for group in [*CATEGORIES, "all"]:
            at = category == group if group != "all" else np.ones(len(category), bool)
            if not at.any():
                continue
            cells = []
            for name in names:
                summary = summarise(values[name][at, column].tolist())
                cells.append(f"{summary.mean:.3f} ± {summary.ci95:.3f}")
            rivals = ["popularity"] if group == 1 else ["cooccurrence", "playlist-knn"]
            versus = ratio(
                values["ranker"][at, column], [values[r][at, column] for r in rivals], rng
            )
            label = f"{group} {CATEGORIES[group]}" if group != "all" else "all"
            print(f"| {label} | {at.sum()} | " + " | ".join(cells) + f" | {versus} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="split seeds: 42, 7, 1, ...")
    parser.add_argument("--num-steps", type=int, default=3000)
    parser.add_argument("--work", type=Path, default=Path("data/bench-real-playlists"))
    args = parser.parse_args()
    if not 1 <= args.seeds <= len(SPLIT_SEEDS):
        parser.error(f"--seeds {args.seeds}: expected 1 to {len(SPLIT_SEEDS)}")
    if not DATA.is_dir():
        parser.error(f"{DATA} is missing: the real playlists this benchmark runs on")
    pooled_category, pooled = [], {}
    for seed in SPLIT_SEEDS[: args.seeds]:
        try:
            db, ranker = prepare(args.work / f"seed-{seed}", seed, args.num_steps)
        except UserError as exc:
            parser.exit(2, f"error: {exc}\n")
        category, values = case_values(db, ranker)
        report(f"split seed {seed}", category, values)
        pooled_category.append(category)
        for name, v in values.items():
            pooled.setdefault(name, []).append(v)
    if args.seeds > 1:
        report(
            f"pooled over {args.seeds} split seeds",
            np.concatenate(pooled_category),
            {name: np.concatenate(v) for name, v in pooled.items()},
        )


if __name__ == "__main__":
    main()
