"""Benchmark the two-stage recommender at the MPD's size: 1,000,000 playlists.

On a database of 1,000,000 synthetic playlists over the MPD's 2,262,295 tracks (built
once with `trecs synth-mpd` and `trecs build-db` when --db does not exist yet), each stage
runs in its own process so that its peak memory is its own:

1. co-occurrence: read the train split into a sparse matrix and fit (build time, peak RSS);
2. playlist-kNN: the same;
3. a transformer run with the MPD's embedding rows, trained briefly (its quality is not
   the point here; the ranker needs one as a generator);
4. `train_ranker` on the valid split (training time, peak RSS);
5. a challenge set of 10,000 playlists (1,000 per category) from the test split, then
   `recommend_challenge` with the ranker: the time for 10,000 challenge playlists.

    uv run python benchmarks/challenge_scale.py [--db data/synth-1m.db] [--playlists 1000000]
        [--max-cases 20000] [--per-category 1000] [--skip-fit] [--reuse-run]

The ranker's stages print their rate as they go; with fewer cases or playlists (about
1 s per 3 cases here), the time for 10,000 challenge playlists is projected at the
measured rate and said to be.

Target (issue 13): 10,000 challenge playlists in under 10 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

TRACKS = 2_262_295


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB


def _fit(db: str, name: str) -> dict:
    from trecs.recommenders import baseline

    start = time.perf_counter()
    baseline(name, Path(db))
    return {"seconds": time.perf_counter() - start}


def _train_run(db: str, run: str, steps: int) -> dict:
    from trecs.config import TrainConfig
    from trecs.train import train

    start = time.perf_counter()
    train(Path(run), TrainConfig(db=Path(db), num_steps=steps, batch_size=16, eval_every=steps))
    return {"seconds": time.perf_counter() - start}


def _train_ranker(db: str, run: str, out: str, max_cases: int) -> dict:
    from trecs.ranker import train_ranker

    start = time.perf_counter()
    candidates = [0.0]

    def progress(done: int, total: int) -> None:
        candidates[0] = time.perf_counter() - start
        if done == total or done % 640 == 0:
            rate = candidates[0] / done
            print(f"  ranker: {done:,}/{total:,} cases, {rate:.2f} s/case", flush=True)

    report = train_ranker(
        Path(out), Path(run), Path(db), max_cases=max_cases, force=True, on_progress=progress
    )
    seconds = time.perf_counter() - start
    cases = report["cases"] + report["relaxed_cases"] + report["cross_fitted_cases"]
    return {"seconds": seconds, "cases": cases, "fit_seconds": seconds - candidates[0]}


def _challenge(db: str, ranker: str, out: str, per_category: int) -> dict:
    from trecs.challenge import make_challenge, read_challenge, recommend_challenge
    from trecs.recommenders import load

    start = time.perf_counter()
    made = make_challenge(Path(db), Path(out), per_category=per_category, force=True)
    made_s = time.perf_counter() - start
    challenge = read_challenge(Path(out) / "challenge_set.json", Path(db))
    recommender = load(ranker, Path(db))
    start = time.perf_counter()
    recommended = recommend_challenge(recommender, challenge, Path(db))
    return {
        "make_seconds": made_s,
        "playlists": len(recommended.uris),
        "seconds": time.perf_counter() - start,
        "made": str(made),
    }


def _stage(target: Callable[..., dict], queue, *args) -> None:
    result = target(*args)
    result["peak_gb"] = _peak_gb()
    queue.put(result)


def run_stage(name: str, target: Callable[..., dict], *args) -> dict:
    """`target(*args)` in a fresh process; its result plus that process's peak RSS."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_stage, args=(target, queue, *args))
    process.start()
    result = queue.get()
    process.join()
    print(f"{name}: {result}", flush=True)
    return result


def ensure_database(db: Path, playlists: int) -> None:
    if db.is_file():
        return
    from trecs.build_db import build_database
    from trecs.synth import synth_mpd

    folder = db.with_suffix(".slices")
    print(f"synthesising {playlists:,} playlists over {TRACKS:,} tracks ...", flush=True)
    synth_mpd(folder, playlists=playlists, tracks=TRACKS, seed=0, force=True)
    build_database(db, [folder])
    shutil.rmtree(folder)  # the slices (about 26 GB for 1M playlists) are not needed again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("data/synth-1m.db"))
    parser.add_argument("--playlists", type=int, default=1_000_000)
    parser.add_argument("--work", type=Path, default=Path("data/bench-challenge"))
    parser.add_argument("--steps", type=int, default=50, help="transformer training steps")
    parser.add_argument("--max-cases", type=int, default=20_000, help="ranker training cases")
    parser.add_argument("--per-category", type=int, default=1000)
    parser.add_argument(
        "--skip-fit", action="store_true", help="leave out the baselines' fit stages"
    )
    parser.add_argument(
        "--reuse-run", action="store_true", help="keep the transformer run of an earlier call"
    )
    args = parser.parse_args()

    ensure_database(args.db, args.playlists)
    args.work.mkdir(parents=True, exist_ok=True)
    run_dir, ranker_dir = args.work / "run", args.work / "ranker"
    db = str(args.db)
    rows = {}
    if not args.skip_fit:
        rows["co-occurrence fit"] = run_stage("co-occurrence", _fit, db, "cooccurrence")
        rows["playlist-kNN fit"] = run_stage("playlist-kNN", _fit, db, "playlist-knn")
    if not (args.reuse_run and (run_dir / "config.json").is_file()):
        shutil.rmtree(run_dir, ignore_errors=True)
        rows["transformer, brief run"] = run_stage(
            "transformer", _train_run, db, str(run_dir), args.steps
        )
    rows["ranker training"] = run_stage(
        "ranker", _train_ranker, db, str(run_dir), str(ranker_dir), args.max_cases
    )
    challenge = run_stage(
        "challenge",
        _challenge,
        db,
        str(ranker_dir),
        str(args.work / "challenge"),
        args.per_category,
    )
    rows["challenge recommend"] = challenge

    print(f"\n{args.db} ({args.playlists:,} playlists), medians not taken: each stage runs once")
    print(f"{'stage':<28} {'seconds':>9} {'peak GB':>8}")
    for name, row in rows.items():
        print(f"{name:<28} {row['seconds']:>9.1f} {row['peak_gb']:>8.2f}")
    ranker = rows["ranker training"]
    print(
        f"ranker: {ranker['cases']:,} training cases, "
        f"{(ranker['seconds'] - ranker['fit_seconds']) / ranker['cases']:.2f} s/case for "
        f"candidates and features, {ranker['fit_seconds']:.0f} s for LightGBM and the figures"
    )
    per_playlist = challenge["seconds"] / challenge["playlists"]
    minutes = per_playlist * 10_000 / 60
    measured = "measured" if challenge["playlists"] >= 10_000 else "projected at the same rate"
    print(
        f"{challenge['playlists']:,} challenge playlists in {challenge['seconds']:.0f} s "
        f"({per_playlist:.2f} s each): 10,000 take {minutes:.1f} min, {measured} "
        f"(target < 10 min): {'met' if minutes < 10 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
