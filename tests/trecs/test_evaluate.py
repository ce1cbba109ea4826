"""The evaluation protocol: the challenge's categories, held-out tracks, metrics per category."""

from __future__ import annotations

import json

from trecs.challenge import make_cases
from trecs.evaluate import artists, compare, compare_split, evaluate
from trecs.metrics import r_precision, summarise
from trecs.recommenders import BASELINES, load


def test_cooccurrence_beats_popularity_on_planted_structure(db):
    cases = make_cases(db, "test", 10, seed=0, categories=(3, 5, 7))
    artist_of = artists(db)
    scores = {}
    for name in ("popularity", "cooccurrence"):
        result = evaluate(load(name, db), cases, artist_of, n=100)
        assert list(result.metrics) == ["3", "5", "7", "all"]
        assert all(len(r) == 100 for r in result.recommendations)
        assert all(
            not set(r) & set(c.query.seeds)
            for r, c in zip(result.recommendations, cases, strict=True)
        )
        summary = result.metrics["all"]
        assert summary["r_precision"].count == 30
        assert 0 <= summary["r_precision"].mean <= 1 and 0 <= summary["ndcg"].mean <= 1
        assert 0 <= summary["clicks"].mean <= 51
        expected = summarise(
            r_precision(r, c.held_out, artist_of)
            for r, c in zip(result.recommendations, cases, strict=True)
        )
        assert summary["r_precision"] == expected
        scores[name] = summary["r_precision"].mean
    assert scores["cooccurrence"] > 1.5 * scores["popularity"] > 0
    assert set(compare("popularity", db, cases[:5], 10, baselines=True)) == set(BASELINES)


def test_compare_split_draws_and_scores_what_the_command_reports(db):
    compared = compare_split("popularity", db, "test", 7, (2, 8), n=10, seed=1)
    assert compared.per_category == 3 and compared.shortfall == {}
    assert compared.cases == make_cases(db, "test", 3, 1, (2, 8))
    assert list(compared.results) == ["popularity"]
    assert compared.model.metrics["all"]["r_precision"].count == 6
    short = compare_split("popularity", db, "test", 20_000, (9,), n=10)
    assert short.shortfall == {9: 20_000 - len(short.cases)}


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
        "--categories",
        "2,8",
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
    assert set(report["metrics"]) == {"run", *BASELINES}
    assert list(report["metrics"]["run"]) == ["2", "8", "all"]
    assert report["metrics"]["run"]["all"]["r_precision"]["count"] == 40
    lines = [json.loads(line) for line in recs.read_text().splitlines()]
    assert len(lines) == 40
    assert all(len(line["recommendations"]) == 50 for line in lines)
    assert all(uri.startswith("spotify:track:") for line in lines for uri in line["seeds"])
    assert {line["category"] for line in lines} == {2, 8}
    assert all(line["title"] for line in lines)
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = cli("evaluate", "popularity", "--db", db, "--num-playlists", 20, "--n", 20)
    assert table.code == 0 and "R-precision" in table.out and "title only" in table.out
    cli("evaluate", "nonsense", "--db", db).assert_error("neither a model directory")
    cli("evaluate", "popularity", "--db", db, "--categories", "0,3").assert_error(
        "expected numbers from 1 to 10"
    )
    cli("evaluate", "popularity", "--db", tmp_path / "none.db").assert_error("no such database")
