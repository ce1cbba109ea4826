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

Scores are sparse (queries x tokens) matrices holding only the tokens with evidence: on
the MPD a dense row is 2.26M floats, and a chunk of dense rows cost more than the scoring.
On the MPD a popular seed sits in up to 46k playlists, and co-occurrence walks every
track of each: `Cooccurrence(max_playlists=...)` reads a fixed random sample of that many
of a seed's playlists, its counts scaled up (an unbiased estimate); seeds in fewer
playlists, and so every track of a small database, are counted exactly.
"""

from __future__ import annotations

import itertools
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

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


def _row_tops(matrix: sp.csr_matrix, k: int) -> list[np.ndarray]:
    """Per row of a CSR matrix, the entry positions of its k largest values, best first,
    ties to the smaller column. Linear in a row's entries (a co-occurrence row on the MPD
    holds a million) and needs no sorted columns: products leave them unsorted."""
    tops = []
    for row in range(matrix.shape[0]):
        start, end = matrix.indptr[row], matrix.indptr[row + 1]
        values, columns = matrix.data[start:end], matrix.indices[start:end]
        if len(values) > k:
            kth = np.partition(values, len(values) - k)[len(values) - k]
            above = np.flatnonzero(values > kth)
            tied = np.flatnonzero(values == kth)
            tied = tied[np.argsort(columns[tied], kind="stable")[: k - len(above)]]
            pick = np.concatenate([above, tied])
        else:
            pick = np.arange(len(values))
        order = np.lexsort((columns[pick], -values[pick]))
        tops.append(start + pick[order])
    return tops


def top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Each row of a sparse matrix (no duplicate entries) cut to its k largest entries
    (ties: the smaller column)."""
    matrix = matrix.tocsr()
    counts = np.diff(matrix.indptr)
    if counts.max(initial=0) <= k:
        return matrix
    keep = np.sort(np.concatenate(_row_tops(matrix, k)))
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, k))])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def ranked_rows(matrix: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the columns and values of its k largest entries, best first (ties: the
    smaller column), as (rows, k) arrays padded with column 0 and value -inf."""
    matrix = matrix.tocsr()
    columns = np.zeros((matrix.shape[0], k), np.int64)
    values = np.full((matrix.shape[0], k), -np.inf, np.float32)
    for row, top in enumerate(_row_tops(matrix, k)):
        columns[row, : len(top)] = matrix.indices[top]
        values[row, : len(top)] = matrix.data[top]
    return columns, values


def without_seeds(matrix: sp.csr_matrix, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
    """A (queries x tokens) score matrix with only positive scores of tracks that are not
    the query's seeds: what a recommender may propose."""
    matrix = matrix.tocsr()
    keep = (matrix.data > 0) & (matrix.indices >= NUM_SPECIAL)
    seed = np.zeros(matrix.shape[1], bool)
    for row, tokens in enumerate(seeds):
        tokens = [t for t in tokens if 0 <= t < len(seed)]
        part = slice(matrix.indptr[row], matrix.indptr[row + 1])
        seed[tokens] = True
        keep[part] &= ~seed[matrix.indices[part]]
        seed[tokens] = False
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    kept = np.bincount(rows[keep], minlength=matrix.shape[0])
    indptr = np.concatenate([[0], np.cumsum(kept)])
    return sp.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


def entries(matrix: sp.csr_matrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """matrix[rows[i], columns[i]] for every i (rows ascending), 0 where it holds no
    entry: one dense scatter per row instead of sorting a million unsorted columns."""
    out = np.zeros(len(rows), np.float32)
    dense = np.zeros(matrix.shape[1], np.float32)
    starts = np.searchsorted(rows, np.arange(matrix.shape[0] + 1))
    for row in range(matrix.shape[0]):
        part = slice(matrix.indptr[row], matrix.indptr[row + 1])
        dense[matrix.indices[part]] = matrix.data[part]
        out[starts[row] : starts[row + 1]] = dense[columns[starts[row] : starts[row + 1]]]
        dense[matrix.indices[part]] = 0.0
    return out


def parallel_product(left: sp.csr_matrix, right: sp.csr_matrix) -> sp.csr_matrix:
    """left @ right with left's rows split over the machine's cores (scipy's sparse
    product releases the GIL), in blocks of about equal entries."""
    left = left.tocsr()
    parts = min(len(os.sched_getaffinity(0)), 4, left.shape[0])
    if parts < 2 or left.nnz == 0:
        return (left @ right).tocsr()
    bounds = np.searchsorted(left.indptr, np.linspace(0, left.nnz, parts + 1)[1:-1])
    bounds = np.unique(np.concatenate([[0], bounds, [left.shape[0]]]))
    blocks = [left[a:b] for a, b in itertools.pairwise(bounds)]
    with ThreadPoolExecutor(len(blocks)) as pool:
        products = list(pool.map(lambda block: (block @ right).tocsr(), blocks))
    return sp.vstack(products, format="csr")


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
    # Seed lists scored together: one sparse product per chunk instead of one per list.
    chunk = 32

    @abstractmethod
    def scores(self, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """(len(seeds), tokens) sparse float32 scores: an entry where there is evidence."""

    def _seed_matrix(self, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """Binary (len(seeds) x tokens) matrix of each list's distinct track tokens."""
        return playlist_matrix([np.asarray(s, np.int64) for s in seeds], self.matrix.shape[1])

    def recommend(self, seeds: Sequence[Sequence[int]], n: int) -> np.ndarray:
        out = np.full((len(seeds), n), PAD, np.int64)
        for start in range(0, len(seeds), self.chunk):
            batch = seeds[start : start + self.chunk]
            tokens, values = ranked_rows(without_seeds(self.scores(batch), batch), n)
            for row, seed in enumerate(batch):
                best = tokens[row][np.isfinite(values[row])]
                tracks = self.popularity._fill(best, set(seed), n)
                out[start + row, : len(tracks)] = tracks
        return out


def _sampled_playlists(transposed: sp.csr_matrix, most: int, seed: int) -> sp.csr_matrix:
    """Tracks x playlists, each track's row cut to a fixed random `most` of its
    playlists, each kept one weighing (its playlists / most): unbiased counts."""
    transposed = transposed.tocsr()
    counts = np.diff(transposed.indptr)
    heavy = np.flatnonzero(counts > most)
    if len(heavy) == 0:
        return transposed
    keep = np.ones(transposed.nnz, bool)
    weight = np.ones(transposed.nnz, np.float32)
    rng = np.random.default_rng(seed)
    for track in heavy:
        start, end = transposed.indptr[track], transposed.indptr[track + 1]
        keep[start:end] = False
        keep[start + rng.choice(end - start, most, replace=False)] = True
        weight[start:end] = (end - start) / most
    indptr = np.concatenate([[0], np.cumsum(np.minimum(counts, most))])
    return sp.csr_matrix(
        (transposed.data[keep] * weight[keep], transposed.indices[keep], indptr),
        shape=transposed.shape,
    )


class Cooccurrence(_Scored):
    def __init__(self, matrix: sp.csr_matrix, max_playlists: int | None = 500) -> None:
        """`max_playlists`: a seed in more training playlists than this is counted over a
        fixed random sample of them (see the module's docstring); None: always exactly."""
        self.matrix = matrix.tocsr().astype(np.float32, copy=False)  # no second MPD-size copy
        transposed = self.matrix.T.tocsr()
        if max_playlists is not None:
            transposed = _sampled_playlists(transposed, max_playlists, seed=0)
        self.transposed = transposed
        counts = np.asarray(matrix.sum(axis=0)).ravel()
        with np.errstate(divide="ignore"):
            self.inverse_sqrt = np.where(counts > 0, 1.0 / np.sqrt(counts), 0.0).astype(np.float32)
        self.popularity = Popularity(counts)

    def scores(self, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """sum over seeds s of n_sj / sqrt(n_s n_j), for every token j."""
        weighted = self._seed_matrix(seeds).multiply(self.inverse_sqrt).tocsr()
        per_playlist = weighted @ self.transposed  # lists x playlists: sum of seed weights
        scores = parallel_product(per_playlist, self.matrix)
        scores.data *= self.inverse_sqrt[scores.indices]
        return scores


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

    def scores(self, seeds: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """Sum of cosine similarities of the nearest playlists containing each token."""
        seed_matrix = self._seed_matrix(seeds)
        sizes = np.asarray(seed_matrix.sum(axis=1)).ravel()
        similarity = (seed_matrix @ self.transposed).tocsr()  # lists x playlists: overlap
        # An empty seed list overlaps nothing: its row is empty whatever its size factor.
        inverse_sqrt_seeds = (1.0 / np.sqrt(np.maximum(sizes, 1))).astype(np.float32)
        rows = np.repeat(np.arange(len(seeds)), np.diff(similarity.indptr))
        similarity.data *= self.inverse_sqrt_size[similarity.indices] * inverse_sqrt_seeds[rows]
        return (top_per_row(similarity, self.neighbours) @ self.matrix).tocsr()
