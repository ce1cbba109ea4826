"""The evaluation protocol: seed categories, held-out tracks, metrics per category."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from trecs.baselines import Cooccurrence, Popularity, playlist_matrix
from trecs.build_db import build_database
from trecs.data import PlaylistSource
from trecs.errors import UserError
from trecs.evaluate import MIN_HELD_OUT, Category, artists, evaluate, make_cases, parse_categories
from trecs.vocab import build_vocabulary


@pytest.fixture(scope="module")
def db(mpd_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("evaluate") / "mpd.db"
    build_database(path, [mpd_dir], workers=1)
    return path


def test_categories_parse():
    assert parse_categories("first:1, random:25") == [Category("first", 1), Category("random", 25)]
    with pytest.raises(UserError, match="first:K or random:K"):
        parse_categories("last:5")


def test_cases_hold_out_the_rest_of_each_playlist(db):
    categories = parse_categories("first:1,first:5,random:10")
    cases = make_cases(db, "test", categories, 60, seed=1)
    assert len(cases) == 60
    assert len({c.playlist for c in cases}) == 60
    conn = sqlite3.connect(db)
    test = {
        r[0]
        for r in conn.execute(
            "SELECT playlist_id FROM split_memberships JOIN splits ON splits.id = split_id WHERE name = 'test'"
        )
    }
    for case in cases:
        assert case.playlist in test
        tracks = [
            r[0]
            for r in conn.execute(
                "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ? ORDER BY pos",
                (case.playlist,),
            )
        ]
        assert len(case.seeds) == case.category.seeds
        assert len(case.held_out) == len(tracks) - case.category.seeds >= MIN_HELD_OUT
        if case.category.kind == "first":
            assert case.seeds == tracks[: case.category.seeds]
            assert case.held_out == tracks[case.category.seeds :]
        else:
            assert sorted(case.seeds + case.held_out) == sorted(tracks)
    assert make_cases(db, "test", categories, 60, seed=1) == cases


def test_cooccurrence_beats_popularity_on_planted_structure(db):
    vocab = build_vocabulary(db)
    token_of = vocab.token_of()
    source = PlaylistSource(db, "train")
    train = [token_of[source[i]] for i in range(len(source))]
    cooccurrence = Cooccurrence(playlist_matrix(train, len(vocab)))
    popularity = Popularity(vocab.counts)
    cases = make_cases(db, "test", parse_categories("first:5,first:10"), 100, seed=0)
    scores = {}
    for name, model in (("popularity", popularity), ("cooccurrence", cooccurrence)):
        result = evaluate(cases, model.recommend, token_of, vocab.track_ids, artists(db), n=100)
        assert set(result.metrics) == {"first:5", "first:10", "all"}
        assert all(len(r) == 100 for r in result.recommendations)
        assert all(
            not set(r) & set(c.seeds) for r, c in zip(result.recommendations, cases, strict=True)
        )
        summary = result.metrics["all"]
        assert summary["r_precision"].count == 100
        assert 0 <= summary["r_precision"].mean <= 1 and 0 <= summary["ndcg"].mean <= 1
        assert 0 <= summary["clicks"].mean <= 51
        scores[name] = summary["r_precision"].mean
    assert scores["cooccurrence"] > 1.5 * scores["popularity"] > 0


def test_evaluate_command(cli, db, tmp_path):
    from trecs.config import ModelConfig, TrainConfig
    from trecs.train import train

    run = tmp_path / "run"
    tiny = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=10)
    train(run, TrainConfig(db=db, model=tiny, batch_size=8, num_steps=10, data_workers=0))
    recs = tmp_path / "recs.jsonl"
    picture = tmp_path / "plot.png"
    result = cli(
        "evaluate",
        run,
        "--db",
        db,
        "--num-playlists",
        40,
        "--seeds",
        "first:1,random:10",
        "--n",
        50,
        "--save-recommendations",
        recs,
        "--plot",
        picture,
        "--json",
    )
    assert result.code == 0, result.err
    report = result.json()
    assert report["cases"] == 40 and report["n"] == 50
    assert set(report["metrics"]) == {"run", "popularity", "cooccurrence", "playlist-knn"}
    assert list(report["metrics"]["run"]) == ["first:1", "random:10", "all"]
    assert report["metrics"]["run"]["all"]["r_precision"]["count"] == 40
    lines = [json.loads(line) for line in recs.read_text().splitlines()]
    assert len(lines) == 40
    assert all(len(line["recommendations"]) == 50 for line in lines)
    assert all(uri.startswith("spotify:track:") for line in lines for uri in line["seeds"])
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = cli("evaluate", "popularity", "--db", db, "--num-playlists", 20, "--n", 20)
    assert table.code == 0 and "R-precision" in table.out
    cli("evaluate", "nonsense", "--db", db).assert_error("neither a run directory")
    cli("evaluate", "popularity", "--db", db, "--seeds", "middle:3").assert_error(
        "first:K or random:K"
    )
    cli("evaluate", "popularity", "--db", tmp_path / "none.db").assert_error("no such database")
