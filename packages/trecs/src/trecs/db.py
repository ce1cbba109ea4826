"""Opening a trecs database and summarising what is in it."""

from __future__ import annotations

import sqlite3
from importlib.resources import files
from pathlib import Path

from trecs.errors import UserError

FORMAT_VERSION = "1"
SPLIT_NAMES = ("train", "valid", "test")


def schema() -> tuple[str, str]:
    """The schema's (tables, indices) SQL; indices are applied after the bulk insert."""
    text = files("trecs").joinpath("schema.sql").read_text()
    tables, indices = text.split("-- INDICES", 1)
    return tables, indices


def connect(path: Path) -> sqlite3.Connection:
    """A read-only connection to a trecs database, or a UserError saying why not.

    Open one per process and per thread: sqlite connections must not be shared.
    """
    if not path.is_file():
        raise UserError(f"{path}: no such database (build one with `trecs build-db`)")
    conn = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True)
    try:
        version = conn.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        raise UserError(f"{path}: not a trecs database (build one with `trecs build-db`)") from None
    if version is None or version[0] != FORMAT_VERSION:
        conn.close()
        raise UserError(f"{path}: unsupported trecs database format {version}")
    missing = _missing_columns(conn)
    if missing:
        conn.close()
        raise UserError(f"{path}: not a trecs database (no {', '.join(missing[:3])})")
    return conn


def _missing_columns(conn: sqlite3.Connection) -> list[str]:
    """`table.column`s of the schema the database lacks: a `meta` row alone (forged, or a
    build from elsewhere) must not pass for a database."""
    expected = sqlite3.connect(":memory:")
    try:
        expected.executescript(schema()[0])
        tables = [
            t for (t,) in expected.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        missing = []
        for table in tables:
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            missing += [
                f"{table}.{row[1]}"
                for row in expected.execute(f"PRAGMA table_info({table})")
                if row[1] not in have
            ]
        return missing
    finally:
        expected.close()


def database_info(path: Path) -> dict:
    """Counts of everything in the database, per split, and audio-feature coverage."""
    conn = connect(path)
    try:

        def count(sql: str) -> int:
            return conn.execute(sql).fetchone()[0]

        splits = {
            name: {"playlists": playlists, "entries": entries}
            for name, playlists, entries in conn.execute(
                """
                SELECT s.name, COUNT(p.id), COALESCE(SUM(p.num_tracks), 0)
                FROM splits s
                LEFT JOIN split_memberships m ON m.split_id = s.id
                LEFT JOIN playlists p ON p.id = m.playlist_id
                GROUP BY s.id ORDER BY s.id
                """
            )
        }
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        return {
            "path": str(path),
            "playlists": count("SELECT COUNT(*) FROM playlists"),
            "entries": count("SELECT COALESCE(SUM(num_tracks), 0) FROM playlists"),
            "tracks": count("SELECT COUNT(*) FROM tracks"),
            "artists": count("SELECT COUNT(*) FROM artists"),
            "albums": count("SELECT COUNT(*) FROM albums"),
            "tracks_with_audio_features": count(
                "SELECT COUNT(*) FROM tracks WHERE danceability IS NOT NULL"
            ),
            "splits": splits,
            "meta": meta,
        }
    finally:
        conn.close()
