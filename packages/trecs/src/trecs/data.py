"""Training examples from the sqlite database, through Grain.

A `PlaylistSource` reads one playlist's tracks per index (a range scan of the clustered
membership table), a `TitledSource` its title too; `Windows` turns them into model inputs
and targets: tokens, random <unk> replacement, a random window of `context + 1` tokens,
<eop> padding, the title's hashed words. Grain's dataset API shuffles per epoch,
batches, reads ahead on threads (and worker processes) and checkpoints its position.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import zlib
from pathlib import Path

import grain
import numpy as np
import scipy.sparse as sp
from absl import flags

from trecs.config import EOP, NUM_SPECIAL, START, UNK
from trecs.db import connect
from trecs.titles import title_key

TITLE_WORDS = 8  # hashed title tokens per playlist: the whole title and its first 7 words


def title_tokens(title: str | None, buckets: int) -> np.ndarray:
    """(TITLE_WORDS,) bucket ids of a title's normal form and its words (0: padding);
    all padding for no title or a model without a title table. Hashes are crc32, the
    same in every process and Python run."""
    tokens = np.zeros(TITLE_WORDS, np.int32)
    key = title_key(title) if buckets else ""
    if key:
        features = [f"t:{key}", *(f"w:{w}" for w in key.split()[: TITLE_WORDS - 1])]
        for i, feature in enumerate(features):
            tokens[i] = zlib.crc32(feature.encode()) % (buckets - 1) + 1
    return tokens


class PlaylistSource:
    """Grain random-access source: index -> database track ids of one playlist, in order.

    Connections are opened lazily, one per process and thread, never pickled.
    """

    def __init__(self, db: Path, split: str) -> None:
        self.db = db
        self.split = split
        conn = connect(db)
        try:
            self.playlist_ids = np.array(
                [
                    row[0]
                    for row in conn.execute(
                        "SELECT s.playlist_id FROM split_memberships s JOIN splits "
                        "ON splits.id = s.split_id WHERE splits.name = ? ORDER BY s.playlist_id",
                        (split,),
                    )
                ],
                np.int64,
            )
        finally:
            conn.close()
        self._local = threading.local()

    def __len__(self) -> int:
        return len(self.playlist_ids)

    def __repr__(self) -> str:
        return f"PlaylistSource(split={self.split!r}, playlists={len(self)})"

    def __getitem__(self, index: int) -> np.ndarray:
        rows = self._connection().execute(
            "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ? ORDER BY pos",
            (int(self.playlist_ids[index]),),
        )
        return np.fromiter((row[0] for row in rows), np.int64)

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = connect(self.db)
            local.pid = os.getpid()
        return local.conn

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()


class TitledSource(PlaylistSource):
    """index -> {"tracks": database track ids in order, "title": the playlist's name}."""

    def __getitem__(self, index: int) -> dict:
        row = (
            self._connection()
            .execute("SELECT name FROM playlists WHERE id = ?", (int(self.playlist_ids[index]),))
            .fetchone()
        )
        return {"tracks": super().__getitem__(index), "title": row[0]}


def split_matrix(db: Path, split: str, token_of: np.ndarray, num_tokens: int) -> sp.csr_matrix:
    """Binary (playlists x tokens) matrix of a split's known track tokens, read in one scan
    (the MPD's 66M memberships take about a minute)."""
    conn = connect(db)
    try:
        cursor = conn.execute(
            "SELECT m.playlist_id, m.track_id FROM split_memberships s "
            "JOIN splits ON splits.id = s.split_id AND splits.name = ? "
            "JOIN playlist_track_memberships m ON m.playlist_id = s.playlist_id",
            (split,),
        )
        # Streamed into one array: a list of 66M row tuples would take gigabytes.
        pairs = np.fromiter(itertools.chain.from_iterable(cursor), np.int64).reshape(-1, 2)
    finally:
        conn.close()
    playlists, rows = np.unique(pairs[:, 0], return_inverse=True)
    tracks = pairs[:, 1]
    known = tracks < len(token_of)
    tokens = np.where(known, token_of[np.where(known, tracks, 0)], UNK)
    keep = tokens >= NUM_SPECIAL
    matrix = sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (rows[keep], tokens[keep])),
        shape=(len(playlists), num_tokens),
    )
    matrix.data[:] = 1.0  # a track twice in a playlist counts once
    return matrix


class Windows(grain.transforms.RandomMap):
    """{"tracks", "title"} -> {"inputs", "targets", "titles"}: tokens [<start>, t1..tn,
    <eop>...], a random window of context + 1 of them when the playlist is longer, shifted
    by one; the title's hashed words, hidden with probability `title_dropout` (and absent
    from windows that do not begin with <start>).

    With probability `subsample_proba` the playlist first becomes an ordered random subset
    of itself (each track kept at a rate drawn from 0.25..1), so that the model also learns
    to continue gapped seed lists. With probability `future_target_proba` a position's
    target is a uniformly drawn later track instead of the next one (never <eop> where a
    track was due), which spreads the model's mass over the whole rest of the playlist."""

    def __init__(
        self,
        token_of: np.ndarray,
        context: int,
        unk_proba: float,
        subsample_proba: float = 0.0,
        future_target_proba: float = 0.0,
        title_buckets: int = 0,
        title_dropout: float = 0.0,
    ) -> None:
        self.token_of = token_of
        self.context = context
        self.unk_proba = unk_proba
        self.subsample_proba = subsample_proba
        self.future_target_proba = future_target_proba
        self.title_buckets = title_buckets
        self.title_dropout = title_dropout

    def random_map(self, playlist: dict, rng: np.random.Generator) -> dict:
        track_ids = playlist["tracks"]
        title = playlist["title"]
        if self.title_dropout > 0 and rng.random() < self.title_dropout:
            title = None
        if len(track_ids) and self.subsample_proba > 0 and rng.random() < self.subsample_proba:
            keep = rng.random(len(track_ids)) < rng.uniform(0.25, 1.0)
            keep[rng.integers(len(track_ids))] = True  # never empty
            track_ids = track_ids[keep]
        known = track_ids < len(self.token_of)
        tokens = np.where(known, self.token_of[np.where(known, track_ids, 0)], UNK)
        if self.unk_proba > 0:
            tokens = np.where(rng.random(len(tokens)) < self.unk_proba, UNK, tokens)
        full = np.concatenate([[START], tokens, [EOP]]).astype(np.int32)
        width = self.context + 1
        start = 0
        if len(full) > width:
            start = int(rng.integers(0, len(full) - width + 1))
            sequence = full[start : start + width]
        else:
            sequence = np.pad(full, (0, width - len(full)), constant_values=EOP)
        inputs, targets = sequence[:-1], sequence[1:].copy()
        if self.future_target_proba > 0:
            # Position t (full index start + t) may take any track in full[start + t + 1 :
            # len(full) - 1], the final <eop> excluded; positions whose target is <eop> keep it.
            last = len(full) - 1  # index of the final <eop>
            position = start + np.arange(len(targets))
            first = position + 1
            swap = (rng.random(len(targets)) < self.future_target_proba) & (first < last)
            drawn = first + np.floor(rng.random(len(targets)) * np.maximum(last - first, 1))
            targets[swap] = full[drawn.astype(np.int64)[swap]]
        return {
            "inputs": inputs,
            "targets": targets,
            # The model adds the title to the <start> position: a later window has none.
            "titles": title_tokens(title if start == 0 else None, self.title_buckets),
        }


def loader(
    source: PlaylistSource,
    windows: Windows,
    batch_size: int,
    seed: int,
    workers: int = 0,
    num_epochs: int | None = None,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.IterDataset:
    """Batches of the source's playlists: each epoch visits every playlist once, in a
    new seeded order; threads read ahead, and `workers` processes too if asked.

    With `shard_count` processes, the global batch (`batch_size` rows per process) is the
    batch one process would read at that size, and process `shard_index` reads only its
    rows of it: the processes share every epoch out disjointly, and the run's data does not
    depend on how many processes read it."""
    dataset = (
        grain.MapDataset.source(source)
        .shuffle(seed=seed)
        .random_map(windows, seed=seed)
        .repeat(num_epochs)  # after the shuffle: a new order (and new windows) each epoch
        .batch(batch_size, drop_remainder=True)
    )
    # Every process gets as many batches: an epoch's last, partial global batch is dropped.
    dataset = dataset[: len(dataset) // shard_count * shard_count][shard_index::shard_count]
    dataset = dataset.to_iter_dataset()
    if workers:
        if not flags.FLAGS.is_parsed():
            # Grain's worker processes read absl flags, which nobody parses in a library.
            flags.FLAGS.mark_as_parsed()
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return dataset
