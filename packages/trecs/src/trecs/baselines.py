"""Baseline recommenders for the evaluation harness, on the same tokens as the model.

- `Popularity`: the most played training tracks, seeds excluded;
- `Cooccurrence`: item-to-item co-occurrence over the training playlists, cosine
  normalised (n_ij / sqrt(n_i n_j)), summed over a playlist's seeds, the remainder of the
  list filled by popularity;
- `PlaylistKNN`: the k training playlists most similar to the seeds (cosine over track
  sets) vote for their tracks with their similarity, popularity fill; a strong classic
  on the MPD.
All take batches of seed token lists and return (batch, n) arrays of track tokens, padded
with PAD (-1, no token) where the vocabulary holds fewer than n tracks besides the seeds.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from trecs.config import NUM_SPECIAL

PAD = -1  # no track: fills rows on vocabularies smaller than n


def playlist_matrix(playlists: Sequence[np.ndarray], num_tokens: int) -> sp.csr_matrix:
    """Binary playlists x tokens matrix of the track tokens (specials dropped)."""
    rows = np.repeat(np.arange(len(playlists)), [len(p) for p in playlists])
    cols = np.concatenate(playlists) if playlists else np.zeros(0, np.int64)
    keep = cols >= NUM_SPECIAL
    matrix = sp.csr_matrix(
        (np.ones(keep.sum(), np.float32), (rows[keep], cols[keep])),
        shape=(len(playlists), num_tokens),
    )
    matrix.data[:] = 1.0  # duplicates within a playlist count once
    return matrix


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest scores, best first."""
    n = min(n, len(scores))
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


class Popularity:
    def __init__(self, counts: np.ndarray) -> None:
        counts = counts.astype(np.float64).copy()
        counts[:NUM_SPECIAL] = -np.inf
        self.order = np.argsort(-counts, kind="stable")
        self.order = self.order[np.isfinite(counts[self.order])]

    def recommend(self, seeds: Sequence[Sequence[int]], n: int) -> np.ndarray:
        out = np.full((len(seeds), n), PAD, np.int64)
        for row, seed in enumerate(seeds):
            tracks = self._fill(np.zeros(0, np.int64), set(seed), n)
            out[row, : len(tracks)] = tracks
        return out

    def _fill(self, chosen: np.ndarray, exclude: set[int], n: int) -> np.ndarray:
        """`chosen`, then the most popular tracks not chosen or excluded, n in all."""
        taken = exclude | set(chosen.tolist())
        extra = []
        for token in self.order:
            if len(chosen) + len(extra) >= n:
                break
            if int(token) not in taken:
                extra.append(int(token))
        return np.concatenate([chosen, np.asarray(extra, np.int64)])[:n]


class _Scored(ABC):
    """Recommends the tracks a subclass's `scores(seeds)` ranks highest, then popular ones."""

    popularity: Popularity
    matrix: sp.csr_matrix  # train playlists x tokens
    # Seed lists scored together: one sparse product per chunk instead of one per
    # playlist; (chunk x tokens) float32 scores stay under 300 MB on the MPD.
    chunk = 32

    @abstractmethod
    def scores(self, seeds: Sequence[Sequence[int]]) -> np.ndarray:
        """(len(seeds), tokens) scores for every token given each seed list; 0: no evidence."""

    def _seed_matrix(self, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """Binary (len(seeds) x tokens) matrix of each list's distinct track tokens."""
        return playlist_matrix([np.asarray(s, np.int64) for s in seeds], self.matrix.shape[1])

    def recommend(self, seeds: Sequence[Sequence[int]], n: int) -> np.ndarray:
        out = np.full((len(seeds), n), PAD, np.int64)
        for start in range(0, len(seeds), self.chunk):
            batch = seeds[start : start + self.chunk]
            scores = self.scores(batch)
            for row, seed in enumerate(batch):
                row_scores = scores[row]
                row_scores[list(seed)] = 0.0
                row_scores[:NUM_SPECIAL] = 0.0
                best = _top(row_scores, n)
                best = best[row_scores[best] > 0]
                tracks = self.popularity._fill(best, set(seed), n)
                out[start + row, : len(tracks)] = tracks
        return out


class Cooccurrence(_Scored):
    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix.tocsr().astype(np.float32, copy=False)  # no second MPD-size copy
        self.transposed = self.matrix.T.tocsr()
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        with np.errstate(divide="ignore"):
            self.inverse_sqrt = np.where(counts > 0, 1.0 / np.sqrt(counts), 0.0).astype(np.float32)
        self.popularity = Popularity(counts)

    def scores(self, seeds: Sequence[Sequence[int]]) -> np.ndarray:
        """sum over seeds s of n_sj / sqrt(n_s n_j), for every token j."""
        weighted = self._seed_matrix(seeds).multiply(self.inverse_sqrt).tocsr()
        per_playlist = weighted @ self.transposed  # lists x playlists: sum of seed weights
        return (per_playlist @ self.matrix).toarray() * self.inverse_sqrt


class PlaylistKNN(_Scored):
    def __init__(self, matrix: sp.csr_matrix, neighbours: int = 100) -> None:
        self.matrix = matrix.tocsr().astype(np.float32, copy=False)
        self.transposed = self.matrix.T.tocsr()
        sizes = np.asarray(matrix.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            self.inverse_sqrt_size = np.where(sizes > 0, 1.0 / np.sqrt(sizes), 0.0).astype(
                np.float32
            )
        self.neighbours = neighbours
        self.popularity = Popularity(np.asarray(matrix.sum(axis=0)).ravel())

    def scores(self, seeds: Sequence[Sequence[int]]) -> np.ndarray:
        """Sum of cosine similarities of the nearest playlists containing each token."""
        seed_matrix = self._seed_matrix(seeds)
        sizes = np.asarray(seed_matrix.sum(axis=1)).ravel()
        overlap = (seed_matrix @ self.transposed).toarray()  # lists x playlists
        # An empty seed list overlaps nothing: its row is 0 whatever its size factor.
        inverse_sqrt_seeds = (1.0 / np.sqrt(np.maximum(sizes, 1))).astype(np.float32)
        similarity = overlap * self.inverse_sqrt_size * inverse_sqrt_seeds[:, None]
        rows, cols, values = [], [], []
        for row, sims in enumerate(similarity):
            nearest = _top(sims, self.neighbours)
            nearest = nearest[sims[nearest] > 0]
            rows.append(np.full(len(nearest), row))
            cols.append(nearest)
            values.append(sims[nearest])
        weights = sp.csr_matrix(
            (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
            shape=similarity.shape,
        )
        return (weights @ self.matrix).toarray()
