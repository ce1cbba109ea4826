"""Catalog import: a CSV export of tracks with audio features (TidyTuesday's
spotify_songs.csv, the common Kaggle layouts) validated row by row into a catalog
database, written to a temporary file and renamed, so a failed import never leaves a half
catalog behind. Rows that cannot be used are counted by reason, not fatal."""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import math
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from pressedplay.atomic import temporary_beside
from pressedplay.errors import UserError
from pressedplay.features import ACCEPTED, NAMES
from pressedplay.inputs import MAX_CATALOG_CSV, TRACK_ID, BoundedFile, check_regular
from pressedplay.paths import DEFAULT_CATALOG, catalog_path

Progress = Callable[[int], None]  # advance by n (bytes here)
Stage = Callable[[str, int | None], None]  # a new stage starts: description, total bytes if known

# Header names each field goes by, in order of preference: TidyTuesday first, then the Kaggle
# layouts ("spotify tracks dataset": track_id, track_name, artists, album_name, track_genre;
# "600k tracks" and "1.2M songs": id, name, artists, album; "SpotifyFeatures": artist_name, genre).
_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("track_id", "id", "track_uri", "uri"),
    "name": ("track_name", "name"),
    "artist": ("track_artist", "artists", "artist_name", "artist"),
    "album": ("track_album_name", "album_name", "album"),
    "genre": ("playlist_genre", "track_genre", "genre"),
    "subgenre": ("playlist_subgenre", "subgenre"),
    "popularity": ("track_popularity", "popularity"),
    "tempo": ("tempo",),
    "key": ("key",),
    "mode": ("mode",),
    "duration_ms": ("duration_ms",),
    **{name: (name,) for name in NAMES},
}
_REQUIRED = ("id", "name", "artist", *NAMES)
_TRACK_COLUMNS = (
    "id",
    "name",
    "artist",
    "album",
    "popularity",
    "tempo",
    "key",
    "mode",
    "duration_ms",
    *NAMES,
)
_INSERT_TRACK = (
    f"INSERT INTO tracks ({', '.join(_TRACK_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_TRACK_COLUMNS))}) ON CONFLICT(id) DO NOTHING"
)
_INSERT_GENRE = "INSERT OR IGNORE INTO track_genres (track_id, genre, subgenre) VALUES (?, ?, ?)"
_KEYS = {
    **{k: i for i, k in enumerate("C C# D D# E F F# G G# A A# B".split())},
    **{k: i for i, k in zip((1, 3, 6, 8, 10), "Db Eb Gb Ab Bb".split(), strict=True)},
}
_MODES = {"major": 1, "minor": 0}
_BATCH = 5000  # rows per executemany when importing


class _Skip(Exception):
    """A row that cannot be imported; its message is the counted reason."""


def _text(value: str) -> str | None:
    """Strip a text cell; '' and R's NA (TidyTuesday's missing value) are missing."""
    value = value.strip()
    return None if value in ("", "NA") else value


def _track_id(value: str) -> str:
    """A bare track id from an id, a spotify:track: URI or an open.spotify.com link."""
    value = value.strip()
    if value.startswith("spotify:track:"):
        value = value.removeprefix("spotify:track:")
    elif "open.spotify.com/track/" in value:
        value = value.split("/track/", 1)[1].split("?", 1)[0]
    if not TRACK_ID.fullmatch(value):
        raise _Skip("bad track id")
    return value


def _artist(value: str) -> str:
    """One artist string from "A", "['A', 'B']" (Kaggle's Python lists) or "A;B"."""
    if value.startswith("[") and value.endswith("]"):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = None
        if isinstance(parsed, list):
            value = ", ".join(str(a).strip() for a in parsed if str(a).strip())
    elif ";" in value:
        value = ", ".join(a.strip() for a in value.split(";") if a.strip())
    if not value:
        raise _Skip("missing artist")
    return value


def _feature(value: str, name: str) -> float:
    if not value.strip():
        raise _Skip(f"{name} missing")
    try:
        number = float(value)
    except ValueError:
        raise _Skip(f"{name} not a number") from None
    if not math.isfinite(number):
        raise _Skip(f"{name} not a number")
    low, high = ACCEPTED[name]
    if not low <= number <= high:
        raise _Skip(f"{name} out of range")
    return number


def _number(value: str | None) -> float | None:
    """An optional number: missing or unreadable becomes NULL instead of losing the track."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _integer(value: str | None, low: int, high: int) -> int | None:
    number = _number(value)
    if number is None or not number.is_integer() or not low <= number <= high:
        return None
    return int(number)


def _key(value: str | None) -> int | None:
    """Pitch class 0-11 (-1: no key), also from note names as in Kaggle's SpotifyFeatures."""
    if value is not None and value.strip() in _KEYS:
        return _KEYS[value.strip()]
    return _integer(value, -1, 11)


def _mode(value: str | None) -> int | None:
    if value is not None and value.strip().lower() in _MODES:
        return _MODES[value.strip().lower()]
    return _integer(value, 0, 1)


def _field_names(field: str) -> str:
    """'name (track_name or name)': a field and the header names it is read from."""
    aliases = _ALIASES[field]
    if aliases == (field,):
        return field
    return f"{field} ({', '.join(aliases[:-1])} or {aliases[-1]})"


def _columns(header: list[str], csv_path: Path) -> dict[str, int]:
    """Map each known field to its column; an unknown layout is an error naming what is missing."""
    index = {h.strip().lower(): i for i, h in reversed(list(enumerate(header)))}
    columns = {}
    for field, aliases in _ALIASES.items():
        found = next((index[a] for a in aliases if a in index), None)
        if found is not None:
            columns[field] = found
    missing = [f for f in _REQUIRED if f not in columns]
    if missing:
        wanted = ", ".join(_field_names(f) for f in missing)
        shown = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        raise UserError(
            f"{csv_path} is not a track CSV this can read: no column for {wanted} "
            f"(its header: {shown})"
        )
    return columns


def _parse(row: list[str], columns: dict[str, int]) -> tuple[tuple, str | None, str]:
    """One CSV row as a tracks row, its genre and subgenre; raises _Skip with the reason."""

    def cell(field: str) -> str | None:
        i = columns.get(field)
        return None if i is None else _text(row[i])

    track_id = _track_id(row[columns["id"]])
    name = cell("name")
    if name is None:
        raise _Skip("missing name")
    artist = cell("artist")
    if artist is None:
        raise _Skip("missing artist")
    artist = _artist(artist)
    features = tuple(_feature(row[columns[n]], n) for n in NAMES)
    duration = _number(cell("duration_ms"))
    track = (
        track_id,
        name,
        artist,
        cell("album"),
        _integer(cell("popularity"), 0, 100),
        _number(cell("tempo")),
        _key(cell("key")),
        _mode(cell("mode")),
        int(duration) if duration is not None and duration > 0 else None,
        *features,
    )
    return track, cell("genre"), cell("subgenre") or ""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with io.BufferedReader(BoundedFile(path, MAX_CATALOG_CSV)) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def refuse_existing(target: Path, force: bool) -> None:
    if target.exists() and not force:
        raise UserError(f"catalog {target} already exists; use --force to replace it")


def _complete_rows(reader: Iterator[list[str]], width: int, csv_path: Path) -> Iterator[list[str]]:
    """The CSV's non-empty rows. A file cut mid-row, or an unclosed quote that swallows
    the rows after it, is an error: it would otherwise import fewer rows than it holds."""
    line = reader.line_num
    last: list[str] = []
    for row in reader:
        first, line = line + 1, reader.line_num
        if not row:
            continue
        if len(row) != width and line > first:
            raise UserError(
                f"{csv_path} line {first}: one row of {len(row)} fields (the header has "
                f"{width}) runs over lines {first}-{line}: an unclosed quote? Nothing imported"
            )
        last = row
        yield row
    if 0 < len(last) < width:
        raise UserError(
            f"{csv_path} ends in the middle of a row (line {line}: {len(last)} of {width} "
            "fields): the file looks cut. Nothing imported"
        )


def _load(
    con: sqlite3.Connection, csv_path: Path, progress: Progress | None, stage: Stage | None
) -> dict:
    """Stream the CSV into the empty catalog `con`; returns the counts for the report."""
    rows = 0
    skipped: Counter[str] = Counter()
    tracks: list[tuple] = []
    genres: list[tuple[str, str, str]] = []

    def flush() -> None:
        con.executemany(_INSERT_TRACK, tracks)
        con.executemany(_INSERT_GENRE, genres)
        tracks.clear()
        genres.clear()

    with BoundedFile(csv_path, MAX_CATALOG_CSV) as raw:
        if stage:
            stage("importing", os.fstat(raw.fileno()).st_size)
        text = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        reported = 0
        try:
            header = next(reader, None)
            if not header:
                raise UserError(f"{csv_path} is empty: expected a CSV header and track rows")
            columns = _columns(header, csv_path)
            for row in _complete_rows(reader, len(header), csv_path):
                rows += 1
                try:
                    if len(row) != len(header):
                        raise _Skip("wrong number of fields")
                    track, genre, subgenre = _parse(row, columns)
                except _Skip as skip:
                    skipped[str(skip)] += 1
                    continue
                tracks.append(track)
                if genre:
                    genres.append((track[0], genre, subgenre))
                if len(tracks) >= _BATCH:
                    flush()
                    if progress:
                        progress(raw.count - reported)
                        reported = raw.count
        except UnicodeDecodeError:
            raise UserError(f"{csv_path} is not UTF-8 text") from None
        except csv.Error as exc:
            raise UserError(f"{csv_path} line {reader.line_num}: {exc}") from None
        flush()
        if progress:
            progress(raw.count - reported)
    kept = rows - sum(skipped.values())
    if kept == 0:
        reasons = ", ".join(f"{r}: {n}" for r, n in skipped.most_common()) or "no rows"
        raise UserError(f"{csv_path} has no track that can be imported ({reasons})")
    return {
        "rows": rows,
        "skipped": dict(sorted(skipped.items())),
        "columns": {field: header[i] for field, i in columns.items()},
        "kept": kept,
    }


def import_file(
    csv_path: Path,
    target: Path,
    *,
    source: str,
    force: bool,
    progress: Progress | None,
    stage: Stage | None,
) -> dict:
    """Build the catalog in a temporary file next to `target`, then rename it into place."""
    started = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(target)
    try:
        con = sqlite3.connect(tmp)
        try:
            con.executescript(files("pressedplay").joinpath("catalog.sql").read_text())
            # The file is thrown away if anything fails, so durability is not needed yet.
            con.execute("PRAGMA journal_mode = OFF")
            con.execute("PRAGMA synchronous = OFF")
            counts = _load(con, csv_path, progress, stage)
            sha256 = sha256_of(csv_path)
            meta = {
                "source": source,
                "sha256": sha256,
                "imported_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": str(counts["rows"]),
                "skipped": json.dumps(counts["skipped"]),
                "columns": json.dumps(counts["columns"]),
            }
            con.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta.items())
            con.commit()
            n_tracks = con.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]
            genres = dict(
                con.execute(
                    "SELECT genre, COUNT(DISTINCT track_id) FROM track_genres "
                    "GROUP BY genre ORDER BY 2 DESC, 1"
                )
            )
        finally:
            con.close()
        refuse_existing(target, force)  # another process may have written it meanwhile
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return {
        "catalog": target.stem,
        "path": str(target),
        "source": source,
        "sha256": sha256,
        "rows": counts["rows"],
        "tracks": n_tracks,
        "duplicates_merged": counts["kept"] - n_tracks,
        "skipped": counts["skipped"],
        "genres": genres,
        "columns": counts["columns"],
        "seconds": round(time.perf_counter() - started, 3),
    }


def import_csv(
    csv_path: Path | str,
    name: str = DEFAULT_CATALOG,
    *,
    force: bool = False,
    progress: Progress | None = None,
    stage: Stage | None = None,
) -> dict:
    """Import a CSV of tracks with audio features as the catalog `name`; returns a report.

    A track listed in several rows (one per playlist) is stored once with all its genres;
    the first row's fields win. Rows that fail validation are skipped and counted by reason.
    """
    csv_path = Path(csv_path)
    check_regular(csv_path)
    target = catalog_path(name)
    refuse_existing(target, force)
    return import_file(
        csv_path,
        target,
        source=str(csv_path.resolve()),
        force=force,
        progress=progress,
        stage=stage,
    )
