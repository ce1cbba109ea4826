"""The cover dataset: sqlite with each image stored once, paired with its tracks' features.

Every source (Spotify playlists, a folder, synthetic covers) writes through DatasetWriter,
so all of them get the same guarantees: images validated by a full decode, bad inputs
counted instead of fatal, a resumable `OUT.partial` committed cover by cover (or
`commit_every` covers at a time), a split by cover (no cover in two splits) and an atomic
rename to OUT at the end.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import numpy as np

from pressedplay import images
from pressedplay.errors import UserError
from pressedplay.features import ACCEPTED, NAMES

SPLITS = ("train", "valid", "test")
# Cumulative split fractions: train 80%, valid 10%, test 10% of covers.
_BOUNDS = (0.8, 0.9, 1.0)


class TrackFeatures(NamedTuple):
    id: str
    name: str | None
    artist: str | None
    features: tuple[float, ...]  # the eight of features.NAMES, in that order


# Covers per commit for sources on this machine (a folder, synthetic covers): a commit
# per image costs more than its insert; a killed build redoes at most this many.
LOCAL_COMMIT_EVERY = 32


def partial_path(out: Path) -> Path:
    """Where a build of OUT is written (and resumed) before it is renamed to OUT."""
    return out.with_name(out.name + ".partial")


def split_of(sha256: str, seed: int) -> str:
    """The split of a cover, from a seeded hash of its image: stable across resumes."""
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return next(name for name, bound in zip(SPLITS, _BOUNDS, strict=True) if position < bound)


def _usable(features: Sequence[float]) -> bool:
    """Eight finite numbers within features.ACCEPTED: a catalog made before ranges were
    checked, or edited by hand, cannot slip an absurd value into a dataset."""
    return len(features) == len(NAMES) and all(
        isinstance(v, int | float) and math.isfinite(v) and ACCEPTED[n][0] <= v <= ACCEPTED[n][1]
        for n, v in zip(NAMES, features, strict=True)
    )


def _remove(path: Path) -> None:
    """A sqlite file and its write-ahead log, if any."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


class DatasetWriter:
    """Builds OUT through OUT.partial; an interrupted build resumes from the partial file.

    Use as a context manager, add covers, then call finish(). Leaving the block without
    finish() keeps the partial file for the next run of the same source. Inputs are
    committed `commit_every` at a time (a folder's images: a commit per image would cost
    more than its insert); leaving the block commits those finished, so only a killed
    process redoes any, at most that many.
    """

    def __init__(
        self, out: Path, *, source: str, force: bool = False, seed: int = 0, commit_every: int = 1
    ) -> None:
        self.out = Path(out)
        self.commit_every = commit_every
        self._uncommitted = 0
        self._writing = False
        self.partial = partial_path(self.out)
        self.seed = seed
        if self.out.is_dir():
            raise UserError(f"{self.out} is a folder; give the path of the .db file to create")
        if self.out.exists() and not force:
            raise UserError(f"{self.out} already exists; pass --force to replace it")
        self.force = force
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.resumed = self.partial.exists() and self._can_resume(source)
        self._resplit = False  # a resumed build with another seed re-splits at finish()
        self.conn = sqlite3.connect(self.partial, isolation_level=None)
        try:
            self._start(source, seed)
        except BaseException:
            # A full disk or read-only folder: no half-made partial file to trip the next run.
            self.conn.close()
            if not self.resumed:
                _remove(self.partial)
            raise

    def _start(self, source: str, seed: int) -> None:
        """The schema and meta of a new build, or the seed of a resumed one."""
        # A rollback journal without fsync: commits stay cheap and survive a killed process
        # (not a power cut, which only costs a rebuild), and each image is written once
        # (a write-ahead log writes it twice: to the log, then into the file).
        self.conn.execute("PRAGMA journal_mode=PERSIST")
        self.conn.execute("PRAGMA synchronous=OFF")
        if not self.resumed:
            schema = files("pressedplay").joinpath("dataset.sql").read_text()
            self.conn.executescript(f"BEGIN; {schema} COMMIT;")
        self.conn.execute("BEGIN")
        if self.resumed:
            (stored,) = self.conn.execute("SELECT value FROM meta WHERE key = 'seed'").fetchone()
            self._resplit = stored != str(seed)
        else:
            self.conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("source", source), ("created_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))],
            )
        self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seed', ?)", (str(seed),))
        self.conn.execute("COMMIT")

    def _can_resume(self, source: str) -> bool:
        """True for a partial build of the same source; else start over or refuse."""
        try:
            conn = sqlite3.connect(self.partial)
            try:
                row = conn.execute("SELECT value FROM meta WHERE key = 'source'").fetchone()
            finally:
                conn.close()
        except sqlite3.DatabaseError:
            row = None
        if row is not None and row[0] == source:
            return True
        if not self.force:
            what = f"a build of {row[0]}" if row else "something that is not a partial build"
            raise UserError(f"{self.partial} holds {what}; remove it or pass --force to start over")
        _remove(self.partial)
        return False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop writing; a partial file with nothing to resume is removed."""
        if self.conn is None:
            return
        if self.conn.in_transaction:
            # Inputs finished before the stop are kept (an interrupt between covers loses
            # nothing); one stopped half-way is undone, so a resume redoes it whole.
            try:
                if self._writing:
                    self.conn.execute("ROLLBACK TO input")
                self.conn.execute("COMMIT")
            except sqlite3.Error:  # a full disk: keep what the last commit kept
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
        empty = not any(
            self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
            for table in ("covers", "done", "skipped")
        )
        self.conn.close()
        self.conn = None
        if empty:
            _remove(self.partial)

    def is_done(self, key: str) -> bool:
        """Whether a source item (a playlist, a file) was already handled by this build."""
        return (
            self.conn.execute("SELECT 1 FROM done WHERE source = ?", (key,)).fetchone() is not None
        )

    def skip(self, reason: str, n: int = 1, *, key: str | None = None) -> None:
        """Count n inputs left out for `reason`; with a key, only once per build."""
        if key is not None and self.is_done(key):
            return
        self._begin()
        self._count(reason, n)
        self._done(key)
        self._commit()

    def _begin(self) -> None:
        """Start one input's writes: a savepoint inside the batch's transaction."""
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN")
        self.conn.execute("SAVEPOINT input")
        self._writing = True

    def _commit(self) -> None:
        """End one input's writes; the batch commits every `commit_every` inputs."""
        self.conn.execute("RELEASE input")
        self._writing = False
        self._uncommitted += 1
        if self._uncommitted >= self.commit_every:
            self.conn.execute("COMMIT")
            self._uncommitted = 0

    def _count(self, reason: str, n: int) -> None:
        if n > 0:
            self.conn.execute(
                "INSERT INTO skipped VALUES (?, ?)"
                " ON CONFLICT (reason) DO UPDATE SET count = count + excluded.count",
                (reason, n),
            )

    def _done(self, key: str | None) -> None:
        if key is not None:
            self.conn.execute("INSERT OR IGNORE INTO done VALUES (?)", (key,))

    def add_cover(
        self,
        image: bytes,
        origin: str,
        tracks: Sequence[TrackFeatures],
        key: str | None = None,
        *,
        size: tuple[int, int] | None = None,
        skipped: Mapping[str, int] | None = None,
        genre: str | None = None,
    ) -> bool:
        """Store a cover and pair it with its tracks; False when it was skipped and counted.

        Tracks with empty features (none known) or not eight finite numbers are counted
        and left out. `size` is for callers that already validated the bytes with
        images.size (in a worker process). The same image added twice is stored once
        with the union of its pairs. With a key, the cover is marked done in the same commit
        as the counts in `skipped` (e.g. a playlist's local files), so a resume never
        counts them twice. A cover with a `genre` label is kept even without tracks.
        """
        if key is not None and self.is_done(key):
            return False
        usable = [t for t in tracks if _usable(t.features)]
        reason = None
        if not usable and genre is None:
            reason = "cover without tracks with features"
        elif size is None:
            try:
                size = images.size(image)
            except images.ImageError as exc:
                reason = exc.reason
        self._begin()
        for skip_reason, n in sorted((skipped or {}).items()):
            self._count(skip_reason, n)
        missing = sum(1 for t in tracks if not t.features)
        self._count("track without features", missing)
        self._count("track with invalid features", len(tracks) - len(usable) - missing)
        if reason is None:
            self._store(image, origin, usable, size, genre)
        else:
            self._count(reason, 1)
        self._done(key)
        self._commit()
        return reason is None

    def _store(
        self,
        image: bytes,
        origin: str,
        tracks: list[TrackFeatures],
        size: tuple[int, int],
        genre: str | None,
    ) -> None:
        sha = hashlib.sha256(image).hexdigest()
        row = self.conn.execute("SELECT id FROM covers WHERE sha256 = ?", (sha,)).fetchone()
        if row is None:
            cover_id = self.conn.execute(
                "INSERT INTO covers (sha256, origin, width, height, image, split)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (sha, origin, size[0], size[1], image, split_of(sha, self.seed)),
            ).lastrowid
        else:
            cover_id = row[0]
        self.conn.executemany(
            f"INSERT OR IGNORE INTO tracks VALUES ({', '.join('?' * (3 + len(NAMES)))})",
            [(t.id, t.name, t.artist, *map(float, t.features)) for t in tracks],
        )
        self.conn.executemany(
            "INSERT OR IGNORE INTO pairs VALUES (?, ?)", [(cover_id, t.id) for t in tracks]
        )
        if genre is not None:
            self.conn.execute("INSERT OR IGNORE INTO cover_genres VALUES (?, ?)", (cover_id, genre))

    def finish(self) -> dict:
        """Compute feature statistics and rename OUT.partial to OUT; returns info(OUT)."""
        conn = self.conn
        if conn.in_transaction:
            conn.execute("COMMIT")
        if conn.execute("SELECT 1 FROM covers LIMIT 1").fetchone() is None:
            skipped = conn.execute("SELECT reason, count FROM skipped ORDER BY reason").fetchall()
            self.close()
            _remove(self.partial)
            why = ", ".join(f"{reason}: {n}" for reason, n in skipped) or "no input"
            raise UserError(f"no usable cover, nothing written ({why})")
        conn.execute("BEGIN")
        if self._resplit:
            covers = conn.execute("SELECT id, sha256 FROM covers").fetchall()
            conn.executemany(
                "UPDATE covers SET split = ? WHERE id = ?",
                [(split_of(sha, self.seed), cover_id) for cover_id, sha in covers],
            )
        values = (
            f"SELECT {', '.join(f'tracks.{name}' for name in NAMES)} FROM covers"
            " JOIN pairs ON pairs.cover_id = covers.id JOIN tracks ON tracks.id = pairs.track_id"
        )
        features = np.array(conn.execute(f"{values} WHERE covers.split = 'train'").fetchall())
        # A handful of covers may all hash outside train; then standardise over all pairs.
        scope = "train" if len(features) else "all"
        if not len(features):
            features = np.array(conn.execute(values).fetchall())
        conn.execute("DELETE FROM feature_stats")
        # A constant feature is left unscaled rather than divided by zero; a dataset of
        # genre labels alone has no features to standardise.
        conn.executemany(
            "INSERT INTO feature_stats VALUES (?, ?, ?)",
            [
                (name, float(mean), float(std) if std > 0 else 1.0)
                for name, mean, std in zip(NAMES, features.mean(0), features.std(0), strict=True)
            ]
            if len(features)
            else [],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("feature_stats_over", scope), ("finished_at", time.strftime("%Y-%m-%dT%H:%M:%S%z"))],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE")  # removes the journal: one self-contained file
        conn.close()
        self.conn = None
        if self.out.exists() and not self.force:
            raise UserError(f"{self.out} appeared while building; pass --force to replace it")
        os.replace(self.partial, self.out)
        return info(self.out)


def connect_readonly(db: Path) -> sqlite3.Connection:
    """A read-only connection to a finished dataset, or UserError saying what is wrong."""
    path = Path(db)
    if not path.is_file():
        raise UserError(
            f"{path}: no such dataset; build one with `pressedplay build-db` or "
            "`pressedplay synth-covers`"
        )
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        conn.close()
        raise UserError(f"{path} is not a sqlite database") from None
    if not {"covers", "pairs", "tracks", "skipped", "feature_stats"} <= tables:
        conn.close()
        raise UserError(f"{path} is not a pressedplay cover dataset")
    return conn


def cover_genres(conn: sqlite3.Connection, split: str = "all") -> list[tuple[int, str]]:
    """(cover id, genre) of the labelled covers of a split ("all": every split), in id
    order; none for datasets made before genre labels existed."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    if "cover_genres" not in tables:
        return []
    where = "" if split == "all" else " WHERE covers.split = ?"
    return conn.execute(
        "SELECT covers.id, genre FROM cover_genres JOIN covers ON covers.id = cover_id"
        f"{where} ORDER BY covers.id",
        () if split == "all" else (split,),
    ).fetchall()


def info(db: Path) -> dict:
    """Counts, skip reasons, splits and feature statistics of a dataset."""
    conn = connect_readonly(db)
    try:
        (covers,) = conn.execute("SELECT COUNT(*) FROM covers").fetchone()
        (tracks,) = conn.execute("SELECT COUNT(*) FROM tracks").fetchone()
        (pairs,) = conn.execute("SELECT COUNT(*) FROM pairs").fetchone()
        splits = {name: {"covers": 0, "pairs": 0} for name in SPLITS}
        for split, n_covers, n_pairs in conn.execute(
            "SELECT split, COUNT(DISTINCT covers.id), COUNT(pairs.track_id) FROM covers"
            " LEFT JOIN pairs ON pairs.cover_id = covers.id"
            " WHERE split IS NOT NULL GROUP BY split"
        ):
            splits[split] = {"covers": n_covers, "pairs": n_pairs}
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        return {
            "path": str(db),
            "source": meta.get("source"),
            "seed": int(meta["seed"]) if "seed" in meta else None,
            "covers": covers,
            "tracks": tracks,
            "pairs": pairs,
            "skipped": dict(conn.execute("SELECT reason, count FROM skipped ORDER BY reason")),
            "splits": splits,
            "feature_stats": {
                name: {"mean": mean, "std": std}
                for name, mean, std in conn.execute("SELECT feature, mean, std FROM feature_stats")
            },
            "genres": dict(sorted(Counter(genre for _, genre in cover_genres(conn)).items())),
        }
    finally:
        conn.close()
