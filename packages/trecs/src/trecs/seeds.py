"""Seed tracks from what a user types: Spotify URIs, open.spotify.com links, or text.

Text is matched word by word against "track name artist name" in the database; several
matches are an error listing candidates unless exactly one is named by the query
("name", "name artist", "name - artist" or "artist - name").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trecs.db import connect
from trecs.errors import UserError

_LINK = re.compile(r"(?:spotify:track:|https?://open\.spotify\.com/track/)([0-9A-Za-z]{22})")


@dataclass(frozen=True)
class Seed:
    query: str
    track_id: int | None  # database track id; None: the URI is not in the database
    label: str  # "name - artist", or the URI when unknown


def resolve(db: Path, queries: list[str]) -> list[Seed]:
    conn = connect(db)
    try:
        return [_resolve(conn, query) for query in queries]
    finally:
        conn.close()


def _resolve(conn, query: str) -> Seed:
    link = _LINK.match(query.strip())
    if link:
        uri = f"spotify:track:{link.group(1)}"
        row = conn.execute(
            "SELECT t.id, t.name, a.name FROM tracks t JOIN artists a ON a.id = t.artist_id "
            "WHERE t.uri = ?",
            (uri,),
        ).fetchone()
        return Seed(query, row[0], f"{row[1]} - {row[2]}") if row else Seed(query, None, uri)
    words = query.split()
    if not words:
        raise UserError("--track '': give a Spotify URI, a link or some words of a title")
    where = " AND ".join("(t.name || ' ' || a.name) LIKE ? ESCAPE '\\'" for _ in words)
    patterns = ["%" + re.sub(r"([%_\\])", r"\\\1", w) + "%" for w in words]
    rows = conn.execute(
        "SELECT t.id, t.name, a.name, t.uri FROM tracks t JOIN artists a ON a.id = t.artist_id "
        f"WHERE {where} ORDER BY t.id LIMIT 50",
        patterns,
    ).fetchall()
    wanted = " ".join(words).casefold()
    exact = [
        r
        for r in rows
        if wanted
        in {
            r[1].casefold(),
            f"{r[1]} {r[2]}".casefold(),
            f"{r[1]} - {r[2]}".casefold(),
            f"{r[2]} - {r[1]}".casefold(),
        }
    ]
    if len(rows) == 1 or len(exact) == 1:
        track_id, name, artist, _ = rows[0] if len(rows) == 1 else exact[0]
        return Seed(query, track_id, f"{name} - {artist}")
    if not rows:
        raise UserError(f"--track {query!r}: no track or artist matches")
    shown = "; ".join(f"{r[1]} - {r[2]} ({r[3]})" for r in rows[:5])
    more = f" and {len(rows) - 5} more" if len(rows) > 5 else ""
    raise UserError(f"--track {query!r} is ambiguous: {shown}{more}; give a URI")
