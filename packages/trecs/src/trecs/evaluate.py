"""The RecSys Challenge 2018 protocol on held-out playlists of the database.

Each evaluated playlist gets one seed category, `first:K` (its first K tracks) or
`random:K` (K of its tracks at random, in playlist order); its other tracks are held out.
A playlist is eligible for a category when at least five tracks remain held out.
Recommenders see seeds as tokens and answer with tokens; metrics compare their tracks
and artists with the held-out ones (out-of-vocabulary held-out tracks stay in G: no
recommender can find them, as in the challenge).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from trecs.config import NUM_SPECIAL, UNK
from trecs.db import connect
from trecs.errors import UserError
from trecs.metrics import Summary, clicks, ndcg, r_precision, summarise

DEFAULT_CATEGORIES = "first:1,first:5,first:10,first:25,random:25,first:100,random:100"
MIN_HELD_OUT = 5


@dataclass(frozen=True)
class Category:
    kind: str  # "first" or "random"
    seeds: int

    def __str__(self) -> str:
        return f"{self.kind}:{self.seeds}"


def parse_categories(text: str) -> list[Category]:
    categories = []
    for part in text.split(","):
        match = re.fullmatch(r"(first|random):(\d+)", part.strip())
        if match is None or int(match.group(2)) < 1:
            raise UserError(f"--seeds {part!r}: expected first:K or random:K with K >= 1")
        categories.append(Category(match.group(1), int(match.group(2))))
    return categories


@dataclass
class Case:
    playlist: int
    category: Category
    seeds: list[int]  # database track ids
    held_out: list[int]


def make_cases(
    db: Path, split: str, categories: Sequence[Category], num_playlists: int, seed: int = 0
) -> list[Case]:
    """About `num_playlists` cases, split evenly over the categories, each playlist used
    once; playlists are drawn in a seeded random order."""
    conn = connect(db)
    try:
        pids = [
            row[0]
            for row in conn.execute(
                "SELECT s.playlist_id FROM split_memberships s JOIN splits "
                "ON splits.id = s.split_id WHERE splits.name = ? ORDER BY s.playlist_id",
                (split,),
            )
        ]
        if not pids:
            raise UserError(f"{db}: the {split!r} split has no playlists")
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(pids))
        per_category = max(1, num_playlists // len(categories))
        wanted = {category: per_category for category in categories}
        cases: list[Case] = []
        for index in order:
            if not any(wanted.values()):
                break
            tracks = [
                row[0]
                for row in conn.execute(
                    "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ? "
                    "ORDER BY pos",
                    (pids[index],),
                )
            ]
            category = next(
                (c for c in categories if wanted[c] and len(tracks) >= c.seeds + MIN_HELD_OUT),
                None,
            )
            if category is None:
                continue
            wanted[category] -= 1
            if category.kind == "first":
                chosen = np.arange(category.seeds)
            else:
                chosen = np.sort(rng.choice(len(tracks), category.seeds, replace=False))
            mask = np.zeros(len(tracks), bool)
            mask[chosen] = True
            cases.append(
                Case(
                    pids[index],
                    category,
                    [t for t, m in zip(tracks, mask, strict=True) if m],
                    [t for t, m in zip(tracks, mask, strict=True) if not m],
                )
            )
        return cases
    finally:
        conn.close()


# A recommender: seed token lists -> (len, n) arrays of track tokens, best first.
Recommend = Callable[[Sequence[Sequence[int]], int], np.ndarray]


@dataclass
class Result:
    metrics: dict[str, dict[str, Summary]]  # category (and "all") -> metric -> summary
    recommendations: list[list[int]]  # database track ids per case


def evaluate(
    cases: Sequence[Case],
    recommend: Recommend,
    token_of: np.ndarray,
    track_ids: np.ndarray,
    artist_of: dict[int, int],
    n: int = 500,
) -> Result:
    """Run `recommend` on every case's seeds and score it with the challenge metrics."""

    def tokens(ids: Sequence[int]) -> list[int]:
        return [int(token_of[i]) if i < len(token_of) else UNK for i in ids]

    recommended = recommend([tokens(c.seeds) for c in cases], n)
    per: dict[str, dict[str, list[float]]] = {}
    recommendations = []
    for case, row in zip(cases, recommended, strict=True):
        ids = [int(track_ids[t - NUM_SPECIAL]) for t in row if t >= NUM_SPECIAL]
        recommendations.append(ids)
        values = {
            "r_precision": r_precision(ids, case.held_out, artist_of),
            "ndcg": ndcg(ids, case.held_out),
            "clicks": float(clicks(ids, case.held_out)),
        }
        for group in (str(case.category), "all"):
            for name, value in values.items():
                per.setdefault(group, {}).setdefault(name, []).append(value)
    # Categories by seed count (first before random at equal counts), then overall.
    by_seeds = sorted((g for g in per if g != "all"), key=lambda g: (int(g.split(":")[1]), g))
    order = [*by_seeds, "all"]
    metrics = {
        group: {name: summarise(values) for name, values in per[group].items()} for group in order
    }
    return Result(metrics, recommendations)


def artists(db: Path) -> dict[int, int]:
    """Track id -> artist id for the whole database."""
    conn = connect(db)
    try:
        return dict(conn.execute("SELECT id, artist_id FROM tracks"))
    finally:
        conn.close()


BASELINES = ("popularity", "cooccurrence", "playlist-knn")


@dataclass
class Contender:
    """A recommender under evaluation: its name, and the vocabulary of its tokens."""

    name: str
    recommend: Recommend
    token_of: np.ndarray
    track_ids: np.ndarray


@lru_cache(maxsize=2)
def _train_vocabulary(db: Path):
    from trecs.vocab import build_vocabulary

    return build_vocabulary(db)


@lru_cache(maxsize=2)
def _train_matrix(db: Path):
    """Training playlists x tokens, read once per database however many baselines use it."""
    from trecs.baselines import playlist_matrix
    from trecs.data import PlaylistSource

    vocab = _train_vocabulary(db)
    token_of = vocab.token_of()
    source = PlaylistSource(db, "train")
    return playlist_matrix([token_of[source[i]] for i in range(len(source))], len(vocab))


def load_recommender(model: str, db: Path) -> Contender:
    """A baseline by name (fitted on the database's train split) or a run directory."""
    from trecs.baselines import Cooccurrence, PlaylistKNN, Popularity

    if model in BASELINES:
        vocab = _train_vocabulary(db)
        if model == "popularity":
            recommend = Popularity(vocab.counts).recommend
        else:
            baseline = Cooccurrence if model == "cooccurrence" else PlaylistKNN
            recommend = baseline(_train_matrix(db)).recommend
        return Contender(model, recommend, vocab.token_of(), vocab.track_ids)
    path = Path(model)
    if not path.is_dir():
        raise UserError(f"{model}: neither a run directory nor one of {', '.join(BASELINES)}")
    from trecs.checkpoints import load_run
    from trecs.recommend import Recommender

    trained = load_run(path)
    recommender = Recommender(trained.model, trained.table, len(trained.vocab))
    return Contender(
        path.name, recommender.recommend, trained.vocab.token_of(), trained.vocab.track_ids
    )


def run(recommender: Contender, cases: Sequence[Case], artist_of: dict[int, int], n: int) -> Result:
    return evaluate(
        cases, recommender.recommend, recommender.token_of, recommender.track_ids, artist_of, n
    )


def as_json(results: dict[str, Result]) -> dict:
    return {
        name: {
            group: {
                metric: {"mean": s.mean, "ci95": s.ci95, "count": s.count}
                for metric, s in by_metric.items()
            }
            for group, by_metric in result.metrics.items()
        }
        for name, result in results.items()
    }


def save_recommendations(path: Path, cases: Sequence[Case], result: Result, db: Path) -> None:
    """One JSON line per case: pid, category, seed URIs, recommended URIs."""
    conn = connect(db)
    try:
        uri = dict(conn.execute("SELECT id, uri FROM tracks"))
    finally:
        conn.close()
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as handle:
        for case, recs in zip(cases, result.recommendations, strict=True):
            record = {
                "pid": case.playlist,
                "category": str(case.category),
                "seeds": [uri[t] for t in case.seeds],
                "recommendations": [uri[t] for t in recs],
            }
            handle.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def plot(results: dict[str, Result], path: Path) -> None:
    """R-precision and NDCG by seed category, one bar per recommender, 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g for g in next(iter(results.values())).metrics if g != "all"] + ["all"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    width = 0.8 / len(results)
    x = np.arange(len(groups))
    for axis, metric, label in zip(
        axes, ("r_precision", "ndcg"), ("R-precision", "NDCG"), strict=True
    ):
        for i, (name, result) in enumerate(results.items()):
            summaries = [result.metrics[g][metric] for g in groups]
            axis.bar(
                x + i * width - 0.4 + width / 2,
                [s.mean for s in summaries],
                width,
                yerr=[0 if np.isnan(s.ci95) else s.ci95 for s in summaries],
                capsize=2,
                label=name,
            )
        axis.set_xticks(x, groups, rotation=30)
        axis.set_ylabel(label)
        axis.set_title(f"{label} by seed category")
    axes[0].legend()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
