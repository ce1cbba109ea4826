"""Likes and dislikes of pressedplay's playlists, kept in sqlite, and the loss that learns them.

The original's feedback term, `- lambda * reward`, is constant in the model's parameters:
its gradient is zero and training ignores it. Here each verdict gives a target in feature
space, the judged playlist's mean features (else the prediction the user saw): a liked
image's prediction is pulled toward it, a disliked one's pushed at least a margin away
(`feedback_loss`). `train.train(..., feedback_db=...)` fine-tunes with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from pressedplay import images, inputs
from pressedplay.catalog import Catalog, resolve_catalog
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.inputs import TRACK_ID
from pressedplay.paths import data_home

Verdict = Literal["like", "dislike"]
VERDICTS = ("like", "dislike")
MAX_PLAYLIST_FILE = 10 * 1024 * 1024  # a generate output of 20 tracks is a few KB
_TRACK = re.compile(
    r"(?:open\.spotify\.com/(?:intl-[A-Za-z-]+/)?track/|spotify:track:)([0-9A-Za-z]{22})"
)
_PLAYLIST_FILE_SUFFIXES = (".json", ".m3u", ".m3u8", ".txt")


@dataclass(frozen=True)
class FeedbackRow:
    id: int
    created_at: str
    image: bytes
    image_name: str
    model: str
    predicted: dict[str, float]  # original units
    verdict: Verdict
    playlist_ref: str | None
    track_ids: list[str]
    playlist_features: dict[str, float] | None  # original units

    @property
    def target(self) -> dict[str, float]:
        """Where the verdict points: the playlist's features, else the prediction shown."""
        return self.playlist_features if self.playlist_features is not None else self.predicted


def default_path() -> Path:
    return data_home() / "feedback.db"


def _features(values: Mapping[str, float], what: str) -> dict[str, float]:
    """The eight features as finite floats in NAMES order, or UserError."""
    if not isinstance(values, Mapping) or set(values) != set(NAMES):
        raise UserError(f"{what} must give exactly the features {', '.join(NAMES)}")
    out = {}
    for name in NAMES:
        value = values[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise UserError(f"{what}: {name} is not a finite number: {value!r}")
        out[name] = float(value)
    return out


def _check(conn: sqlite3.Connection, path: Path) -> None:
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError:
        raise UserError(f"{path} is not a sqlite database") from None
    if version != 1 or "feedback" not in tables:
        raise UserError(f"{path} is not a pressedplay feedback database")


def _open_for_writing(path: Path) -> sqlite3.Connection:
    """A connection to the feedback db, created with its schema if missing or empty.

    The schema goes in inside one transaction, so a killed first write leaves an empty
    file that the next one fills, never half a schema; concurrent first writers are
    harmless (CREATE TABLE IF NOT EXISTS).
    """
    if path.is_dir():
        raise UserError(f"{path} is a folder; give the feedback database's file path")
    if path.exists():
        inputs.check_regular(path)  # a FIFO or a device: refused before sqlite opens it
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        empty = conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None
        if empty:
            schema = files("pressedplay").joinpath("feedback.sql").read_text()
            conn.executescript(f"BEGIN IMMEDIATE; {schema} COMMIT;")
        _check(conn, path)
    except sqlite3.DatabaseError:
        conn.close()
        raise UserError(f"{path} is not a sqlite database") from None
    except UserError:
        conn.close()
        raise
    return conn


def record(
    path: Path,
    *,
    image: bytes,
    image_name: str,
    model: str,
    predicted: dict[str, float],
    verdict: Verdict,
    playlist_ref: str | None = None,
    track_ids: Sequence[str] = (),
    playlist_features: dict[str, float] | None = None,
) -> int:
    """Store one verdict; returns its id. The image must decode (images.decode)."""
    if verdict not in VERDICTS:
        raise UserError(f"verdict must be 'like' or 'dislike', not {verdict!r}")
    try:
        images.decode(image)
    except images.ImageError as exc:
        raise UserError(f"{image_name}: {exc}") from None
    predicted = _features(predicted, "the prediction")
    if playlist_features is not None:
        playlist_features = _features(playlist_features, "the playlist's features")
    track_ids = [str(track) for track in track_ids]
    row = (
        datetime.now(UTC).isoformat(timespec="seconds"),
        image,
        image_name,
        hashlib.sha256(image).hexdigest(),
        model,
        json.dumps(predicted),
        verdict,
        playlist_ref,
        json.dumps(track_ids),
        None if playlist_features is None else json.dumps(playlist_features),
    )
    with closing(_open_for_writing(Path(path))) as conn:
        cursor = conn.execute(
            "INSERT INTO feedback (created_at, image, image_name, image_sha256, model,"
            " predicted, verdict, playlist_ref, track_ids, playlist_features)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        return int(cursor.lastrowid)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"no feedback at {path}: record some with `pressedplay feedback IMG --like` "
            "(or --dislike)"
        )
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        _check(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def last_id(path: Path) -> int | None:
    """The newest verdict's id (None: no verdict yet), without reading any image."""
    with closing(_connect_readonly(path)) as conn:
        return conn.execute("SELECT MAX(id) FROM feedback").fetchone()[0]


def load(path: Path, upto: int | None = None) -> list[FeedbackRow]:
    """The stored verdicts (those with id <= upto, if given), oldest first."""
    with closing(_connect_readonly(path)) as conn:
        rows = conn.execute(
            "SELECT id, created_at, image, image_name, model, predicted, verdict,"
            " playlist_ref, track_ids, playlist_features FROM feedback"
            " WHERE id <= ? ORDER BY id",
            (2**63 - 1 if upto is None else upto,),
        ).fetchall()
    return [
        FeedbackRow(
            id=row[0],
            created_at=row[1],
            image=row[2],
            image_name=row[3],
            model=row[4],
            predicted=json.loads(row[5]),
            verdict=row[6],
            playlist_ref=row[7],
            track_ids=json.loads(row[8]),
            playlist_features=None if row[9] is None else json.loads(row[9]),
        )
        for row in rows
    ]


def parse_playlist(value: str) -> tuple[str, list[str]]:
    """(reference, track ids) of the playlist judged.

    A file written by `pressedplay generate --format json` (its tracks[].id) or
    `--format m3u` (open.spotify.com/track/ID or spotify:track:ID lines): (the path, its
    tracks). A Spotify playlist link, URI or id: ("spotify:playlist:ID", []), since reading
    its tracks would need the user's Spotify login.
    """
    path = Path(value).expanduser()
    if path.is_file():
        return str(path), _file_tracks(path)
    from pressedplay.spotify import parse_playlist as playlist_id

    try:
        return f"spotify:playlist:{playlist_id(value)}", []
    except UserError:
        if path.suffix.lower() in _PLAYLIST_FILE_SUFFIXES or os.sep in value:
            raise UserError(f"no such playlist file: {value}") from None
        raise UserError(
            f"{value!r} is neither a playlist file (from `pressedplay generate --format json` "
            "or `--format m3u`) nor a Spotify playlist link, URI or id"
        ) from None


def _file_tracks(path: Path) -> list[str]:
    try:
        text = inputs.read_text(path, MAX_PLAYLIST_FILE)
    except inputs.InputError as exc:
        raise UserError(f"{exc}; expected a playlist from `generate`") from None
    if text.lstrip().startswith(("{", "[")):
        ids = _json_tracks(text, path)
    else:
        ids = [
            match
            for line in text.splitlines()
            if not line.lstrip().startswith("#")
            for match in _TRACK.findall(line)
        ]
    if not ids:
        raise UserError(
            f"{path}: no Spotify tracks in it; expected `pressedplay generate --format json` "
            "or `--format m3u` output"
        )
    return list(dict.fromkeys(ids))


def _json_tracks(text: str, path: Path) -> list[str]:
    data = inputs.parse_json(text, path)
    tracks = data.get("tracks") if isinstance(data, dict) else None
    if not isinstance(tracks, list) or not all(
        isinstance(t, dict) and isinstance(t.get("id"), str) and TRACK_ID.fullmatch(t["id"])
        for t in tracks
    ):
        raise UserError(
            f'{path}: expected {{"tracks": [{{"id": TRACK_ID, ...}}, ...]}} '
            "as `pressedplay generate --format json` writes"
        )
    return [t["id"] for t in tracks]


def playlist_features(track_ids: Sequence[str], catalog_path: str | Path) -> dict | None:
    """The mean features (original units) of the tracks found in the catalog; None if none."""
    with Catalog(resolve_catalog(catalog_path)) as catalog:
        found = catalog.lookup(track_ids)
    if not found:
        return None
    mean = np.mean([track.features for track in found.values()], axis=0)
    return dict(zip(NAMES, (float(x) for x in mean), strict=True))


def feedback_loss(
    pred: torch.Tensor, target: torch.Tensor, liked: torch.Tensor, margin: float
) -> torch.Tensor:
    """Mean over examples: liked, the squared distance from prediction to target; disliked,
    (margin - distance)^2 while closer than the margin, else 0. (n, 8) standardised units.

    Both parts depend on the prediction, so the loss has a gradient wherever it is not 0.
    """
    squared = (pred - target).pow(2).sum(1)
    # The epsilon keeps sqrt's gradient finite at distance 0 (where torch.where would
    # otherwise multiply an infinite gradient of the unused branch by 0 into NaN).
    pushed = F.relu(margin - torch.sqrt(squared + 1e-12)).pow(2)
    return torch.where(liked, squared, pushed).mean()
