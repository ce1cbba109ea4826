"""Build the trecs sqlite database from MPD slices.

Worker processes read (and optionally md5-check), decode and validate slices; this
process assigns global ids and writes. The database is written under a temporary name in the target's
folder and renamed only when complete, so a failure or interrupt never leaves a partial
database at the target path (and an existing one survives a failed `--force` rebuild).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import sqlite3
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import msgspec
import numpy as np

from trecs import __version__
from trecs.db import FORMAT_VERSION, SPLIT_NAMES, schema
from trecs.errors import UserError
from trecs.features import FEATURES, read_features
from trecs.inputs import check_output
from trecs.mpd import SliceRef, SliceTables, find_slices, load_slice


@dataclass
class BuildReport:
    path: str
    slices: int = 0
    playlists: int = 0
    entries: int = 0
    tracks: int = 0
    albums: int = 0
    artists: int = 0
    tracks_with_audio_features: int = 0
    splits: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.8,0.1,0.1' -> fractions for train, valid and test, which must sum to 1."""
    try:
        parts = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"--split {text!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(parts) != 3 or min(parts) < 0 or abs(sum(parts) - 1) > 1e-6:
        raise UserError(f"--split {text!r}: expected three non-negative fractions summing to 1")
    return parts


def assign_splits(pids: np.ndarray, fractions: Sequence[float], seed: int) -> np.ndarray:
    """Split index (0 train, 1 valid, 2 test) of each playlist id.

    Each playlist's split is a seeded hash of its pid alone, so it is the same whatever
    the input order and whichever other slices are in the database: a playlist held out
    in a small development database stays held out in the full one.
    """
    with np.errstate(over="ignore"):
        key = _splitmix64(np.uint64(seed % 2**64))
        u = _splitmix64(pids.astype(np.uint64) ^ key)
    uniform = (u >> np.uint64(11)).astype(np.float64) / float(2**53)
    edges = np.cumsum(fractions)[:-1]
    return np.searchsorted(edges, uniform, side="right")


def _splitmix64(z: np.ndarray | np.uint64) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def build_database(
    out: Path,
    inputs: Sequence[Path],
    *,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 42,
    features: Path | None = None,
    force: bool = False,
    lenient: bool = False,
    verify_md5: bool = False,
    workers: int | None = None,
    on_slice: Callable[[SliceTables, int], None] | None = None,
) -> BuildReport:
    """Build `out` from MPD zips, folders or slice files; see `trecs build-db --help`.

    `on_slice(tables, slices_total)` is called after each slice is written (progress).
    """
    start = time.perf_counter()
    check_output(out, [*inputs, *([features] if features else [])], force)
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder")
    refs = find_slices(list(inputs), verify=verify_md5)
    feature_table = read_features(features) if features is not None else None

    # Named before it exists, so that an interrupt at any point finds it in `finally`.
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex}.tmp"
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            report = _build(conn, refs, split, seed, feature_table, lenient, workers, on_slice)
        finally:
            conn.close()
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    report.path = str(out)
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def _build(
    conn: sqlite3.Connection,
    refs: list[SliceRef],
    split: Sequence[float],
    seed: int,
    feature_table: dict[str, tuple] | None,
    lenient: bool,
    workers: int | None,
    on_slice: Callable[[SliceTables, int], None] | None,
) -> BuildReport:
    # The file is temporary until renamed, so durability is worthless here: no journal,
    # no fsync, and a large page cache.
    for pragma in (
        "journal_mode = OFF",
        "synchronous = OFF",
        "locking_mode = EXCLUSIVE",
        "temp_store = MEMORY",
        "cache_size = -262144",
        "page_size = 8192",
    ):
        conn.execute(f"PRAGMA {pragma}")
    tables_sql, indices_sql = schema()
    conn.executescript(tables_sql)
    writer = _Writer(conn, lenient)
    conn.execute("BEGIN")
    for tables in _load_all(refs, lenient, workers):
        writer.add(tables)
        if on_slice is not None:
            on_slice(tables, len(refs))
    if not writer.pids:
        raise UserError("no valid playlists in the input")
    report = BuildReport(path="", slices=len(refs))
    report.splits = _write_splits(conn, np.asarray(writer.pids, np.int64), split, seed)
    conn.executescript(indices_sql)
    conn.execute("BEGIN")
    if feature_table is not None:
        report.tracks_with_audio_features = _write_features(conn, feature_table)
    report.playlists = len(writer.pids)
    report.entries = writer.entries
    report.tracks = len(writer.track_ids)
    report.albums = len(writer.album_ids)
    report.artists = len(writer.artist_ids)
    report.skipped = dict(writer.skipped)
    meta = {
        "format_version": FORMAT_VERSION,
        "trecs_version": __version__,
        "split_seed": str(seed),
        "split_fractions": json.dumps(list(split)),
        "slices": str(len(refs)),
        "skipped": json.dumps(report.skipped),
        "features": str(feature_table is not None).lower(),
    }
    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
    conn.execute("COMMIT")
    conn.execute("PRAGMA journal_mode = DELETE")
    return report


class _Writer:
    """Assigns global ids to tracks, albums and artists and inserts slice rows."""

    def __init__(self, conn: sqlite3.Connection, lenient: bool) -> None:
        self.conn = conn
        self.lenient = lenient
        self.track_ids: dict[str, int] = {}
        self.album_ids: dict[str, int] = {}
        self.artist_ids: dict[str, int] = {}
        # Per loading process: its track numbers -> global track ids.
        self.numbering: dict[int, np.ndarray] = {}
        self.pids: list[int] = []
        self.seen: set[int] = set()
        self.entries = 0
        self.skipped: Counter[str] = Counter()

    def add(self, tables: SliceTables) -> None:
        for _pid, reason in tables.skipped:
            self.skipped[_reason_kind(reason)] += 1
        track_ids = self._numbering(tables)[tables.entries].tolist()
        keep = self._keep(tables)
        rows, memberships = [], []
        start = 0
        for row, end, kept in zip(
            tables.playlists, np.cumsum(tables.lengths).tolist(), keep, strict=True
        ):
            if kept:
                rows.append(row)
                memberships.append((row[0], _encode(track_ids[start:end]).decode()))
                self.entries += end - start
            start = end
        self.conn.executemany("INSERT INTO playlists VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        # sqlite's json_each turns each playlist's track ids into rows and numbers their
        # positions: no Python object per membership row. The JSON goes as text: sqlite
        # 3.45 and later would read a blob as its binary JSONB.
        self.conn.executemany(
            "INSERT INTO playlist_track_memberships SELECT ?, key, value FROM json_each(?)",
            memberships,
        )
        self.pids.extend(row[0] for row in rows)

    def _numbering(self, tables: SliceTables) -> np.ndarray:
        """The process's numbering, extended by the slice's new tracks."""
        numbering = self.numbering.get(tables.process, np.zeros(0, np.int64))
        size = tables.first_new + len(tables.new_tracks)
        if size > len(numbering):
            grown = np.zeros(max(size, 2 * len(numbering)), np.int64)
            grown[: len(numbering)] = numbering
            numbering = self.numbering[tables.process] = grown
        numbering[tables.first_new : size] = self._track_ids(tables.new_tracks)
        return numbering

    def _keep(self, tables: SliceTables) -> list[bool]:
        """Which playlists of the slice are new; a repeated pid is an error unless lenient."""
        pids = [row[0] for row in tables.playlists]
        if self.seen.isdisjoint(pids) and len(set(pids)) == len(pids):
            self.seen.update(pids)
            return [True] * len(pids)
        keep = []
        for pid in pids:
            new = pid not in self.seen
            if not new:
                if not self.lenient:
                    raise UserError(f"{tables.name}: playlist {pid}: pid appears more than once")
                self.skipped["duplicate pid"] += 1
            keep.append(new)
            self.seen.add(pid)
        return keep

    def _track_ids(self, tracks: list[tuple]) -> list[int]:
        """Global ids of tracks, inserting those never seen (from any process) before."""
        ids = []
        track_rows: list[tuple] = []
        album_rows: list[tuple] = []
        artist_rows: list[tuple] = []
        track_ids, album_ids, artist_ids = self.track_ids, self.album_ids, self.artist_ids
        for uri, name, album_uri, album_name, artist_uri, artist_name, duration in tracks:
            tid = track_ids.get(uri)
            if tid is None:
                tid = track_ids[uri] = len(track_ids) + 1
                album = album_ids.get(album_uri)
                if album is None:
                    album = album_ids[album_uri] = len(album_ids) + 1
                    album_rows.append((album, album_uri, album_name))
                artist = artist_ids.get(artist_uri)
                if artist is None:
                    artist = artist_ids[artist_uri] = len(artist_ids) + 1
                    artist_rows.append((artist, artist_uri, artist_name))
                track_rows.append((tid, uri, name, album, artist, duration))
            ids.append(tid)
        self.conn.executemany("INSERT INTO albums VALUES (?, ?, ?)", album_rows)
        self.conn.executemany("INSERT INTO artists VALUES (?, ?, ?)", artist_rows)
        self.conn.executemany(
            "INSERT INTO tracks (id, uri, name, album_id, artist_id, duration_ms) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            track_rows,
        )
        return ids


_encode = msgspec.json.Encoder().encode


def _reason_kind(reason: str) -> str:
    """Group skip reasons for the report: numbers and quoted values become N and '...'."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'...'", reason))


def _write_splits(
    conn: sqlite3.Connection, pids: np.ndarray, fractions: Sequence[float], seed: int
) -> dict[str, int]:
    conn.executemany(
        "INSERT INTO splits VALUES (?, ?, ?)",
        [
            (i, name, fraction)
            for i, (name, fraction) in enumerate(zip(SPLIT_NAMES, fractions, strict=True))
        ],
    )
    order = np.sort(pids)
    splits = assign_splits(order, fractions, seed)
    conn.executemany(
        "INSERT INTO split_memberships VALUES (?, ?)",
        zip(order.tolist(), splits.tolist(), strict=True),
    )
    counts = np.bincount(splits, minlength=len(SPLIT_NAMES))
    return dict(zip(SPLIT_NAMES, counts.tolist(), strict=True))


def _write_features(conn: sqlite3.Connection, table: dict[str, tuple]) -> int:
    """Fill the tracks' feature columns from the catalog, joining on the track URI."""
    columns = ", ".join(FEATURES)
    conn.execute(f"CREATE TEMP TABLE catalog (uri TEXT PRIMARY KEY, {columns})")
    marks = ", ".join("?" * (len(FEATURES) + 1))
    conn.executemany(
        f"INSERT INTO catalog VALUES ({marks})", ((uri, *values) for uri, values in table.items())
    )
    conn.execute(
        f"UPDATE tracks SET ({columns}) = ({', '.join('c.' + name for name in FEATURES)}) "
        "FROM temp.catalog AS c WHERE tracks.uri = c.uri"
    )
    matched = conn.execute("SELECT changes()").fetchone()[0]
    conn.execute("DROP TABLE temp.catalog")
    return matched


def _load_all(refs: list[SliceRef], lenient: bool, workers: int | None) -> Iterator[SliceTables]:
    """Slices in order, loaded by a process pool when there is more than one.

    While the pool starts up and loads the next slices, this process loads the first
    one itself rather than wait idle for it.
    """
    build = uuid.uuid4().hex
    workers = min(workers or os.cpu_count() or 1, len(refs) - 1)
    if workers < 1:
        for ref in refs:
            yield load_slice(ref, build, lenient)
        return
    # fork where available and safe: workers run only msgspec and numpy, and forking
    # does not re-import the caller's __main__ (spawn would, breaking unguarded scripts).
    # A process running JAX has threads that fork must not copy; spawn then.
    safe = "fork" in multiprocessing.get_all_start_methods() and "jax" not in sys.modules
    method = "fork" if safe else "spawn"
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_sigint)
    try:
        remaining = iter(refs[1:])
        queue = deque(
            pool.submit(load_slice, ref, build, lenient) for ref in islice(remaining, 2 * workers)
        )
        yield load_slice(refs[0], build, lenient)
        while queue:
            tables = queue.popleft().result()
            following = next(remaining, None)
            if following is not None:
                queue.append(pool.submit(load_slice, following, build, lenient))
            yield tables
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """Ctrl-C is the parent's to handle; workers just stop when it shuts the pool down."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
