"""Every recommender behind one call: queries (a title, seed tracks) in, tracks out.

A `Query` is what the challenge gives for one playlist: its pid, its title when the
category shows one, and its seed tracks as database track ids in playlist order (seeds the
database does not know are dropped by whoever builds the query). A `Recommender` answers
each query with up to n distinct database track ids, best first, never a seed.

`load(model, db)` turns what a user names into a recommender: a baseline by name (fitted
on the database's train split), a transformer run directory, or a two-stage ranker
directory. Evaluation, the challenge files and generation all go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from trecs.config import NUM_SPECIAL, UNK
from trecs.errors import UserError


@dataclass(frozen=True)
class Query:
    pid: int
    title: str | None  # None: the category shows no title
    seeds: tuple[int, ...]  # database track ids, in playlist order


class Recommender(Protocol):
    name: str
    db: Path  # the database whose track ids it answers in

    def recommend(self, queries: Sequence[Query], n: int) -> list[np.ndarray]:
        """Per query, up to n distinct database track ids, best first, never a seed."""
        ...


# Token-level recommenders: seed token lists and titles -> (len, n) tokens, best first.
TokenRecommend = Callable[[Sequence[Sequence[int]], Sequence[str | None], int], np.ndarray]


class TokenRecommender:
    """A recommender over a vocabulary's tokens that speaks database track ids outside:
    seeds outside the vocabulary become <unk>, special tokens never come out."""

    def __init__(
        self, name: str, db: Path, track_ids: np.ndarray, recommend_tokens: TokenRecommend
    ) -> None:
        self.name = name
        self.db = db
        self.track_ids = track_ids  # database track id of token NUM_SPECIAL + i
        self.token_of = _token_lookup(track_ids)
        self._recommend_tokens = recommend_tokens

    def tokens(self, seeds: Sequence[int]) -> list[int]:
        size = len(self.token_of)
        return [int(self.token_of[s]) if 0 <= s < size else UNK for s in seeds]

    def recommend(self, queries: Sequence[Query], n: int) -> list[np.ndarray]:
        if not queries:
            return []
        tokens = self._recommend_tokens(
            [self.tokens(q.seeds) for q in queries], [q.title for q in queries], n
        )
        out = []
        for query, row in zip(queries, tokens, strict=True):
            row = np.asarray(row)
            ids = self.track_ids[row[row >= NUM_SPECIAL] - NUM_SPECIAL]
            seeds = np.asarray(query.seeds, np.int64)
            out.append(ids[~np.isin(ids, seeds)][:n])
        return out


def _token_lookup(track_ids: np.ndarray) -> np.ndarray:
    """Database track id -> token (<unk> for tracks outside the vocabulary)."""
    lookup = np.full(int(track_ids.max(initial=0)) + 1, UNK, np.int32)
    lookup[track_ids] = np.arange(NUM_SPECIAL, NUM_SPECIAL + len(track_ids), dtype=np.int32)
    return lookup


BASELINES = ("popularity", "cooccurrence", "playlist-knn", "title")


@lru_cache(maxsize=2)
def train_vocabulary(db: Path):
    """The database's train vocabulary, built once per database in a process."""
    from trecs.vocab import build_vocabulary

    return build_vocabulary(db)


@lru_cache(maxsize=2)
def train_matrix(db: Path):
    """Training playlists x tokens, read once per database however many baselines use it."""
    from trecs.baselines import playlist_matrix
    from trecs.data import PlaylistSource

    vocab = train_vocabulary(db)
    token_of = vocab.token_of()
    source = PlaylistSource(db, "train")
    return playlist_matrix([token_of[source[i]] for i in range(len(source))], len(vocab))


def baseline(name: str, db: Path) -> TokenRecommender:
    """A baseline by name, fitted on the database's train split."""
    from trecs.baselines import Cooccurrence, PlaylistKNN, Popularity

    vocab = train_vocabulary(db)
    if name == "popularity":
        model = Popularity(vocab.counts)
    elif name == "cooccurrence":
        model = Cooccurrence(train_matrix(db))
    elif name == "playlist-knn":
        model = PlaylistKNN(train_matrix(db))
    elif name == "title":
        from trecs.titles import title_model

        titled = title_model(db)
        return TokenRecommender(name, db, vocab.track_ids, titled.recommend)
    else:
        raise UserError(f"{name}: not a baseline ({', '.join(BASELINES)})")
    return TokenRecommender(
        name, db, vocab.track_ids, lambda seeds, titles, n: model.recommend(seeds, n)
    )


def transformer(
    run_dir: Path, db: Path | None = None, on_notice: Callable[[str], None] | None = None
) -> TokenRecommender:
    """A trained transformer run, answering in the ids of `db` (default: the run's);
    `on_notice` hears of damaged checkpoints passed over."""
    from trecs.checkpoints import load_run
    from trecs.recommend import Recommender as Scorer

    trained = load_run(run_dir, on_notice)
    scorer = Scorer(trained.model, trained.table, len(trained.vocab), trained.bias)
    return TokenRecommender(
        run_dir.name,
        Path(db or trained.config.db),
        trained.vocab.track_ids,
        lambda seeds, titles, n: scorer.recommend(seeds, n, titles=titles),
    )


def load(
    model: str, db: Path | None = None, on_notice: Callable[[str], None] | None = None
) -> Recommender:
    """A baseline by name (needs `db`), a transformer run or a two-stage ranker directory;
    `on_notice` hears of damaged checkpoints passed over."""
    if model in BASELINES:
        if db is None:
            raise UserError(f"{model}: a baseline needs --db, the database to fit it on")
        return baseline(model, db)
    path = Path(model)
    if not path.is_dir():
        raise UserError(f"{model}: neither a model directory nor one of {', '.join(BASELINES)}")
    if (path / "ranker.json").is_file():
        from trecs.ranker import load_ranker

        return load_ranker(path, db, on_notice)
    if (path / "config.json").is_file():
        return transformer(path, db, on_notice)
    raise UserError(f"{model}: not a trecs run or ranker directory (no config.json or ranker.json)")
