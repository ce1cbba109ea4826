"""Audio features from a catalog CSV (TidyTuesday `spotify_songs.csv` or Kaggle layouts).

Spotify's audio-features endpoint is gone, so features come from scraped catalogs. The CSV
is untrusted: every value is parsed and range-checked, and the first bad cell stops the
read with its line number.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from trecs.errors import UserError
from trecs.inputs import read_text

# Column name -> allowed range, in the order of the tracks table.
FEATURES: dict[str, tuple[float, float]] = {
    "acousticness": (0.0, 1.0),
    "danceability": (0.0, 1.0),
    "energy": (0.0, 1.0),
    "instrumentalness": (0.0, 1.0),
    "liveness": (0.0, 1.0),
    "loudness": (-100.0, 10.0),
    "speechiness": (0.0, 1.0),
    "valence": (0.0, 1.0),
    "tempo": (0.0, 400.0),
    "key": (-1, 11),
    "mode": (0, 1),
    "time_signature": (0, 12),
}
MAX_FEATURES_BYTES = 1 << 30  # the largest public catalog (Kaggle, 1.2M tracks) is ~350 MB
INTEGER_FEATURES = {"key", "mode", "time_signature"}
ID_COLUMNS = ("track_id", "id", "track_uri", "uri")
_TRACK_ID = re.compile(r"(?:spotify:track:|https?://open\.spotify\.com/track/)?([0-9A-Za-z]{22})")


def track_id(value: str) -> str | None:
    """The 22-character Spotify id in an id, URI or open.spotify.com URL."""
    match = _TRACK_ID.fullmatch(value.strip().split("?", 1)[0])
    return match.group(1) if match else None


def read_features(path: Path) -> dict[str, tuple[float | int | None, ...]]:
    """{track uri: feature values in `FEATURES` order}; the first row of a track wins."""
    text = read_text(path, MAX_FEATURES_BYTES, "a features CSV").removeprefix("\ufeff")
    try:
        return _read(csv.DictReader(io.StringIO(text, newline="")), path)
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV ({exc})") from None


def _read(reader: csv.DictReader, path: Path) -> dict[str, tuple]:
    columns = reader.fieldnames or []
    id_column = next((c for c in ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise UserError(f"{path}: no track id column (one of {', '.join(ID_COLUMNS)})")
    present = [name for name in FEATURES if name in columns]
    if not present:
        raise UserError(
            f"{path}: no audio-feature columns (expected some of {', '.join(FEATURES)})"
        )
    table: dict[str, tuple] = {}
    for row in reader:
        line = reader.line_num
        tid = track_id(row[id_column] or "")
        if tid is None:
            raise UserError(
                f"{path}: line {line}: {id_column} {row[id_column]!r} is not a Spotify track id"
            )
        values = tuple(
            _value(row, name, path, line) if name in present else None for name in FEATURES
        )
        table.setdefault(f"spotify:track:{tid}", values)
    return table


def _value(row: dict, name: str, path: Path, line: int) -> float | int | None:
    text = (row.get(name) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{path}: line {line}: {name} {text[:40]!r} is not a number") from None
    low, high = FEATURES[name]
    if not (math.isfinite(value) and low <= value <= high):
        raise UserError(f"{path}: line {line}: {name} {value} is outside [{low}, {high}]")
    if name in INTEGER_FEATURES:
        if value != int(value):
            raise UserError(f"{path}: line {line}: {name} {value} is not an integer")
        return int(value)
    return value
