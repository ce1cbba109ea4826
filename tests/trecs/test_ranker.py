"""The two-stage recommender on synthetic MPD data: candidates, features, training, loading."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from trecs.build_db import build_database
from trecs.challenge import make_cases
from trecs.checkpoints import load_run
from trecs.config import NUM_SPECIAL, ModelConfig, TrainConfig
from trecs.data import PlaylistSource
from trecs.evaluate import compare
from trecs.ranker import Generators, Settings, feature_names, train_ranker
from trecs.recommenders import Query, load, train_matrix, train_vocabulary, transformer
from trecs.synth import synth_mpd
from trecs.titles import normalise, train_keys
from trecs.train import train

SETTINGS = Settings(candidates=600, depth=600)


@pytest.fixture(scope="module")
def run(db, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ranker-run") / "run"
    tiny = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=10)
    train(path, TrainConfig(db=db, model=tiny, batch_size=8, num_steps=10, data_workers=0))
    return path


@pytest.fixture(scope="module")
def generators(db, run) -> Generators:
    return Generators(db, load_run(run), SETTINGS)


@pytest.fixture(scope="module")
def ranker(db, run, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ranker-out") / "ranker"
    # Room for cross-fitted cases beside the valid split's, fewer than the default.
    return out, train_ranker(out, run, db, settings=SETTINGS, max_cases=2500)


def _train_playlist(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        pid = conn.execute(
            "SELECT m.playlist_id FROM split_memberships m JOIN splits s ON s.id = m.split_id "
            "WHERE s.name = 'train' ORDER BY m.playlist_id LIMIT 1"
        ).fetchone()[0]
        return [
            t
            for (t,) in conn.execute(
                "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ? "
                "ORDER BY pos",
                (pid,),
            )
        ]
    finally:
        conn.close()


def test_candidates_exclude_seeds_and_hold_each_generators_top(db, run, generators):
    seeds = tuple(_train_playlist(db)[:5])
    queries = [Query(1, "rock", seeds), Query(2, None, seeds[:1]), Query(3, "party", ())]
    batch = generators.batch(queries)
    tokens = [generators.tokens(q.seeds) for q in queries]
    own = {
        "cooccurrence": generators.cooccurrence.scores(tokens).toarray(),
        "playlist_knn": generators.knn.scores(tokens).toarray(),
        "title": generators.title.scores([q.title for q in queries]).toarray(),
    }
    alone = transformer(run, db).recommend(queries, 1)
    for row in range(len(queries)):
        candidates = set(batch.token[batch.query == row].tolist())
        assert len(candidates) == (batch.query == row).sum() <= SETTINGS.candidates
        assert not candidates & set(tokens[row])
        assert min(candidates) >= NUM_SPECIAL
        popular = next(t for t in range(NUM_SPECIAL, NUM_SPECIAL + 10) if t not in tokens[row])
        assert popular in candidates
        assert int(generators.token_of[alone[row][0]]) in candidates
        for scores in own.values():
            scores = scores[row].copy()
            scores[tokens[row]] = 0
            scores[:NUM_SPECIAL] = 0
            if scores.max() > 0:
                assert int(np.argmax(scores)) in candidates


def test_features_of_a_hand_built_case(db, run, generators):
    seeds = tuple(_train_playlist(db)[:3])
    vocab = train_vocabulary(db)
    conn = sqlite3.connect(db)
    try:
        facts = {
            row[0]: row[1:]
            for row in conn.execute("SELECT id, artist_id, album_id, name FROM tracks")
        }
    finally:
        conn.close()
    # A title word that some track names hold.
    word = normalise(facts[int(vocab.track_ids[0])][2]).split()[0]
    query = Query(1, word.upper() + "!", seeds)
    batch = generators.batch([query])
    names = feature_names()
    assert batch.features.shape == (len(batch.token), len(names))
    column = {name: batch.features[:, i] for i, name in enumerate(names)}
    ids = vocab.track_ids[batch.token - NUM_SPECIAL]
    seed_artists = [facts[s][0] for s in seeds]
    seed_albums = [facts[s][1] for s in seeds]
    artist_count = np.array([seed_artists.count(facts[int(t)][0]) for t in ids])
    album_count = np.array([seed_albums.count(facts[int(t)][1]) for t in ids])
    in_name = np.array([word in normalise(facts[int(t)][2]).split() for t in ids])
    np.testing.assert_array_equal(column["num_seeds"], 3)
    np.testing.assert_array_equal(column["has_title"], 1)
    np.testing.assert_array_equal(column["known_seed_share"], 1)
    np.testing.assert_array_equal(column["artist_seed_count"], artist_count)
    np.testing.assert_allclose(column["artist_seed_share"], artist_count / 3, rtol=1e-6)
    np.testing.assert_array_equal(column["album_seed_count"], album_count)
    np.testing.assert_array_equal(column["title_words_in_track"], in_name)
    assert in_name.any() and artist_count.any()
    np.testing.assert_allclose(
        column["log_track_popularity"], np.log1p(vocab.counts[batch.token]), rtol=1e-6
    )
    cooccurrence = generators.cooccurrence.scores([generators.tokens(seeds)]).toarray()[0]
    np.testing.assert_allclose(column["cooccurrence_score"], cooccurrence[batch.token], rtol=1e-5)
    top = generators.token_of[transformer(run, db).recommend([query], 1)[0][0]]
    assert column["transformer_rank"][batch.token == top] == 0
    assert column["transformer_rank"].max() <= SETTINGS.depth
    best = column["cooccurrence_rank"] == 0
    np.testing.assert_allclose(cooccurrence[batch.token[best]], cooccurrence[batch.token].max())
    np.testing.assert_array_equal(column["cooccurrence_relative"][best], 1)


def test_generators_without_playlists_know_nothing_of_them(db, generators):
    """Cross-fitted training cases: a playlist left out leaves no trace in the generators,
    so its tracks found only there get no evidence and no popularity."""
    matrix = train_matrix(db)
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    # A train playlist with tracks no other train playlist holds.
    row = next(r for r in range(matrix.shape[0]) if (counts[matrix[r].indices] == 1).any())
    own = matrix[row].indices
    alone = own[counts[own] == 1]
    fold = generators.without(np.array([row]))
    assert fold.transformer is None and generators.transformer is not None
    seeds = [[int(t) for t in own if t not in alone][:3]]
    for model in (fold.cooccurrence, fold.knn):
        assert model.matrix[row].nnz == 0
        assert not model.scores(seeds).toarray()[0][alone].any()
    assert generators.cooccurrence.scores(seeds).toarray()[0][alone].all()  # the leak
    titles = train_keys(db)[row : row + 1]
    assert not fold.title.scores(titles).toarray()[0][alone].any()
    assert not fold.catalog.log_track[alone - NUM_SPECIAL].any()
    assert (generators.catalog.log_track[alone - NUM_SPECIAL] > 0).all()
    # Popularity is the other train playlists' occurrences, repeats included.
    source = PlaylistSource(db, "train")
    others = [generators.token_of[source[r]] for r in range(len(source)) if r != row]
    occurrences = np.bincount(np.concatenate(others), minlength=len(generators.vocab.counts))
    expected = np.log1p(occurrences[NUM_SPECIAL:].astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(fold.catalog.log_track, expected)
    pid = int(PlaylistSource(db, "train").playlist_ids[row])
    batch = fold.batch(
        [Query(pid, None, tuple(generators.vocab.track_ids[s - NUM_SPECIAL] for s in seeds[0]))]
    )
    assert np.isnan(batch.features[:, feature_names().index("transformer_rank")]).all()
    assert not np.isin(batch.token, alone).any()  # nothing proposes them


def test_ranker_answers_500_distinct_non_seeds_and_beats_every_generator(db, run, ranker):
    out, report = ranker
    assert report["candidate_recall"] > 0.2
    assert report["cross_fitted_cases"] > 0 and report["folds"] >= 1
    recommender = load(str(out), db)
    cases = make_cases(db, "test", None, 0)
    for recs, case in zip(recommender.recommend([c.query for c in cases], 500), cases, strict=True):
        assert len(set(recs.tolist())) == 500
        assert not set(recs.tolist()) & set(case.query.seeds)
    # Without seeds the title model orders the candidates (Batch.scores).
    title_only = [c.query for c in cases if c.category == 1][:5]
    for ranked, alone in zip(
        recommender.recommend(title_only, 10),
        load("title", db).recommend(title_only, 10),
        strict=True,
    ):
        assert ranked.tolist() == alone.tolist()
    results = compare(str(out), db, cases, baselines=True) | compare(str(run), db, cases)
    ndcg = {name: r.metrics["all"]["ndcg"].mean for name, r in results.items()}
    precision = {name: r.metrics["all"]["r_precision"].mean for name, r in results.items()}
    others = [name for name in results if name != out.name]
    assert ndcg[out.name] > max(ndcg[name] for name in others), ndcg
    assert precision[out.name] > max(precision[name] for name in others), precision


def test_train_ranker_command_is_deterministic(cli, db, run, tmp_path):
    reports = []
    for name in ("a", "b"):
        result = cli(
            "train-ranker",
            tmp_path / name,
            "--run",
            run,
            "--db",
            db,
            "--candidates",
            100,
            "--max-cases",
            1200,
            "--json",
        )
        assert result.code == 0, result.err
        reports.append(result.json())
    assert reports[0] == reports[1]
    assert reports[0]["relaxed_cases"] > 0 and reports[0]["holdout_cases"] > 0
    assert (tmp_path / "a" / "model.txt").read_bytes() == (
        tmp_path / "b" / "model.txt"
    ).read_bytes()
    meta = json.loads((tmp_path / "a" / "ranker.json").read_text())
    assert meta["run"] == str(run.resolve()) and meta["features"] == feature_names()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers
    result = cli("train-ranker", tmp_path / "a", "--run", run, "--db", db)
    result.assert_error("already exists", "--force")


def test_bad_rankers_are_one_line_errors(cli, db, run, ranker, mpd_dir, tmp_path):
    out, _ = ranker
    other = tmp_path / "other.db"
    build_database(other, [mpd_dir], seed=1, workers=1)  # another train split
    cli("evaluate", out, "--db", other, "--num-playlists", 10).assert_error("not the train split")
    cli("train-ranker", tmp_path / "r", "--run", run, "--db", other).assert_error(
        "another train split"
    )
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    meta = json.loads((stale / "ranker.json").read_text())
    (stale / "ranker.json").write_text(json.dumps({**meta, "format_version": 999}))
    cli("evaluate", stale, "--db", db, "--num-playlists", 10).assert_error("ranker format 999")
    (stale / "ranker.json").write_text("{")
    cli("evaluate", stale, "--db", db, "--num-playlists", 10).assert_error("not a trecs ranker")


def _uris(db: Path, ids) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [
            conn.execute("SELECT uri FROM tracks WHERE id = ?", (int(t),)).fetchone()[0]
            for t in ids
        ]
    finally:
        conn.close()


def test_generate_with_a_ranker_lists_its_best_tracks(cli, db, ranker):
    out, _ = ranker
    seeds = _train_playlist(db)[:3]
    args = ["generate", out, "--length", 12, "--title", "rock", "--format", "json"]
    for uri in _uris(db, seeds):
        args += ["--track", uri]
    result = cli(*args)
    assert result.code == 0, result.err
    listed = [t["uri"] for t in result.json()["tracks"]]
    expected = load(str(out), db).recommend([Query(-1, "rock", tuple(seeds))], 12)[0]
    assert listed == _uris(db, expected) and not set(listed) & set(_uris(db, seeds))
    sampled = cli(*args, "--temperature", 2.0)
    assert sampled.code == 0 and "sampling options do not apply" in sampled.err
    assert [t["uri"] for t in sampled.json()["tracks"]] == listed


def test_a_left_out_playlist_takes_every_occurrence_from_popularity(tmp_path):
    """Popularity counts occurrences: a track twice in a left-out playlist loses two."""
    synth_mpd(tmp_path / "mpd", playlists=300, tracks=400, seed=3)
    for path in (tmp_path / "mpd" / "data").glob("*.json"):
        data = json.loads(path.read_text())
        for playlist in data["playlists"]:  # each playlist plays its first track again
            again = dict(playlist["tracks"][0], pos=len(playlist["tracks"]))
            playlist["tracks"].append(again)
            playlist["num_tracks"] += 1
            playlist["duration_ms"] += again["duration_ms"]
        path.write_text(json.dumps(data))
    db = tmp_path / "mpd.db"
    build_database(db, [tmp_path / "mpd"], workers=1)
    tiny = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=10)
    config = TrainConfig(db=db, model=tiny, batch_size=8, num_steps=2, data_workers=0)
    train(tmp_path / "run", config)
    generators = Generators(db, load_run(tmp_path / "run"), SETTINGS)
    first = generators.token_of[PlaylistSource(db, "train")[0]]
    repeated = int(first[0]) - NUM_SPECIAL
    assert (first == first[0]).sum() == 2
    total = generators.vocab.counts[NUM_SPECIAL + repeated]
    fold = generators.without(np.array([0]))
    assert fold.catalog.log_track[repeated] == np.float32(np.log1p(float(total - 2)))
