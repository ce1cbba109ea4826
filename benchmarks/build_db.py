"""Benchmark `trecs build-db`: playlists per second and peak memory, end to end.

Writes synthetic MPD slices once (20,000 playlists by default), then builds the database
from them several times and prints the median. Each build runs in a fresh process so
that peak memory (the builder plus its slice-loading workers) is measured per build.

    uv run python benchmarks/build_db.py [--playlists 20000] [--runs 5]

Target (issue 3): >= 10,000 playlists/s on a 2-core machine; the original trecs code
measured about 1,750 playlists/s on synthetic slices here (shared/reference/README.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ORIGINAL_PLAYLISTS_PER_S = 1_750  # reference figure for the original trecs code

CHILD = """
import json, resource, sys, time
from pathlib import Path
from trecs.build_db import build_database
start = time.perf_counter()
report = build_database(Path(sys.argv[1]), [Path(sys.argv[2])], force=True, verify_md5=sys.argv[3] == "1")
seconds = time.perf_counter() - start
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"seconds": seconds, "playlists": report.playlists, "entries": report.entries,
                  "main_mb": own / 1024, "worker_mb": workers / 1024}))
"""


def measure(db: Path, data: Path, verify: bool, runs: int) -> list[dict]:
    label = "build-db --verify-md5" if verify else "build-db"
    results = []
    for run in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(db), str(data), "1" if verify else "0"],
            check=True,
            capture_output=True,
            text=True,
        )
        result = json.loads(out.stdout)
        results.append(result)
        print(
            f"{label} run {run + 1}: {result['seconds']:.2f} s, "
            f"{result['playlists'] / result['seconds']:,.0f} playlists/s, peak {result['main_mb']:.0f} MB "
            f"(builder) + {result['worker_mb']:.0f} MB (largest worker)",
            flush=True,
        )
    return results


def summarise(label: str, results: list[dict]) -> float:
    rates = [r["playlists"] / r["seconds"] for r in results]
    median = statistics.median(rates)
    peak = max(r["main_mb"] for r in results) + max(r["worker_mb"] for r in results)
    print(f"{label}:")
    print(f"  median {median:,.0f} playlists/s (min {min(rates):,.0f}, max {max(rates):,.0f})")
    print(
        f"  {median / ORIGINAL_PLAYLISTS_PER_S:.1f}x the original's {ORIGINAL_PLAYLISTS_PER_S:,}/s"
    )
    print(f"  whole MPD (1,000,000 playlists) at this rate: {1_000_000 / median / 60:.1f} min")
    print(f"  peak memory {peak:.0f} MB (builder + one worker; the other workers are alike)")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--playlists", type=int, default=20_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, help="keep the synthetic slices here")
    args = parser.parse_args()

    from trecs.synth import synth_mpd

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data_dir or Path(tmp) / "mpd"
        if not (data / "md5sums").exists():
            print(f"writing {args.playlists:,} synthetic playlists to {data} ...", flush=True)
            synth_mpd(data, playlists=args.playlists, tracks=args.tracks, seed=0, force=True)
        db = Path(tmp) / "bench.db"
        plain = measure(db, data, False, args.runs)
        verified = measure(db, data, True, args.runs)
    per_playlist = plain[0]["entries"] / plain[0]["playlists"]
    print(
        f"\n{plain[0]['playlists']:,} synthetic playlists ({per_playlist:.1f} tracks each), {args.runs} runs each"
    )
    median = summarise("build-db (every playlist validated)", plain)
    summarise("build-db --verify-md5 (also hashes every slice)", verified)
    print(f"target >= 10,000 playlists/s for build-db: {'met' if median >= 10_000 else 'NOT met'}")


if __name__ == "__main__":
    main()
