"""Benchmark the cover dataset: build-db from a folder, and the training input pipeline.

Writes 5,000 synthetic ~300x300 JPEG covers and a labels CSV to a folder once, then

1. builds the dataset from them (`build_from_folder`, each run in a fresh process) and
   prints covers/s;
2. reads the train split through `loader.make_loader` with 2 workers (decode in JPEG
   draft mode, resize to 128x128, the nine distortions, normalise) and prints images/s,
   timed over whole epochs after the workers have started.

    uv run python benchmarks/dataset.py [--covers 5000] [--runs 3] [--workers 2]

Targets (issue 6), on a 2-core machine: >= 300 covers/s for build-db and >= 1,000
images/s for the input pipeline. The original stored pre-distorted copies and needed
388 s for 14k rows (about 37 rows/s).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ORIGINAL_ROWS_PER_S = 14_000 / 388
TRACKS_PER_COVER = 3

BUILD = """
import json, sys, time
from pathlib import Path
from pressedplay.folder import build_from_folder
start = time.perf_counter()
report = build_from_folder(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), force=True)
print(json.dumps({"seconds": time.perf_counter() - start, "covers": report["covers"]}))
"""

PIPELINE = """
import json, resource, sys, time
from pathlib import Path
from pressedplay.loader import make_loader
loader = make_loader(Path(sys.argv[1]), "train", batch_size=64, workers=int(sys.argv[2]))
images = 0
for batch, _, _ in loader:  # the first epoch starts the workers: not timed
    images += len(batch)
start = time.perf_counter()
for _ in range(int(sys.argv[3])):
    for batch, _, _ in loader:
        images += len(batch)
seconds = time.perf_counter() - start
timed = images * int(sys.argv[3]) // (int(sys.argv[3]) + 1)
del loader, batch  # stops the workers, so their CPU time is counted below
cpu = sum(
    usage.ru_utime + usage.ru_stime
    for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
)
print(json.dumps({"seconds": seconds, "images": timed, "cpu_ms": cpu / images * 1000}))
"""


def _write_chunk(folder: str, seed: int, indices: list[int]) -> list[list]:
    """Render covers `indices` as 300x300 JPEGs; their label rows."""
    from pressedplay.synth_covers import cover_tracks, render

    rows = []
    for index in indices:
        rng = np.random.default_rng([seed, index])
        features = cover_tracks(rng, TRACKS_PER_COVER)
        name = f"{index // 1000:02d}/cover{index:05d}.jpg"
        path = Path(folder, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(features.mean(axis=0), rng, size=300))
        rows += [[name, *(round(float(v), 4) for v in track)] for track in features]
    return rows


def write_covers(folder: Path, covers: int) -> Path:
    """The covers and LABELS.csv (image + the eight features, one row per pair), once."""
    from pressedplay.features import NAMES

    labels = folder / "labels.csv"
    if labels.exists():
        return labels
    print(f"writing {covers:,} synthetic 300x300 JPEG covers to {folder} ...", flush=True)
    chunks = [list(range(start, min(start + 250, covers))) for start in range(0, covers, 250)]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        results = pool.map(_write_chunk, [str(folder)] * len(chunks), [0] * len(chunks), chunks)
        rows = [row for chunk in results for row in chunk]
    with open(folder / "labels.partial", "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["image", *NAMES])
        out.writerows(rows)
    os.replace(folder / "labels.partial", labels)
    return labels


def _child(script: str, *args: object) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def bench_build(db: Path, folder: Path, labels: Path, runs: int) -> float:
    rates = []
    for run in range(runs):
        result = _child(BUILD, db, folder, labels)
        rates.append(result["covers"] / result["seconds"])
        print(
            f"build-db run {run + 1}: {result['covers']:,} covers in {result['seconds']:.2f} s, "
            f"{rates[-1]:,.0f} covers/s",
            flush=True,
        )
    return statistics.median(rates)


def bench_pipeline(db: Path, workers: int, epochs: int, runs: int) -> tuple[float, float]:
    """Median images/s, and median CPU ms per image over all processes (the load-free cost)."""
    rates, cpu = [], []
    for run in range(runs):
        result = _child(PIPELINE, db, workers, epochs)
        rates.append(result["images"] / result["seconds"])
        cpu.append(result["cpu_ms"])
        print(
            f"pipeline run {run + 1}: {result['images']:,} images in {result['seconds']:.2f} s, "
            f"{rates[-1]:,.0f} images/s; {cpu[-1]:.2f} ms CPU per image (all processes)",
            flush=True,
        )
    return statistics.median(rates), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--covers", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per pipeline run")
    parser.add_argument("--data-dir", type=Path, help="keep the covers here between runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pressedplay-bench-") as tmp:
        folder = args.data_dir or Path(tmp) / "covers"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        labels = write_covers(folder, args.covers)
        print(f"covers ready in {time.perf_counter() - started:.1f} s", flush=True)
        db = Path(tmp) / "bench.db"
        build = bench_build(db, folder, labels, args.runs)
        pipeline, cpu_ms = bench_pipeline(db, args.workers, args.epochs, args.runs)

    print(f"\n{args.covers:,} covers, {TRACKS_PER_COVER} tracks each, {os.cpu_count()} CPU cores")
    print(
        f"build-db from a folder: median {build:,.0f} covers/s "
        f"(target >= 300: {'met' if build >= 300 else 'NOT met'})"
    )
    print(
        f"input pipeline, {args.workers} workers: median {pipeline:,.0f} images/s "
        f"(target >= 1,000: {'met' if pipeline >= 1_000 else 'NOT met'}); "
        f"{pipeline / ORIGINAL_ROWS_PER_S:.0f}x the original's {ORIGINAL_ROWS_PER_S:.0f} rows/s"
    )
    cores = min(args.workers, os.cpu_count() or 1)
    print(
        f"  {cpu_ms:.2f} ms CPU per image over all processes (loader, workers, start-up): "
        f"{1000 * cores / cpu_ms:,.0f} images/s if {cores} cores were ours alone "
        "(CPU time itself grows when other processes share the cores)"
    )


if __name__ == "__main__":
    main()
