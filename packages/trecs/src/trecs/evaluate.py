"""The RecSys Challenge 2018 protocol on held-out playlists of the database.

Cases come from `trecs.challenge.make_cases`: the challenge's ten categories (title
only, title + first track, ..., title + 100 random tracks), each playlist used once.
Every recommender goes through `trecs.recommenders.load` and sees what the challenge
shows (a title or not, seed tracks); metrics compare its tracks and artists with the
held-out ones (held-out tracks outside its vocabulary stay in G: no recommender can find
them, as in the challenge).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trecs.challenge import (
    CATEGORIES,
    Case,
    label,
    make_cases,
    metrics_json,
    recommend_batches,
    score_lists,
    shortfall,
)
from trecs.db import connect
from trecs.metrics import Summary
from trecs.recommenders import BASELINES, Recommender, load


@dataclass
class Result:
    metrics: dict[str, dict[str, Summary]]  # category ("1".."10", "all") -> metric -> summary
    recommendations: list[list[int]]  # database track ids per case


def artists(db: Path) -> dict[int, int]:
    """Track id -> artist id for the whole database."""
    conn = connect(db)
    try:
        return dict(conn.execute("SELECT id, artist_id FROM tracks"))
    finally:
        conn.close()


def evaluate(
    recommender: Recommender, cases: Sequence[Case], artist_of: dict[int, int], n: int = 500
) -> Result:
    """Run `recommender` on every case's query and score it with the challenge metrics."""
    recommended = [
        [int(t) for t in row]
        for row in recommend_batches(recommender, [c.query for c in cases], n, batch_size=1024)
    ]
    metrics = score_lists(
        [c.category for c in cases], recommended, [c.held_out for c in cases], artist_of
    )
    return Result(metrics, recommended)


def compare(
    model: str,
    db: Path,
    cases: Sequence[Case],
    n: int = 500,
    baselines: bool = False,
    on_notice: Callable[[str], None] | None = None,
) -> dict[str, Result]:
    """`model` (anything `recommenders.load` accepts) on the cases, and with `baselines`
    every baseline it is not (and a ranker's own transformer run), on the same cases:
    recommender name -> result. `on_notice` hears of damaged checkpoints passed over."""
    artist_of = artists(db)
    names = [model]
    if baselines:
        meta = Path(model) / "ranker.json"
        if meta.is_file():  # a ranker: show its transformer alone too
            names.append(json.loads(meta.read_text())["run"])
        names += [b for b in BASELINES if b != model]
    results = {}
    for name in names:
        recommender = load(name, db, on_notice)
        results[recommender.name] = evaluate(recommender, cases, artist_of, n)
    return results


@dataclass
class Comparison:
    """What `trecs evaluate` reports: the cases drawn and every recommender's result."""

    cases: list[Case]
    results: dict[str, Result]  # recommender name -> result; the evaluated model first
    per_category: int  # cases asked of each category
    shortfall: dict[int, int]  # category -> cases missing, where the split had too few

    @property
    def model(self) -> Result:
        """The evaluated model's result (the baselines, if any, follow it)."""
        return next(iter(self.results.values()))


def compare_split(
    model: str,
    db: Path,
    split: str = "test",
    num_playlists: int = 2000,
    categories: tuple[int, ...] = tuple(CATEGORIES),
    n: int = 500,
    seed: int = 0,
    baselines: bool = False,
    on_notice: Callable[[str], None] | None = None,
) -> Comparison:
    """`compare` on challenge cases drawn from `split`: `num_playlists` spread evenly over
    `categories`, each playlist used once (a split short of eligible playlists gives
    fewer, listed in `shortfall`). `trecs evaluate` is this plus its rendering."""
    per_category = max(1, num_playlists // max(1, len(categories)))
    cases = make_cases(db, split, per_category, seed, categories)
    results = compare(model, db, cases, n, baselines=baselines, on_notice=on_notice)
    return Comparison(cases, results, per_category, shortfall(cases, per_category, categories))


def as_json(results: dict[str, Result]) -> dict:
    return {name: metrics_json(result.metrics) for name, result in results.items()}


def save_recommendations(path: Path, cases: Sequence[Case], result: Result, db: Path) -> None:
    """One JSON line per case: pid, category, title, seed URIs, recommended URIs."""
    conn = connect(db)
    try:
        uri = dict(conn.execute("SELECT id, uri FROM tracks"))
    finally:
        conn.close()
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as handle:
        for case, recs in zip(cases, result.recommendations, strict=True):
            record = {
                "pid": case.query.pid,
                "category": case.category,
                "title": case.query.title,
                "seeds": [uri[t] for t in case.query.seeds],
                "recommendations": [uri[t] for t in recs],
            }
            handle.write(json.dumps(record) + "\n")
    os.replace(tmp, path)


def plot(results: dict[str, Result], path: Path) -> None:
    """R-precision and NDCG by challenge category, one bar per recommender, 95% intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(next(iter(results.values())).metrics)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5), constrained_layout=True)
    width = 0.8 / len(results)
    x = np.arange(len(groups))
    for axis, metric, name in zip(
        axes, ("r_precision", "ndcg"), ("R-precision", "NDCG"), strict=True
    ):
        for i, (recommender, result) in enumerate(results.items()):
            summaries = [result.metrics[g][metric] for g in groups]
            axis.bar(
                x + i * width - 0.4 + width / 2,
                [s.mean for s in summaries],
                width,
                yerr=[0 if np.isnan(s.ci95) else s.ci95 for s in summaries],
                capsize=2,
                label=recommender,
            )
        axis.set_xticks(x, [label(g) for g in groups], rotation=40, ha="right")
        axis.set_ylabel(name)
        axis.set_title(f"{name} by challenge category")
    axes[0].legend()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)
