"""Benchmark `pressedplay generate`'s retrieval: milliseconds per query at a million tracks.

Builds a synthetic catalog of --tracks tracks (default 1,000,000: features drawn per
feature from shapes like TidyTuesday's, loudness in dB; 100,000 artists; six genres, a
seventh of the tracks under two), then times CatalogIndex.search for --queries queries
(features of random tracks plus noise), n=20, at most 2 per artist:

- without a genre filter, with one genre, with two genres;
- the median and 95th percentile per query over all queries, and the median of the
  per-run medians over --runs runs;

and, for reference, the time to build the index from arrays and, unless --no-sqlite, to
write the same tracks as a real catalog file (catalog.sql) and load it with
CatalogIndex.load.

    uv run python benchmarks/retrieval.py [--tracks 1000000] [--queries 200] [--runs 3]

Target (issue 7): under 20 ms per query.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from importlib.resources import files
from pathlib import Path

import numpy as np

from pressedplay.features import NAMES
from pressedplay.retrieval import CatalogIndex

TARGET_MS = 20.0
GENRES = ("edm", "rap", "r&b", "pop", "latin", "rock")


def synthetic(n: int, seed: int = 0) -> tuple[list, list, list, np.ndarray, list]:
    """Tracks with features shaped like a real catalog's (skewed 0-1 values, dB loudness)."""
    rng = np.random.default_rng(seed)
    shapes = {
        "acousticness": (0.6, 3.0),
        "danceability": (5.0, 3.0),
        "energy": (4.0, 2.0),
        "instrumentalness": (0.2, 3.0),
        "liveness": (1.5, 6.0),
        "speechiness": (1.2, 8.0),
        "valence": (2.5, 2.5),
    }
    features = np.empty((n, len(NAMES)))
    for column, name in enumerate(NAMES):
        if name == "loudness":
            features[:, column] = np.clip(rng.normal(-7, 3, n), -45, 1)
        else:
            features[:, column] = rng.beta(*shapes[name], n)
    ids = [f"{i:022d}" for i in range(n)]
    names = [f"song {i}" for i in range(n)]
    artists = [f"artist {i}" for i in rng.integers(0, 100_000, n).tolist()]
    first = rng.integers(0, len(GENRES), n)
    second = rng.integers(0, len(GENRES), n)
    both = rng.random(n) < 1 / 7
    genres = [
        (GENRES[a], GENRES[b]) if two and a != b else (GENRES[a],)
        for a, b, two in zip(first.tolist(), second.tolist(), both.tolist(), strict=True)
    ]
    return ids, names, artists, features, genres


def write_catalog(path: Path, ids, names, artists, features, genres) -> None:
    """The tracks as a real catalog file, in the schema pressedplay's import writes."""
    con = sqlite3.connect(path)
    con.executescript(files("pressedplay").joinpath("catalog.sql").read_text())
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    columns = ", ".join(NAMES)
    con.executemany(
        f"INSERT INTO tracks (id, name, artist, {columns}) VALUES (?, ?, ?, {', '.join('?' * 8)})",
        (
            (i, s, a, *row)
            for i, s, a, row in zip(ids, names, artists, features.tolist(), strict=True)
        ),
    )
    con.executemany(
        "INSERT INTO track_genres (track_id, genre, subgenre) VALUES (?, ?, '')",
        ((i, g) for i, gs in zip(ids, genres, strict=True) for g in gs),
    )
    con.execute("INSERT INTO meta (key, value) VALUES ('source', 'benchmark')")
    con.commit()
    con.close()


def time_queries(index: CatalogIndex, queries: list[dict], genres) -> list[float]:
    times = []
    for query in queries:
        start = time.perf_counter()
        index.search(query, n=20, genres=genres, max_per_artist=2)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-sqlite", action="store_true", help="skip the catalog file")
    args = parser.parse_args()

    start = time.perf_counter()
    ids, names, artists, features, genres = synthetic(args.tracks)
    made = time.perf_counter() - start
    start = time.perf_counter()
    index = CatalogIndex.from_arrays(ids, names, artists, features, genres)
    built = time.perf_counter() - start
    print(f"{args.tracks:,} synthetic tracks made in {made:.1f} s; index built in {built:.2f} s")

    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.db"
            start = time.perf_counter()
            write_catalog(path, ids, names, artists, features, genres)
            written = time.perf_counter() - start
            start = time.perf_counter()
            loaded = CatalogIndex.load(path)
            load_s = time.perf_counter() - start
            size_mb = path.stat().st_size / 1e6
        assert len(loaded) == args.tracks
        del loaded
        print(
            f"catalog file: written in {written:.1f} s ({size_mb:,.0f} MB), "
            f"CatalogIndex.load in {load_s:.1f} s"
        )

    rng = np.random.default_rng(1)
    rows = rng.integers(0, args.tracks, args.queries)
    noise = rng.normal(0, 0.05, (args.queries, len(NAMES))) * index.std
    queries = [
        dict(zip(NAMES, (features[row] + jitter).tolist(), strict=True))
        for row, jitter in zip(rows, noise, strict=True)
    ]
    worst = 0.0
    for label, filter_ in (
        ("no filter", None),
        ("1 genre", ["rock"]),
        ("2 genres", ["rap", "r&b"]),
    ):
        time_queries(index, queries[:5], filter_)  # warm the genre masks and caches
        medians, every = [], []
        for _ in range(args.runs):
            times = time_queries(index, queries, filter_)
            medians.append(statistics.median(times))
            every += times
        median = statistics.median(medians)
        worst = max(worst, median)
        p95 = float(np.percentile(every, 95))
        runs = ", ".join(f"{m:.2f}" for m in medians)
        print(
            f"{label:>9}: median {median:.2f} ms/query, p95 {p95:.2f} ms "
            f"({args.queries} queries x {args.runs} runs; run medians {runs})"
        )
    verdict = "met" if worst < TARGET_MS else "NOT met"
    print(f"target: under {TARGET_MS:.0f} ms per query at {args.tracks:,} tracks: {verdict}")


if __name__ == "__main__":
    main()
