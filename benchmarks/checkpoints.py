"""Benchmark saving and loading a trecs run at the MPD's vocabulary size (2,262,295 rows).

Trains the one-step run of `benchmarks/generate.py` twice: once with checkpoints in
chunks of `trecs.checkpoints.CHUNK_BYTES`, once as Orbax stores arrays by default (each
in one chunk, as runs saved before this benchmark were). Prints the time of each save
(the run's one checkpoint: the table and its two AdamW moments) and of `load_run` (what
`trecs generate`, `evaluate` and `train-ranker` start with), each load in a fresh process
as a command runs it, and that process's peak memory; medians of several runs, both
layouts alternated.

    uv run python benchmarks/checkpoints.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Peak memory from /proc (Linux): getrusage's maxrss would count the parent's memory,
# which this process had between fork and exec.
LOAD = """
import re, sys, time
from pathlib import Path
import jax
from trecs.checkpoints import load_run
start = time.perf_counter()
jax.block_until_ready(load_run(Path(sys.argv[1])).table)
seconds = time.perf_counter() - start
peak_kb = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)
print(seconds, int(peak_kb) / 1e6)
"""


def make(root: Path, chunk_bytes: int | None) -> tuple[Path, float]:
    """The benchmark's run saved with chunks of `chunk_bytes` (None: Orbax's default), and
    the seconds its save took."""
    from generate import make_run

    from trecs import checkpoints

    spent = []
    original_save, original_chunk = checkpoints.save, checkpoints.CHUNK_BYTES

    def timed(*args, **kwargs) -> None:
        start = time.perf_counter()
        original_save(*args, **kwargs)
        spent.append(time.perf_counter() - start)

    checkpoints.save, checkpoints.CHUNK_BYTES = timed, chunk_bytes
    try:
        run_dir, _ = make_run(root)
    finally:
        checkpoints.save, checkpoints.CHUNK_BYTES = original_save, original_chunk
    return run_dir, sum(spent)


def load(run_dir: Path) -> tuple[float, float]:
    """Seconds of one `load_run` in a fresh process, and the process's peak memory in GB."""
    done = subprocess.run(
        [sys.executable, "-c", LOAD, str(run_dir)], check=True, capture_output=True, text=True
    )
    seconds, peak_gb = done.stdout.split()[-2:]
    return float(seconds), float(peak_gb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from trecs.checkpoints import CHUNK_BYTES

    layouts = {f"chunks of {CHUNK_BYTES >> 20} MiB": CHUNK_BYTES, "one chunk (before)": None}
    with tempfile.TemporaryDirectory() as tmp:
        runs, saves = {}, {}
        for name, chunk_bytes in layouts.items():
            print(f"making a 2,262,295-row run, {name} ...", flush=True)
            runs[name], saves[name] = make(Path(tmp) / str(chunk_bytes), chunk_bytes)
        loads: dict[str, list[float]] = {name: [] for name in layouts}
        peaks: dict[str, list[float]] = {name: [] for name in layouts}
        for _ in range(args.runs):
            for name in layouts:
                seconds, peak_gb = load(runs[name])
                loads[name].append(seconds)
                peaks[name].append(peak_gb)
    for name in layouts:
        times = ", ".join(f"{t:.2f}" for t in loads[name])
        print(
            f"{name}: save {saves[name]:.2f} s; load_run median "
            f"{statistics.median(loads[name]):.2f} s (runs {times}), peak memory median "
            f"{statistics.median(peaks[name]):.2f} GB (max {max(peaks[name]):.2f})"
        )
    new, old = (statistics.median(loads[name]) for name in layouts)
    print(f"load_run: {old / new:.2f}x faster in chunks")


if __name__ == "__main__":
    main()
