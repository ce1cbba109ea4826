"""The track catalog: real tracks with audio features, kept locally in sqlite.

Spotify no longer serves audio features to new apps, so pressedplay reads them from public
CSV exports (TidyTuesday's spotify_songs.csv, the common Kaggle layouts) into a catalog it
can look tracks up in by id. Catalogs are written to a temporary file and renamed, so a
failed import never leaves a half catalog behind.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import math
import os
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

from pressedplay.atomic import temporary_beside
from pressedplay.errors import UserError
from pressedplay.features import ACCEPTED, NAMES
from pressedplay.inputs import MAX_CATALOG_CSV, BoundedFile, check_regular
from pressedplay.paths import catalog_path, data_home

DEFAULT_CATALOG = "tidytuesday"
TIDYTUESDAY_URL = (
    "https://raw.githubusercontent.com/rfordatascience/tidytuesday/master/"
    "data/2020/2020-01-21/spotify_songs.csv"
)
TIDYTUESDAY_SHA256 = "9902920cfe4940f0914ebb6716801a42f7f19ac88fbd6693eaae7e2822b16845"

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
TRACK_ID = re.compile(r"[0-9A-Za-z]{22}")  # a Spotify track id: 22 base-62 characters
_KEYS = {
    **{k: i for i, k in enumerate("C C# D D# E F F# G G# A A# B".split())},
    **{k: i for i, k in zip((1, 3, 6, 8, 10), "Db Eb Gb Ab Bb".split(), strict=True)},
}
_MODES = {"major": 1, "minor": 0}
_BATCH = 5000  # rows per executemany when importing
_LOOKUP_BATCH = 500  # ids per query, well under sqlite's parameter limit


@dataclass(frozen=True)
class CatalogTrack:
    id: str
    name: str
    artist: str
    features: tuple[float, ...]  # the eight features in features.NAMES order


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with io.BufferedReader(BoundedFile(path, MAX_CATALOG_CSV)) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _refuse_existing(target: Path, force: bool) -> None:
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


def _import(
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
            sha256 = _sha256(csv_path)
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
        _refuse_existing(target, force)  # another process may have written it meanwhile
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
    _refuse_existing(target, force)
    return _import(
        csv_path,
        target,
        source=str(csv_path.resolve()),
        force=force,
        progress=progress,
        stage=stage,
    )


def _cached(url: str) -> Path:
    """Where the file at `url` is kept once verified (named after the URL's last path part,
    made safe); a file put there by hand is used as well if its sha256 matches."""
    last = Path(urlparse(url).path).name
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", last).lstrip(".") or "download.csv"
    return data_home() / "downloads" / name


def _fetch(
    url: str,
    sha256: str,
    *,
    progress: Progress | None = None,
    stage: Stage | None = None,
    timeout: float = 30.0,
) -> tuple[Path, bool]:
    """The verified file at `url` in the download cache, and whether the cache already had it.

    Streams to a temporary file and renames it only after its sha256 matched, so the cache
    never holds a partial or wrong file.
    """
    import requests  # here, not at module level: only downloads need it (40 ms of imports)

    cached = _cached(url)
    if cached.is_file():
        if _sha256(cached) == sha256:
            return cached, True
        cached.unlink()  # stale or damaged: fetch it again
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = temporary_beside(cached, ".part")
    digest = hashlib.sha256()
    try:
        with part.open("xb") as fh:
            try:
                with requests.get(url, stream=True, timeout=timeout) as response:
                    if not response.ok:
                        raise UserError(
                            f"download of {url} failed: HTTP {response.status_code} "
                            f"{response.reason}"
                        )
                    length = response.headers.get("Content-Length", "")
                    if stage:
                        stage("downloading", int(length) if length.isdigit() else None)
                    for chunk in response.iter_content(1 << 16):
                        fh.write(chunk)
                        digest.update(chunk)
                        if progress:
                            progress(len(chunk))
            except requests.RequestException as exc:
                raise UserError(f"could not download {url}: {exc}") from None
        got = digest.hexdigest()
        if got != sha256:
            raise UserError(
                f"the file downloaded from {url} has sha256 {got}, expected {sha256}; "
                "it was removed"
            )
        os.replace(part, cached)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return cached, False


def download(
    name: str = DEFAULT_CATALOG,
    url: str = TIDYTUESDAY_URL,
    sha256: str = TIDYTUESDAY_SHA256,
    *,
    force: bool = False,
    progress: Progress | None = None,
    stage: Stage | None = None,
) -> dict:
    """Download a track CSV (TidyTuesday's by default), verify it, import it as `name`.

    The verified CSV stays in data_home()/downloads and is reused by later calls.
    """
    sha256 = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise UserError(f"sha256 {sha256!r} is not 64 hexadecimal digits")
    target = catalog_path(name)
    _refuse_existing(target, force)  # before downloading anything
    cached, reused = _fetch(url, sha256, progress=progress, stage=stage)
    report = _import(cached, target, source=url, force=force, progress=progress, stage=stage)
    report["download"] = {"url": url, "file": str(cached), "cached": reused}
    return report


def _first_use(progress: Progress | None, stage: Stage | None) -> Path:
    """The default catalog, downloaded and imported if it is missing, so that a fresh
    install works without a setup step; failing that, how to provide the CSV by hand."""
    path = catalog_path(DEFAULT_CATALOG)
    if path.is_file():
        return path
    try:
        # The module's constants, read now: tests point them at a local server.
        download(
            DEFAULT_CATALOG, TIDYTUESDAY_URL, TIDYTUESDAY_SHA256, progress=progress, stage=stage
        )
    except UserError as exc:
        if path.is_file():  # another process fetched it meanwhile
            return path
        raise UserError(
            f"no catalog named {DEFAULT_CATALOG!r} in {path.parent}, and fetching it failed "
            f"({exc}); retry later with `pressedplay catalog download`, import a track CSV "
            "with `pressedplay catalog import FILE.csv`, or put TidyTuesday's "
            f"spotify_songs.csv at {_cached(TIDYTUESDAY_URL)} for the next run"
        ) from None
    return path


def resolve_catalog(
    name_or_path: str | Path | None = None,
    *,
    progress: Progress | None = None,
    stage: Stage | None = None,
) -> Path:
    """The catalog file meant by a path to a .db file or a catalog name.

    None means the default catalog, fetched on first use as by `download` (`progress` and
    `stage` then follow it); a named catalog that is missing is an error, never fetched.
    """
    if name_or_path is None:
        return _first_use(progress, stage)
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or os.sep in text or text.endswith(".db"):
        raise UserError(f"no catalog file at {name_or_path}")
    path = catalog_path(text)
    if not path.is_file():
        hint = "`pressedplay catalog import CSV`"
        if text == DEFAULT_CATALOG:
            hint = f"`pressedplay catalog download` or {hint}"
        else:
            hint = f"{hint} --name {text}"
        raise UserError(f"no catalog named {text!r} in {path.parent}; make one with {hint}")
    return path


class Catalog:
    """Read-only access to a catalog file; open one per thread or process."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"no catalog file at {self.path}")
        self._con = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            version = self._con.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError:
            self._con.close()
            raise UserError(f"{self.path} is not a sqlite database") from None
        if version != 1 or not {"meta", "tracks", "track_genres"} <= tables:
            self._con.close()
            raise UserError(f"{self.path} is not a pressedplay catalog")

    def __len__(self) -> int:
        return self._con.execute("SELECT COUNT(*) FROM tracks").fetchone()[0]

    def lookup(self, ids: Iterable[str]) -> dict[str, CatalogTrack]:
        """The catalog's tracks among `ids`, by id; ids it lacks are simply absent."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, CatalogTrack] = {}
        for start in range(0, len(wanted), _LOOKUP_BATCH):
            chunk = wanted[start : start + _LOOKUP_BATCH]
            query = (
                f"SELECT id, name, artist, {', '.join(NAMES)} FROM tracks "
                f"WHERE id IN ({', '.join('?' * len(chunk))})"
            )
            for row in self._con.execute(query, chunk):
                found[row[0]] = CatalogTrack(row[0], row[1], row[2], tuple(row[3:]))
        return found

    def tracks_with_genres(self) -> Iterator[tuple[str, str, str, tuple, tuple[str, ...]]]:
        """Every track as (id, name, artist, features in NAMES order, distinct genres), by
        id, read row by row (a million rows fetched at once would cost gigabytes)."""
        sep = "\x1f"  # cannot occur in a genre name read from CSV text
        width = len(NAMES)
        try:
            cursor = self._con.execute(
                f"SELECT id, name, artist, {', '.join(NAMES)}, "
                f"(SELECT group_concat(genre, '{sep}') FROM "
                "(SELECT DISTINCT genre FROM track_genres WHERE track_id = t.id)) "
                "FROM tracks t ORDER BY id"
            )
            for row in cursor:
                genres = tuple(row[-1].split(sep)) if row[-1] else ()
                yield row[0], row[1], row[2], row[3 : 3 + width], genres
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{self.path} cannot be read: {exc}") from None

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def info(name_or_path: str | Path | None = None) -> dict:
    """What a catalog holds: counts, genres and subgenres with track counts, feature ranges."""
    path = resolve_catalog(name_or_path)
    with Catalog(path) as catalog:
        con = catalog._con
        meta = dict(con.execute("SELECT key, value FROM meta"))
        aggregates = ", ".join(f"MIN({n}), MAX({n}), AVG({n})" for n in NAMES)
        values = con.execute(f"SELECT {aggregates} FROM tracks").fetchone()
        ranges = {
            n: {"min": values[3 * i], "max": values[3 * i + 1], "mean": values[3 * i + 2]}
            for i, n in enumerate(NAMES)
        }
        report = {
            "path": str(path),
            "tracks": len(catalog),
            "genres": dict(
                con.execute(
                    "SELECT genre, COUNT(DISTINCT track_id) FROM track_genres "
                    "GROUP BY genre ORDER BY 2 DESC, 1"
                )
            ),
            "subgenres": dict(
                con.execute(
                    "SELECT subgenre, COUNT(DISTINCT track_id) FROM track_genres "
                    "WHERE subgenre != '' GROUP BY subgenre ORDER BY 2 DESC, 1"
                )
            ),
            "tracks_without_genre": con.execute(
                "SELECT COUNT(*) FROM tracks WHERE id NOT IN (SELECT track_id FROM track_genres)"
            ).fetchone()[0],
            "features": ranges,
            "source": meta.get("source"),
            "sha256": meta.get("sha256"),
            "imported_at": meta.get("imported_at"),
            "rows": int(meta["rows"]) if "rows" in meta else None,
            "skipped": json.loads(meta.get("skipped", "{}")),
        }
    return report


def list_catalogs() -> list[dict]:
    """The catalogs in data_home()/catalogs with their track counts (or why one is unreadable)."""
    folder = data_home() / "catalogs"
    found = []
    for path in sorted(folder.glob("*.db")) if folder.is_dir() else []:
        try:
            with Catalog(path) as catalog:
                found.append({"name": path.stem, "path": str(path), "tracks": len(catalog)})
        except UserError as exc:
            found.append({"name": path.stem, "path": str(path), "error": str(exc)})
    return found
