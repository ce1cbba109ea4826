"""Benchmark the cover dataset: build-db from a folder, and the training input pipeline.

Writes 5,000 synthetic ~300x300 JPEG covers and a labels CSV to a folder once, then

1. builds the dataset from them (`build_from_folder`, each run in a fresh process) and
   prints covers/s; then the same at Spotify's cover size (issue 17): 956 covers of
   640x640 (about 150 KB each), alone and with 57 hostile files mixed in (truncated,
   HTML, random bytes, CMYK, 16-bit PNG, animated GIF, a 6,000 px JPEG, a PNG claiming
   6,300 px, a 12 MP phone photo with an EXIF rotation, empty files), and the 1,723 real
   60x60 covers of ../shared/data/real-covers-genre when present;
2. reads the train split through `loader.make_loader` with 2 workers (decode in JPEG
   draft mode, resize to 128x128, the nine distortions, normalise) and prints images/s
   over whole epochs of the train split. Each worker caches the decoded 128x128 covers
   (loader.CACHE_MB MiB each; every cover fits here), so the first epoch, which also
   starts the workers, decodes each cover about once per worker and is reported on its
   own (cold); the later, timed epochs (warm) decode nothing and only distort.

    uv run python benchmarks/dataset.py [--covers 5000] [--runs 3] [--workers 2]

Targets (issue 6), on a 2-core machine: >= 300 covers/s for build-db and >= 1,000
images/s for the input pipeline; issue 17: >= 600 covers/s on 640 px covers, with and
without hostile files. The original stored pre-distorted copies and needed 388 s for
14k rows (about 37 rows/s).
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
SPOTIFY_COVERS = 956  # issue 17's folder: 956 covers and 57 hostile files
REAL_GENRE = Path(__file__).resolve().parents[2] / "shared/data/real-covers-genre"

BUILD = """
import json, sys, time
from pathlib import Path
from pressedplay.folder import build_from_folder
start = time.perf_counter()
report = build_from_folder(
    Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), force=True, genre_column=sys.argv[4]
)
print(json.dumps({
    "seconds": time.perf_counter() - start, "covers": report["covers"],
    "skipped": sum(report["skipped"].values()),
}))
"""

PIPELINE = """
import json, os, resource, sys, time
from pathlib import Path
from pressedplay.loader import make_loader

def cpu_now():  # CPU seconds so far of this process and its live workers (Linux /proc)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    pids = loader.worker_pids()
    if pids is None:
        return None
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return None
    return total

loader = make_loader(Path(sys.argv[1]), "train", batch_size=64, workers=int(sys.argv[2]))
images = 0
start = time.perf_counter()
for batch, _, _ in loader:  # starts the workers and fills their cover caches: cold
    images += len(batch)
cold = time.perf_counter() - start
warm_cpu = cpu_now()
start = time.perf_counter()
for _ in range(int(sys.argv[3])):
    for batch, _, _ in loader:
        images += len(batch)
seconds = time.perf_counter() - start
timed = images * int(sys.argv[3]) // (int(sys.argv[3]) + 1)
if warm_cpu is not None:
    warm_cpu = (cpu_now() - warm_cpu) / timed * 1000
del loader, batch  # stops the workers, so their CPU time is counted below
cpu = sum(
    usage.ru_utime + usage.ru_stime
    for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
)
print(json.dumps({
    "seconds": seconds, "images": timed, "cpu_ms": cpu / images * 1000,
    "cold_seconds": cold, "cold_images": images - timed, "warm_cpu_ms": warm_cpu,
}))
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


def _hostile_files() -> dict[str, bytes]:
    """57 files a scraped or user-made cover folder may hold, each kind several times."""
    import io

    from PIL import Image

    def encoded(image: Image.Image, format: str, **params) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format, **params)
        return buffer.getvalue()

    rng = np.random.default_rng(17)
    noise = Image.fromarray(rng.integers(0, 256, (640, 640, 3), dtype=np.uint8))
    good = encoded(noise, "JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated, as phones store portraits
    phone = Image.fromarray(
        (rng.integers(0, 48, (3024, 4032, 3)) + np.linspace(0, 200, 4032)[None, :, None]).astype(
            np.uint8
        )
    )
    phone_jpeg = encoded(phone, "JPEG", quality=85, exif=exif.tobytes())
    claims = bytearray(encoded(Image.new("L", (64, 64)), "PNG"))
    claims[16:24] = (6300).to_bytes(4, "big") * 2  # IHDR says 6,300 x 6,300 (CRC now wrong)
    kinds = {
        "truncated.jpg": lambda k: good[: 20_000 + 1_000 * k],
        "html.jpg": lambda k: b"<html><body>404 Not Found</body></html>" * (k + 1),
        "random.jpg": lambda k: rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "cmyk.jpg": lambda k: encoded(noise.convert("CMYK"), "JPEG"),
        "sixteen.png": lambda k: encoded(
            Image.fromarray(rng.integers(0, 65536, (600, 600), dtype=np.uint16)), "PNG"
        ),
        "animated.gif": lambda k: encoded(
            Image.new("RGB", (300, 300), (40 * k, 0, 0)),
            "GIF",
            save_all=True,
            append_images=[Image.new("RGB", (300, 300), (0, 40 * k, 0))] * 4,
        ),
        "huge.jpg": lambda k: encoded(Image.new("RGB", (6000, 6000), (30 * k, 80, 90)), "JPEG"),
        "claims.png": lambda k: bytes(claims),
        "phone.jpg": lambda k: phone_jpeg,
    }
    files = {f"hostile/{k}-{name}": make(k) for name, make in kinds.items() for k in range(6)}
    files.update(
        {"hostile/empty-0.jpg": b"", "hostile/empty-1.png": b"", "hostile/empty-2.gif": b""}
    )
    return files


def write_spotify_covers(folder: Path) -> tuple[Path, Path]:
    """956 covers of 640x640 and the 57 hostile files; labels without and with them."""
    from pressedplay.features import NAMES
    from pressedplay.synth_covers import cover_tracks, render

    clean, mixed = folder / "labels.csv", folder / "labels-hostile.csv"
    if mixed.exists():
        return clean, mixed
    print(f"writing {SPOTIFY_COVERS} synthetic 640x640 JPEG covers and 57 hostile files ...")
    rows = []
    for index in range(SPOTIFY_COVERS):
        rng = np.random.default_rng([640, index])
        features = cover_tracks(rng, 1)[0]
        name = f"covers/{index:04d}.jpg"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(render(features, rng, size=640))
        rows.append([name, *(round(float(v), 4) for v in features)])
    hostile = _hostile_files()
    (folder / "hostile").mkdir(exist_ok=True)
    for name, data in hostile.items():
        (folder / name).write_bytes(data)
    for path, extra in ((clean, []), (mixed, [[name, *["0.5"] * 8] for name in hostile])):
        with open(path, "w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow(["image", *NAMES])
            out.writerows(rows + extra)
    return clean, mixed


def _child(script: str, *args: object) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout)


def bench_build(
    db: Path, folder: Path, labels: Path, runs: int, label: str = "", genre: str = "genre"
) -> float:
    """Median covers stored per second over `runs` builds, each in a fresh process."""
    rates = []
    for run in range(runs):
        result = _child(BUILD, db, folder, labels, genre)
        rates.append(result["covers"] / result["seconds"])
        print(
            f"build-db{label} run {run + 1}: {result['covers']:,} covers "
            f"({result['skipped']:,} files or rows left out) in {result['seconds']:.2f} s, "
            f"{rates[-1]:,.0f} covers/s",
            flush=True,
        )
    return statistics.median(rates)


def bench_pipeline(
    db: Path, workers: int, epochs: int, runs: int
) -> tuple[float, float, float, float | None]:
    """Medians: warm images/s; CPU ms per image over all processes and all epochs (the
    load-free cost); images/s of the first (cold-cache) epoch; CPU ms per image of the
    timed (warm) epochs alone, loader and workers (None where /proc can't tell)."""
    rates, cpu, cold, warm_cpu = [], [], [], []
    for run in range(runs):
        result = _child(PIPELINE, db, workers, epochs)
        rates.append(result["images"] / result["seconds"])
        cpu.append(result["cpu_ms"])
        cold.append(result["cold_images"] / result["cold_seconds"])
        if result["warm_cpu_ms"] is not None:
            warm_cpu.append(result["warm_cpu_ms"])
        print(
            f"pipeline run {run + 1}: first epoch (cold cache, with worker start-up) "
            f"{result['cold_images']:,} images in {result['cold_seconds']:.2f} s, "
            f"{cold[-1]:,.0f} images/s; then {result['images']:,} images in "
            f"{result['seconds']:.2f} s, {rates[-1]:,.0f} images/s; "
            f"{cpu[-1]:.2f} ms CPU per image (all processes, all epochs)"
            + (f", {warm_cpu[-1]:.2f} in the timed epochs" if warm_cpu else ""),
            flush=True,
        )
    warm = statistics.median(warm_cpu) if warm_cpu else None
    return statistics.median(rates), statistics.median(cpu), statistics.median(cold), warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--covers", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--epochs", type=int, default=1, help="timed epochs per pipeline run")
    parser.add_argument("--data-dir", type=Path, help="keep the covers here between runs")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pressedplay-bench-") as tmp:
        folder = (args.data_dir or Path(tmp)) / "covers"
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        labels = write_covers(folder, args.covers)
        print(f"covers ready in {time.perf_counter() - started:.1f} s", flush=True)
        db = Path(tmp) / "bench.db"
        build = bench_build(db, folder, labels, args.runs)
        spotify = (args.data_dir or Path(tmp)) / "spotify-size"
        spotify.mkdir(parents=True, exist_ok=True)
        clean, mixed = write_spotify_covers(spotify)
        other = Path(tmp) / "other.db"  # the pipeline below reads the 5,000 covers' db
        at_640 = {
            "956 covers of 640x640": bench_build(other, spotify, clean, args.runs, ", 640 px"),
            "the same with 57 hostile files": bench_build(
                other, spotify, mixed, args.runs, ", 640 px + hostile"
            ),
        }
        if (REAL_GENRE / "labels.csv").is_file():
            at_640["1,723 real 60x60 covers (real-covers-genre)"] = bench_build(
                other,
                REAL_GENRE / "img",
                REAL_GENRE / "labels.csv",
                args.runs,
                ", real",
                "playlist",
            )
        pipeline, cpu_ms, cold, warm_cpu_ms = bench_pipeline(
            db, args.workers, args.epochs, args.runs
        )

    print(f"\n{args.covers:,} covers, {TRACKS_PER_COVER} tracks each, {os.cpu_count()} CPU cores")
    print(
        f"build-db from a folder: median {build:,.0f} covers/s "
        f"(target >= 300: {'met' if build >= 300 else 'NOT met'})"
    )
    for what, rate in at_640.items():
        verdict = "met" if rate >= 600 else "NOT met"
        target = "" if what.startswith("1,723") else f" (target >= 600: {verdict})"
        print(f"  {what}: median {rate:,.0f} covers/s{target}")
    print(
        f"input pipeline, {args.workers} workers, after the first epoch (covers cached "
        f"by each worker): median {pipeline:,.0f} images/s "
        f"(target >= 1,000: {'met' if pipeline >= 1_000 else 'NOT met'}); "
        f"{pipeline / ORIGINAL_ROWS_PER_S:.0f}x the original's {ORIGINAL_ROWS_PER_S:.0f} rows/s"
    )
    print(
        f"  first epoch (cold cache, every cover decoded, worker start-up included): "
        f"median {cold:,.0f} images/s"
    )
    cores = min(args.workers, os.cpu_count() or 1)
    print(
        f"  {cpu_ms:.2f} ms CPU per image over all processes (loader, workers, start-up): "
        f"{1000 * cores / cpu_ms:,.0f} images/s if {cores} cores were ours alone "
        "(CPU time itself grows when other processes share the cores)"
    )
    if warm_cpu_ms is not None:
        print(
            f"  {warm_cpu_ms:.2f} ms CPU per image in the timed epochs (loader and workers): "
            f"{1000 * cores / warm_cpu_ms:,.0f} images/s if {cores} cores were ours alone"
        )


if __name__ == "__main__":
    main()
