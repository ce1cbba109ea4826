"""The track catalog: real tracks with audio features, kept locally in sqlite.

Spotify no longer serves audio features to new apps, so pressedplay reads them from public
CSV exports (imported by `catalog_csv`) into a catalog it can look tracks up in by id.
This module finds catalogs by name, downloads the default one (on first use too, sha256
checked, cached) and reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from urllib.parse import urlparse

from pressedplay.atomic import temporary_beside
from pressedplay.catalog_csv import Progress, Stage, import_file, refuse_existing, sha256_of
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.paths import DEFAULT_CATALOG, catalog_path, data_home

TIDYTUESDAY_URL = (
    "https://raw.githubusercontent.com/rfordatascience/tidytuesday/master/"
    "data/2020/2020-01-21/spotify_songs.csv"
)
TIDYTUESDAY_SHA256 = "9902920cfe4940f0914ebb6716801a42f7f19ac88fbd6693eaae7e2822b16845"

_LOOKUP_BATCH = 500  # ids per query, well under sqlite's parameter limit


@dataclass(frozen=True)
class CatalogTrack:
    id: str
    name: str
    artist: str
    features: tuple[float, ...]  # the eight features in features.NAMES order


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
        if sha256_of(cached) == sha256:
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
    refuse_existing(target, force)  # before downloading anything
    cached, reused = _fetch(url, sha256, progress=progress, stage=stage)
    report = import_file(cached, target, source=url, force=force, progress=progress, stage=stage)
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
