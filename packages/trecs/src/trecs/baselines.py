"""Baseline recommenders for the evaluation harness, on the same tokens as the model.

- `Popularity`: the most played training tracks, seeds excluded;
- `Cooccurrence`: item-to-item co-occurrence over the training playlists, cosine
  normalised (n_ij / sqrt(n_i n_j)), summed over a playlist's seeds, the remainder of the
  list filled by popularity;
- `PlaylistKNN`: the k training playlists most similar to the seeds (cosine over track
  sets) vote for their tracks with their similarity, popularity fill; a strong classic
  on the MPD.
Both take batches of seed token lists and return (batch, n) arrays of track tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from trecs.config import NUM_SPECIAL


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
        out = np.empty((len(seeds), n), np.int64)
        for row, seed in enumerate(seeds):
            out[row] = self._fill(np.zeros(0, np.int64), set(seed), n)
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

    @abstractmethod
    def scores(self, seeds: Sequence[int]) -> np.ndarray:
        """A score for every token given the seed tokens; 0 means no evidence."""

    def recommend(self, seeds: Sequence[Sequence[int]], n: int) -> np.ndarray:
        out = np.empty((len(seeds), n), np.int64)
        for row, seed in enumerate(seeds):
            scores = self.scores(seed)
            scores[list(seed)] = 0.0
            scores[:NUM_SPECIAL] = 0.0
            best = _top(scores, n)
            best = best[scores[best] > 0]
            out[row] = self.popularity._fill(best, set(seed), n)
        return out


class Cooccurrence(_Scored):
    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.matrix = matrix.tocsr()
        self.transposed = matrix.T.tocsr()
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        with np.errstate(divide="ignore"):
            self.inverse_sqrt = np.where(counts > 0, 1.0 / np.sqrt(counts), 0.0)
        self.popularity = Popularity(counts)

    def scores(self, seeds: Sequence[int]) -> np.ndarray:
        """sum over seeds s of n_sj / sqrt(n_s n_j), for every token j."""
        seeds = np.asarray([s for s in seeds if s >= NUM_SPECIAL], np.int64)
        if len(seeds) == 0:
            return np.zeros(self.matrix.shape[1])
        weights = sp.csr_matrix(
            (self.inverse_sqrt[seeds], (seeds, np.zeros(len(seeds), np.int64))),
            shape=(self.matrix.shape[1], 1),
        )
        per_playlist = self.matrix @ weights  # playlists x 1: sum of seed weights
        co = np.asarray((self.transposed @ per_playlist).todense()).ravel()
        return co * self.inverse_sqrt


class PlaylistKNN(_Scored):
    def __init__(self, matrix: sp.csr_matrix, neighbours: int = 100) -> None:
        self.matrix = matrix.tocsr()
        self.transposed = matrix.T.tocsr()
        sizes = np.asarray(matrix.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            self.inverse_sqrt_size = np.where(sizes > 0, 1.0 / np.sqrt(sizes), 0.0)
        self.neighbours = neighbours
        self.popularity = Popularity(np.asarray(matrix.sum(axis=0)).ravel())

    def scores(self, seeds: Sequence[int]) -> np.ndarray:
        """Sum of cosine similarities of the nearest playlists containing each token."""
        seeds = np.unique([s for s in seeds if s >= NUM_SPECIAL])
        if len(seeds) == 0:
            return np.zeros(self.matrix.shape[1])
        overlap = np.asarray(self.transposed[seeds].sum(axis=0)).ravel()
        similarity = overlap * self.inverse_sqrt_size / np.sqrt(len(seeds))
        nearest = _top(similarity, self.neighbours)
        nearest = nearest[similarity[nearest] > 0]
        votes = self.matrix[nearest].T @ similarity[nearest]
        return np.asarray(votes).ravel()
