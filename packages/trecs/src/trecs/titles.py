"""What a playlist's title says about its tracks: the RecSys Challenge's title-only lever.

`normalise` maps the many spellings of one title to one key, as the challenge's best
teams did ("Chill Vibes!! 🌴", "chill   vibes" and "chilll vibes" are one title).
`TitleModel` is fitted on the train split: per normalised title, how many of the
playlists with that title contain each track. An unseen title backs off to the known
titles most like it (cosine over tf-idf of its words and character trigrams, so
"throwback" finds "throwbacks" and "summer 2016" finds "summer"); their track counts are
summed with weight similarity ** power. Scores live in the train vocabulary's token space
(`recommenders.train_vocabulary`), so the two-stage ranker can use them as a feature;
`recommend` adds a popularity prior, which ranks whatever the title cannot.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from trecs.baselines import PAD, top_per_row
from trecs.config import NUM_SPECIAL
from trecs.db import connect

_NOT_WORD = re.compile(r"[\W_]+")
_REPEATED_LETTER = re.compile(r"([^\W\d_])\1+")
_VARIATION = re.compile("[\ufe0e\ufe0f\u200d\\s]+")


def normalise(name: str) -> str:
    """Lowercase, accents, punctuation and emoji out, repeated letters and whitespace
    collapsed: the key that spellings of one title share ("" when nothing is left)."""
    text = unicodedata.normalize("NFKD", name.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NOT_WORD.sub(" ", text)
    text = _REPEATED_LETTER.sub(r"\1", text)
    return " ".join(text.split())


def title_key(name: str | None) -> str:
    """The model's key of a title: its normal form, or, for a title of symbols alone
    ("🎄", "❤️"), the symbols themselves, which still tell playlists apart."""
    if name is None:
        return ""
    return normalise(name) or _VARIATION.sub("", name)


def _features(key: str) -> list[str]:
    """Words and character trigrams (of the padded title) of a title key."""
    words = key.split()
    padded = f" {key} "
    return [f"w:{w}" for w in words] + [padded[i : i + 3] for i in range(len(padded) - 2)]


class TitleModel:
    """Track counts per normalised train title, with similar-title backoff."""

    def __init__(
        self,
        keys: Sequence[str],
        matrix: sp.csr_matrix,
        counts: np.ndarray,
        neighbours: int = 100,
        power: float = 1.0,
        prior: float = 0.3,
        tracks_per_title: int = 5000,
    ) -> None:
        """`keys[i]`: the title key of training playlist i, `matrix` its row of tokens
        (playlists x tokens, binary), `counts` the train count of every token. The
        defaults were chosen on the valid split of 2,000 real MPD playlists (categories
        1-3, see README). `tracks_per_title`: a title keeps its most counted tracks only
        (on the MPD "country" names 10k playlists; what they hold once says little)."""
        self.titles = sorted(set(keys) - {""})
        index = {key: i for i, key in enumerate(self.titles)}
        rows = np.array([index.get(key, -1) for key in keys])
        known = rows >= 0
        owner = sp.csr_matrix(
            (np.ones(known.sum(), np.float32), (rows[known], np.flatnonzero(known))),
            shape=(len(self.titles), len(keys)),
        )
        self.title_tracks = top_per_row(owner @ matrix.astype(np.float32), tracks_per_title)
        self.num_tokens = matrix.shape[1]
        self.neighbours = neighbours
        self.power = power
        self.prior = prior
        popularity = np.asarray(counts, np.float32).copy()
        popularity[:NUM_SPECIAL] = 0.0
        self.popularity = popularity / max(float(popularity.max()), 1.0)  # relative: 1 at most
        # tf-idf over title features; idf from the distinct titles.
        self.feature_index: dict[str, int] = {}
        f_rows, f_cols = [], []
        for row, key in enumerate(self.titles):
            for feature in dict.fromkeys(_features(key)):
                f_rows.append(row)
                f_cols.append(self.feature_index.setdefault(feature, len(self.feature_index)))
        presence = sp.csr_matrix(
            (np.ones(len(f_rows), np.float32), (f_rows, f_cols)),
            shape=(len(self.titles), len(self.feature_index)),
        )
        df = np.asarray(presence.sum(axis=0)).ravel()
        self.idf = np.log1p(len(self.titles) / np.maximum(df, 1)).astype(np.float32)
        self.title_vectors = _l2_rows(presence.multiply(self.idf).tocsr())

    @classmethod
    def fit(cls, db: Path, **settings) -> TitleModel:
        """The title model of a database's train split, in its train vocabulary's tokens."""
        from trecs.recommenders import train_matrix, train_vocabulary

        return cls(train_keys(db), train_matrix(db), train_vocabulary(db).counts, **settings)

    def _query_vectors(self, keys: Sequence[str]) -> sp.csr_matrix:
        rows, cols, values = [], [], []
        for row, key in enumerate(keys):
            for feature in dict.fromkeys(_features(key)) if key else ():
                col = self.feature_index.get(feature)
                if col is not None:
                    rows.append(row)
                    cols.append(col)
                    values.append(self.idf[col])
        vectors = sp.csr_matrix(
            (np.asarray(values, np.float32), (rows, cols)),
            shape=(len(keys), len(self.feature_index)),
        )
        return _l2_rows(vectors)

    def similar(self, titles: Sequence[str | None]) -> sp.csr_matrix:
        """(len(titles), known titles): weights similarity ** power of each query's
        `neighbours` most similar known titles (an exact match has similarity 1)."""
        similarity = (
            self._query_vectors([title_key(t) for t in titles]) @ self.title_vectors.T
        ).tocsr()
        similarity = top_per_row(similarity, self.neighbours)
        similarity.data = np.minimum(similarity.data, 1.0) ** self.power
        return similarity

    def scores(self, titles: Sequence[str | None]) -> sp.csr_matrix:
        """(len(titles), tokens) sparse float32: similarity-weighted playlist counts of
        the tokens under the similar known titles; no entry where the title says nothing."""
        return (self.similar(titles) @ self.title_tracks).tocsr()

    def value(self, evidence: np.ndarray, best: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """What `recommend` ranks by: a token's evidence (from `scores`) relative to its
        query's `best` evidence, plus `prior` times its relative popularity."""
        return evidence / np.maximum(best, 1e-12) + self.prior * self.popularity[tokens]

    def values(self, evidence: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
        """`value` at every entry of a `scores` matrix, and each row's best evidence."""
        best = evidence.max(axis=1).toarray().ravel()
        rows = np.repeat(np.arange(evidence.shape[0]), np.diff(evidence.indptr))
        values = evidence.copy()
        values.data = self.value(evidence.data, best[rows], evidence.indices).astype(np.float32)
        return values, best

    def recommend(
        self, seeds: Sequence[Sequence[int]], titles: Sequence[str | None], n: int
    ) -> np.ndarray:
        """(len, n) tokens, seeds never, PAD past the vocabulary: the title's score
        (relative to its best track) plus `prior` times relative popularity, so that a
        title known from a few playlists still leans on what is played most; ties go to
        the more popular track, and no title means exactly the popularity ranking."""
        out = np.full((len(titles), n), PAD, np.int64)
        for start in range(0, len(titles), 32):
            scores = self.scores(titles[start : start + 32])
            for row in range(scores.shape[0]):
                part = slice(scores.indptr[row], scores.indptr[row + 1])
                tokens, evidence = scores.indices[part], scores.data[part]
                seed = np.asarray(seeds[start + row], np.int64)
                # Only tracks with evidence and the most popular ones can make the top n.
                popular = np.arange(NUM_SPECIAL, min(NUM_SPECIAL + n + len(seed), self.num_tokens))
                pool = np.union1d(tokens[evidence > 0], popular)
                pool = pool[~np.isin(pool, seed)]
                found = np.zeros(len(pool), np.float32)
                at = np.searchsorted(pool, tokens)
                hit = (at < len(pool)) & (pool[np.minimum(at, len(pool) - 1)] == tokens)
                found[at[hit]] = evidence[hit]
                value = self.value(found, evidence.max(initial=0.0), pool)
                best = pool[np.lexsort((pool, -value))[:n]]  # tokens run from most played
                out[start + row, : len(best)] = best
        return out


def _l2_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.where(norms > 0, 1.0 / np.maximum(norms, 1e-12), 0.0).astype(np.float32)
    return sp.diags(scale) @ matrix


@lru_cache(maxsize=2)
def train_keys(db: Path) -> tuple[str, ...]:
    """The title key of every train playlist, in the rows' order of
    `recommenders.train_matrix` (the train split by playlist id); read once per database
    in a process, however many title models are fitted."""
    conn = connect(db)
    try:
        return tuple(
            title_key(name)
            for (name,) in conn.execute(
                "SELECT p.name FROM split_memberships s JOIN splits ON splits.id = "
                "s.split_id AND splits.name = 'train' JOIN playlists p ON p.id = "
                "s.playlist_id ORDER BY s.playlist_id"
            )
        )
    finally:
        conn.close()


@lru_cache(maxsize=2)
def title_model(db: Path) -> TitleModel:
    """The database's title model, fitted once per database in a process."""
    return TitleModel.fit(db)
