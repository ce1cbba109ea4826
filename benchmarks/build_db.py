"""Benchmark `trecs build-db`: playlists per second and peak memory, end to end.

Writes synthetic MPD slices once (100,000 playlists by default), then builds the database
from them several times and prints the median, then the same for the 2,000 real MPD
playlists in ../shared/data/real-mpd when that folder exists. Each build runs in a fresh
process, so that its peak memory (the builder and its slice-loading workers) is its own.

    uv run python benchmarks/build_db.py [--playlists 100000] [--runs 5]
        [--baseline-src OLD/packages/trecs/src] [--peak-memory [--memory-data DIR]]

`--baseline-src` runs another trecs (for instance `git archive` of an older commit)
alternately with this one on the same input and prints the ratio, which on a shared
machine is steadier than either figure. `--peak-memory` adds one build of 1,000,000
synthetic playlists over the MPD's 2,262,295 tracks (writing them takes many minutes;
`--memory-data` names slices to use instead).

Targets (issue 17): >= 15,000 playlists/s on a 2-core machine, under 3 GB at 1,000,000
playlists. The original trecs code built 1,221 synthetic playlists/s here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ORIGINAL_PLAYLISTS_PER_S = 1_221  # the original trecs code on 100,000 synthetic playlists
TARGET_PLAYLISTS_PER_S = 15_000
TARGET_PEAK_MB = 3_000
MPD_TRACKS = 2_262_295
REAL_MPD = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-mpd"

CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from trecs.build_db import build_database
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
report = build_database(Path(sys.argv[1]), [Path(p) for p in sys.argv[3:]], force=True,
                        verify_md5=sys.argv[2] == "1")
seconds = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF)
workers = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"seconds": seconds, "playlists": report.playlists, "entries": report.entries,
                  "tracks": report.tracks, "main_mb": own.ru_maxrss / 1024,
                  "worker_mb": workers.ru_maxrss / 1024, "workers": os.cpu_count() or 1,
                  "cpu_s": own.ru_utime + own.ru_stime - before.ru_utime - before.ru_stime
                           + workers.ru_utime + workers.ru_stime}))
"""


def build_once(db: Path, inputs: list[Path], verify: bool, src: Path | None) -> dict:
    """One build in a fresh process; `src` puts another trecs first on the path."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), "1" if verify else "0", *map(str, inputs)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout)


def measure(
    label: str, inputs: list[Path], runs: int, verify: bool = False, baseline: Path | None = None
) -> dict[str, list[dict]]:
    """`runs` builds of the inputs (alternating with the baseline's when given)."""
    results: dict[str, list[dict]] = {"this": [], "baseline": []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        for run in range(runs):
            for which, src in (("this", None), ("baseline", baseline)):
                if which == "baseline" and baseline is None:
                    continue
                result = build_once(db, inputs, verify, src)
                results[which].append(result)
                print(
                    f"{label} ({which}) run {run + 1}: {result['seconds']:.2f} s, "
                    f"{rate(result):,.0f} playlists/s, {result['cpu_s']:.1f} CPU s",
                    flush=True,
                )
    return results


def rate(result: dict) -> float:
    return result["playlists"] / result["seconds"]


def summarise(label: str, results: dict[str, list[dict]]) -> float:
    """Print the median rate beside the original's (and the baseline's); return it."""
    rates = [rate(r) for r in results["this"]]
    median = statistics.median(rates)
    first = results["this"][0]
    print(
        f"{label}: {first['playlists']:,} playlists "
        f"({first['entries'] / first['playlists']:.1f} tracks each, {first['tracks']:,} tracks)"
    )
    print(f"  median {median:,.0f} playlists/s (min {min(rates):,.0f}, max {max(rates):,.0f})")
    print(
        f"  {median / ORIGINAL_PLAYLISTS_PER_S:.1f}x the original's {ORIGINAL_PLAYLISTS_PER_S:,}/s"
    )
    cpu = statistics.median(r["cpu_s"] * 1e6 / r["playlists"] for r in results["this"])
    print(f"  CPU time of the build (builder + workers): {cpu:.0f} us per playlist")
    if results["baseline"]:
        ratios = [
            rate(new) / rate(old)
            for new, old in zip(results["this"], results["baseline"], strict=True)
        ]
        base = statistics.median(rate(r) for r in results["baseline"])
        base_cpu = statistics.median(r["cpu_s"] * 1e6 / r["playlists"] for r in results["baseline"])
        print(
            f"  baseline: median {base:,.0f} playlists/s, {base_cpu:.0f} us CPU per playlist; "
            f"this / baseline, run by run: median {statistics.median(ratios):.2f}x "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f})"
        )
    return median


def peak_memory(data: Path) -> None:
    """One build of a large input: the builder's and the largest worker's peak RSS."""
    print(f"\npeak memory: one build of {data} ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        result = build_once(Path(tmp) / "bench.db", [data], False, None)
    total = result["main_mb"] + result["workers"] * result["worker_mb"]
    print(
        f"  {result['playlists']:,} playlists, {result['entries']:,} entries, "
        f"{result['tracks']:,} tracks in {result['seconds']:.0f} s ({rate(result):,.0f}/s)"
    )
    print(
        f"  peak resident: builder {result['main_mb']:,.0f} MB, largest worker "
        f"{result['worker_mb']:,.0f} MB; at most {total:,.0f} MB together "
        f"({result['workers']} workers): {'under' if total < TARGET_PEAK_MB else 'OVER'} "
        f"the {TARGET_PEAK_MB:,} MB target"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--playlists", type=int, default=100_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="keep the synthetic slices here")
    parser.add_argument("--baseline-src", type=Path, help="another trecs's src folder")
    parser.add_argument("--no-verify", action="store_true", help="skip the --verify-md5 runs")
    parser.add_argument("--peak-memory", action="store_true", help="also build 1,000,000")
    parser.add_argument("--memory-data", type=Path, help="slices for --peak-memory")
    args = parser.parse_args()

    from trecs.synth import synth_mpd

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        data = data_dir / f"mpd-{args.playlists}"
        if not (data / "md5sums").exists():
            print(f"writing {args.playlists:,} synthetic playlists to {data} ...", flush=True)
            synth_mpd(data, playlists=args.playlists, tracks=args.tracks, seed=0, force=True)
        plain = measure("synthetic", [data], args.runs, baseline=args.baseline_src)
        verified = (
            None if args.no_verify else measure("synthetic --verify-md5", [data], args.runs, True)
        )
        real = None
        if REAL_MPD.is_dir():
            slices = sorted(REAL_MPD.glob("*.json"))
            real = measure("real", slices, args.runs, baseline=args.baseline_src)
        print()
        median = summarise("build-db, synthetic", plain)
        if verified is not None:
            summarise("build-db --verify-md5, synthetic (also hashes every slice)", verified)
        if real is not None:
            summarise(f"build-db, real MPD playlists ({REAL_MPD})", real)
        met = "met" if median >= TARGET_PLAYLISTS_PER_S else "NOT met"
        print(f"target >= {TARGET_PLAYLISTS_PER_S:,} playlists/s (synthetic): {met}")
        if args.peak_memory:
            memory = args.memory_data or data_dir / "mpd-1000000"
            if not memory.exists():
                print(f"writing 1,000,000 synthetic playlists to {memory} ...", flush=True)
                synth_mpd(memory, playlists=1_000_000, tracks=MPD_TRACKS, seed=0)
            peak_memory(memory)


if __name__ == "__main__":
    main()
