"""Benchmark playlist continuation at the MPD's vocabulary size (2,262,295 rows).

Prints the bandwidth arithmetic (bytes of the table read per track, the bandwidth this
machine streams a float32 scan at, the lower bound per track that follows), the time of a
50-track continuation of a 5-track seed in the library (after loading and compiling), and
through the CLI: the wall time of `trecs generate --length 60` minus `--length 10` on a
saved run of that size, so that loading and compiling cancel. Medians of several runs.

Two tables. The untrained one (always): every row is a track, as on the MPD, the run's
vocabulary mapping its 2,262,292 tracks onto a small synthetic database's, repeating them,
with random weights (as in bench-evaluate): logits nearly flat, the worst case for pooling.
A trained one (`--trained RUN_DIR`), what users generate from: continuations of the first
5 tracks of the run's test playlists, and the CLI figures on that run. The README of
benchmarks/ gives the recipe of the run it reports (1,000,000 synthetic playlists,
`trecs train --num-steps 3000 --batch-size 32 --num-tracks 2262295`).

    uv run python benchmarks/generate.py [--runs 5] [--cli-runs 3] [--trained RUN_DIR]

Target (issue 17): 50 tracks in under 0.5 s through the CLI (before: 4.9 s; 1.52 s in
the library).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

NUM_ROWS = 2_262_295
SEEDS = list(range(100, 105))


def median_s(run: Callable[[], object], times: int) -> tuple[float, list[float]]:
    """Median wall time of `run()` (results made ready) and every time."""
    import jax

    spent = []
    for _ in range(times):
        start = time.perf_counter()
        jax.block_until_ready(run())
        spent.append(time.perf_counter() - start)
    return statistics.median(spent), spent


def counted(generator_class):
    """A generator that counts the picks that scanned the whole table (a new pool)."""
    import jax.numpy as jnp

    class Counting(generator_class):
        scans = 0

        def best(self, hidden, banned, k, temperature=1.0, pool=None):
            values, rows, new = super().best(hidden, banned, k, temperature, pool)
            self.scans += pool is None or not bool(jnp.all(new.at == pool.at))
            return values, rows, new

    return Counting


def same_as_full_scans(generator, exact, cases) -> bool:
    """Whether `generator` continues every (seed tokens, settings) case as `exact`, a
    generator of the same model whose pool is the whole table (so every pick scans)."""
    return all(
        generator.continue_playlist(tokens, settings) == exact.continue_playlist(tokens, settings)
        for tokens, settings in cases
    )


def library(runs: int) -> dict:
    """Library figures: the float32 scan's bandwidth, the bytes each pick reads, the
    continuation's time, and a check that picks equal those of full scans."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from trecs.config import ModelConfig
    from trecs.generate import Generator, Settings
    from trecs.model import PlaylistTransformer, init_table

    config = ModelConfig(num_tracks=NUM_ROWS)
    model = PlaylistTransformer(config, rngs=nnx.Rngs(0))
    table = init_table(jax.random.key(1), NUM_ROWS, config.features)
    generator = counted(Generator)(model, table)
    hidden = jax.random.normal(jax.random.key(2), (config.features,))
    scan = jax.jit(lambda table, hidden: table @ hidden)
    scan(table, hidden).block_until_ready()
    scan_s, _ = median_s(lambda: scan(table, hidden), 10)
    generator.continue_playlist(SEEDS, Settings(length=60))  # compile, window restart included
    generator.scans = 0
    generator.continue_playlist(SEEDS, Settings(length=50, greedy=True))
    scans = generator.scans
    same = same_as_full_scans(
        generator,
        Generator(model, table, pool_size=NUM_ROWS),
        [(SEEDS, Settings(length=50, greedy=True))]
        + [(SEEDS, Settings(50, seed=s)) for s in (1, 2)],
    )
    plain = Generator(model, table)
    plain.continue_playlist(SEEDS, Settings(length=60))
    seeds = iter(range(runs))
    median, times = median_s(
        lambda: plain.continue_playlist(SEEDS, Settings(length=50, seed=next(seeds))), runs
    )
    step_s, _ = median_s(lambda: plain.best(hidden, jnp.zeros(NUM_ROWS, bool), 20)[0], 10)
    features = config.features
    return {
        "f32_bytes": NUM_ROWS * features * 4,
        "pool_bytes": generator.pool_size * (features + 1) * 4,  # rows and biases
        "bandwidth": NUM_ROWS * features * 4 / scan_s,
        "scan_ms": scan_s * 1000,
        "scan_step_ms": step_s * 1000,
        "scans": scans,
        "same": same,
        "median": median,
        "times": times,
    }


def trained(run_dir: Path, runs: int) -> dict:
    """Library figures on a trained run: 50 sampled tracks after the first 5 tracks of
    each of the first `runs` test playlists of its database, scans counted, and a check
    of two continuations against full scans; and the run with a seed track (its token
    and URI) for the CLI figures."""
    from trecs.checkpoints import load_run
    from trecs.config import NUM_SPECIAL
    from trecs.db import connect
    from trecs.generate import Generator, Settings

    run = load_run(run_dir)
    token_of = run.vocab.token_of()
    conn = connect(run.config.db)
    try:
        pids = conn.execute(
            "SELECT m.playlist_id FROM split_memberships m JOIN splits s ON s.id = m.split_id"
            " WHERE s.name = 'test' ORDER BY m.playlist_id LIMIT ?",
            (runs,),
        ).fetchall()
        seeds = []
        for (pid,) in pids:
            ids = conn.execute(
                "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ?"
                " ORDER BY pos LIMIT 5",
                (pid,),
            ).fetchall()
            seeds.append([int(token_of[i]) for (i,) in ids if i < len(token_of)])
        first = int(run.vocab.track_ids[seeds[0][0] - NUM_SPECIAL])
        uri = conn.execute("SELECT uri FROM tracks WHERE id = ?", (first,)).fetchone()[0]
    finally:
        conn.close()
    generator = counted(Generator)(run.model, run.table, len(run.vocab), run.bias)
    generator.continue_playlist(seeds[0], Settings(length=60))  # compile
    times, scans = [], []
    for seed, tokens in enumerate(seeds):
        generator.scans = 0
        start = time.perf_counter()
        generator.continue_playlist(tokens, Settings(length=50, seed=seed))
        times.append(time.perf_counter() - start)
        scans.append(generator.scans)
    same = same_as_full_scans(
        generator,
        Generator(run.model, run.table, len(run.vocab), run.bias, pool_size=len(run.table)),
        [(tokens, Settings(50, seed=seed)) for seed, tokens in enumerate(seeds[:2])],
    )
    return {
        "rows": run.table.shape[0],
        "median": statistics.median(times),
        "times": times,
        "scans": scans,
        "same": same,
        "seeded": (run_dir, seeds[0][0], uri),
    }


def make_run(root: Path) -> tuple[Path, int, str]:
    """A saved run with 2,262,295 rows, every one a track of a small synthetic database
    (repeating them); and a seed track: its token and URI."""
    import numpy as np

    from trecs.build_db import build_database
    from trecs.config import NUM_SPECIAL, ModelConfig, TrainConfig
    from trecs.db import connect
    from trecs.synth import synth_mpd
    from trecs.train import train
    from trecs.vocab import Vocabulary

    synth_mpd(root / "mpd", playlists=2_000, tracks=20_000, seed=0)
    db = root / "mpd.db"
    build_database(db, [root / "mpd"], workers=1)
    model = ModelConfig(num_tracks=NUM_ROWS)
    config = TrainConfig(db=db, model=model, num_steps=1, table_init="normal", data_workers=0)
    train(root / "run", config)
    conn = connect(db)
    try:
        ids = np.array([r[0] for r in conn.execute("SELECT id FROM tracks ORDER BY id")])
        uri = conn.execute("SELECT uri FROM tracks ORDER BY id LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    track_ids = np.resize(ids, NUM_ROWS - NUM_SPECIAL)
    Vocabulary(track_ids, np.ones(NUM_ROWS, np.int64)).save(root / "run" / "vocab.npz")
    return root / "run", NUM_SPECIAL, uri  # the first track's token, and its URI


def cli_s(run_dir: Path, uri: str, length: int) -> float:
    """Wall time of one `trecs generate` of `length` tracks, process start included."""
    command = [sys.executable, "-c", "from trecs.cli import main; main()", "generate"]
    command += [str(run_dir), "--track", uri, "--length", str(length), "--format", "json"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


# What `trecs generate` runs after parsing, timed in a fresh process around the
# continuation alone: its compilations and the window's restart are in, loading the
# checkpoint and starting Python (most of the CLI's wall time, and of its noise) are not.
FRESH = """
import sys, time
from pathlib import Path
from trecs.checkpoints import load_run
from trecs.generate import Generator, Settings
trained = load_run(Path(sys.argv[1]))
generator = Generator(trained.model, trained.table, len(trained.vocab), trained.bias)
start = time.perf_counter()
generator.continue_playlist([int(sys.argv[3])], Settings(length=int(sys.argv[2])))
print(time.perf_counter() - start)
"""


def fresh_s(run_dir: Path, length: int, token: int) -> float:
    """Seconds of one continuation of `length` tracks in a fresh process (see FRESH)."""
    command = [sys.executable, "-c", FRESH, str(run_dir), str(length), str(token)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def cli(runs: int, seeded: tuple[Path, int, str] | None) -> tuple[list[float], ...]:
    """Wall times of the 60-track and 10-track CLI runs, and the continuation alone in a
    fresh process for both lengths, alternated; on `seeded` (a run, its seed track's
    token and URI), or on an untrained run made for the purpose."""
    with tempfile.TemporaryDirectory() as tmp:
        if seeded is None:
            print("making an untrained 2,262,295-row run ...", flush=True)
            seeded = make_run(Path(tmp))
        run_dir, token, uri = seeded
        long, short, fresh_long, fresh_short = [], [], [], []
        for _ in range(runs):
            long.append(cli_s(run_dir, uri, 60))
            short.append(cli_s(run_dir, uri, 10))
            fresh_long.append(fresh_s(run_dir, 60, token))
            fresh_short.append(fresh_s(run_dir, 10, token))
    return long, short, fresh_long, fresh_short


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument(
        "--trained", type=Path, help="a trained run: its figures, and the CLI's on it"
    )
    args = parser.parse_args()

    lib = library(args.runs)
    gb = 1e9
    bandwidth = lib["bandwidth"]
    print(
        f"table: {NUM_ROWS:,} rows; a float32 scan reads {lib['f32_bytes'] / gb:.2f} GB in "
        f"{lib['scan_ms']:.0f} ms here ({bandwidth / gb:.1f} GB/s): "
        f"{50 * lib['f32_bytes'] / bandwidth:.2f} s for 50 tracks at the least"
    )
    scans = lib["scans"]
    read = scans * lib["f32_bytes"] + 50 * lib["pool_bytes"]
    print(
        f"pooled: a pick reads its pool ({lib['pool_bytes'] / 1e6:.1f} MB), and the table "
        f"when the pool cannot vouch for it ({lib['scan_step_ms']:.0f} ms with the new pool):"
        f" {scans} scans in 50 greedy tracks, {read / gb:.2f} GB, "
        f"{read / bandwidth:.2f} s at {bandwidth / gb:.1f} GB/s at the least"
    )
    print(f"picks equal to full float32 scans (greedy and sampled): {lib['same']}")
    times = ", ".join(f"{t:.2f}" for t in lib["times"])
    print(f"untrained table, library, 50 tracks: median {lib['median']:.2f} s (runs {times})")
    seeded = None
    if args.trained:
        run = trained(args.trained, args.runs)
        seeded = run["seeded"]
        print(
            f"trained table ({args.trained}, {run['rows']:,} rows), library, 50 sampled "
            f"tracks after 5 seed tracks: median {run['median']:.2f} s (runs "
            f"{', '.join(f'{t:.2f}' for t in run['times'])}); scans "
            f"{', '.join(map(str, run['scans']))}; equal to full scans: {run['same']}"
        )
    which = f"trained run {args.trained}" if args.trained else "untrained run"
    print(f"CLI figures on the {which}:")
    long, short, fresh_long, fresh_short = cli(args.cli_runs, seeded)
    print(
        "fresh process, continuation alone (compiling included), 60 minus 10 tracks: "
        f"{statistics.median(fresh_long) - statistics.median(fresh_short):.2f} s between "
        f"medians (60: {_list(fresh_long)}; 10: {_list(fresh_short)})"
    )
    difference = statistics.median(long) - statistics.median(short)
    spread = max(max(long) - min(long), max(short) - min(short))
    print(
        f"CLI, 60 minus 10 tracks: {difference:.2f} s between medians, "
        f"{min(long) - min(short):.2f} s between minima (60: {_list(long)}; 10: {_list(short)})"
    )
    if spread > 0.5:
        print(f"target <= 0.5 s through the CLI: not resolved (runs spread over {spread:.1f} s)")
    else:
        print(f"target <= 0.5 s through the CLI: {'met' if difference <= 0.5 else 'NOT met'}")


def _list(times: list[float]) -> str:
    return ", ".join(f"{t:.1f}" for t in times) + " s"


if __name__ == "__main__":
    main()
