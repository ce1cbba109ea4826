"""The track vocabulary: database track ids <-> tokens, built from the train split only.

Tokens 0-2 are <eop>, <start> and <unk>; tracks follow in order of decreasing train
popularity, so token 3 is the most played track. Counts are kept for the logq sampler.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trecs.config import EOP, NUM_SPECIAL, UNK
from trecs.db import connect
from trecs.errors import UserError


@dataclass(frozen=True)
class Vocabulary:
    track_ids: np.ndarray  # database track id of token NUM_SPECIAL + i
    counts: np.ndarray  # train occurrences of every token (specials included)

    def __len__(self) -> int:
        return NUM_SPECIAL + len(self.track_ids)

    def token_of(self) -> np.ndarray:
        """Lookup array: database track id -> token (<unk> for tracks not in train)."""
        size = int(self.track_ids.max(initial=0)) + 1
        lookup = np.full(size, UNK, np.int32)
        lookup[self.track_ids] = np.arange(NUM_SPECIAL, len(self), dtype=np.int32)
        return lookup

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as handle:
            np.savez(handle, track_ids=self.track_ids, counts=self.counts)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """A saved vocabulary; a truncated, garbled or foreign file is a UserError."""
        try:
            with np.load(path) as data:
                vocab = cls(data["track_ids"], data["counts"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: not a trecs vocabulary ({exc})") from None
        if not vocab._well_formed():
            raise UserError(f"{path}: not a trecs vocabulary (wrong array types or sizes)")
        return vocab

    def _well_formed(self) -> bool:
        ids, counts = self.track_ids, self.counts
        return (
            ids.ndim == 1
            and counts.shape == (len(self),)
            and ids.dtype.kind in "iu"
            and counts.dtype.kind in "iu"
            and ids.min(initial=0) >= 0
        )


def build_vocabulary(db: Path) -> Vocabulary:
    """Every track of the train split, most played first; <eop> counted once a playlist."""
    conn = connect(db)
    try:
        rows = conn.execute(
            """
            SELECT m.track_id, COUNT(*) AS n
            FROM split_memberships s
            JOIN splits ON splits.id = s.split_id AND splits.name = 'train'
            JOIN playlist_track_memberships m ON m.playlist_id = s.playlist_id
            GROUP BY m.track_id
            ORDER BY n DESC, m.track_id
            """
        ).fetchall()
        playlists = conn.execute(
            "SELECT COUNT(*) FROM split_memberships s JOIN splits ON splits.id = s.split_id "
            "AND splits.name = 'train'"
        ).fetchone()[0]
    finally:
        conn.close()
    if not rows:
        raise UserError(f"{db}: the train split has no playlists")
    ids, counts = np.array(rows, np.int64).T
    special = np.zeros(NUM_SPECIAL, np.int64)
    special[EOP] = playlists
    return Vocabulary(ids, np.concatenate([special, counts]))
