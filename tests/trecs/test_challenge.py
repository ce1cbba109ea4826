"""The challenge's ten categories, its files and its scores, on a real sqlite database."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from trecs.build_db import build_database
from trecs.challenge import (
    CATEGORIES,
    TRACK_FIELDS,
    infer_category,
    make_cases,
    make_challenge,
    metrics_json,
    read_challenge,
    read_truth,
    shortfall,
)
from trecs.errors import UserError
from trecs.evaluate import compare
from trecs.metrics import clicks, ndcg, r_precision, summarise
from trecs.synth import synth_mpd


def _playlists(db: Path, split: str) -> dict[int, tuple[str, list[int]]]:
    conn = sqlite3.connect(db)
    rows = conn.execute(
        "SELECT p.id, p.name FROM playlists p JOIN split_memberships m ON m.playlist_id = p.id "
        "JOIN splits s ON s.id = m.split_id WHERE s.name = ?",
        (split,),
    ).fetchall()
    out = {}
    for pid, name in rows:
        tracks = conn.execute(
            "SELECT track_id FROM playlist_track_memberships WHERE playlist_id = ? ORDER BY pos",
            (pid,),
        ).fetchall()
        out[pid] = (name, [t for (t,) in tracks])
    conn.close()
    return out


def test_cases_follow_the_challenge_categories(db):
    playlists = _playlists(db, "test")
    cases = make_cases(db, "test", per_category=5, seed=3)
    assert Counter(c.category for c in cases) == {n: 5 for n in range(1, 11)}
    assert len({c.query.pid for c in cases}) == len(cases)  # each playlist once
    assert [c.category for c in cases] == sorted(c.category for c in cases)
    for case in cases:
        category = CATEGORIES[case.category]
        title, tracks = playlists[case.query.pid]
        assert category.min_tracks <= len(tracks) <= category.max_tracks
        assert case.query.title == (title if category.title else None)
        seeds = list(case.query.seeds)
        assert len(seeds) == category.seeds
        assert len(case.held_out) == len(tracks) - category.seeds >= 5
        if category.random:
            # A subsequence of the playlist; held out: every other position.
            rest = iter(tracks)
            assert all(any(s == t for t in rest) for s in seeds)
            assert Counter(seeds) + Counter(case.held_out) == Counter(tracks)
        else:
            assert seeds == tracks[: category.seeds]
            assert case.held_out == tracks[category.seeds :]
    assert make_cases(db, "test", per_category=5, seed=3) == cases
    assert make_cases(db, "test", per_category=5, seed=4) != cases


def test_every_eligible_playlist_in_every_category(db):
    playlists = _playlists(db, "valid")
    cases = make_cases(db, "valid", per_category=None)
    expected = {
        (pid, n)
        for pid, (_, tracks) in playlists.items()
        for n, c in CATEGORIES.items()
        if c.min_tracks <= len(tracks) <= c.max_tracks
    }
    assert {(c.query.pid, c.category) for c in cases} == expected
    # Random seeds of a playlist do not depend on what else was drawn.
    by_key = {(c.query.pid, c.category): c for c in cases}
    for case in make_cases(db, "valid", per_category=3):
        assert by_key[case.query.pid, case.category] == case


def test_relaxed_cases_are_the_ones_the_length_rules_leave_out(db):
    playlists = _playlists(db, "valid")
    relaxed = make_cases(db, "valid", None, seed=0, relaxed=5)
    expected = {
        (pid, n)
        for pid, (_, tracks) in playlists.items()
        for n, c in CATEGORIES.items()
        if not c.min_tracks <= len(tracks) <= c.max_tracks and len(tracks) >= c.seeds + 5
    }
    assert relaxed and {(c.query.pid, c.category) for c in relaxed} == expected
    for case in relaxed:
        category = CATEGORIES[case.category]
        title, tracks = playlists[case.query.pid]
        assert len(case.query.seeds) == category.seeds and len(case.held_out) >= 5
        assert sorted([*case.query.seeds, *case.held_out]) == sorted(tracks)
        assert case.query.title == (title if category.title else None)


def test_cases_of_chosen_playlists_are_theirs_of_the_whole_split(db):
    everything = make_cases(db, "train", None, seed=3)
    chosen = {c.query.pid for c in everything[::7]}
    some = make_cases(db, "train", None, seed=3, playlists=chosen)
    key = lambda c: (c.category, c.query.pid)  # noqa: E731
    assert sorted(some, key=key) == sorted(
        [c for c in everything if c.query.pid in chosen], key=key
    )


def test_a_small_split_falls_short_evenly(db):
    cases = make_cases(db, "test", per_category=1000, seed=0)
    missing = shortfall(cases, 1000)
    counts = Counter(c.category for c in cases)
    assert missing == {n: 1000 - counts[n] for n in range(1, 11)}
    assert (
        len({c.query.pid for c in cases})
        == len(cases)
        == len(_playlists(db, "test"))
        - sum(1 for _, t in _playlists(db, "test").values() if len(t) < 10)
    )
    # The 100-seed categories compete with the 25-seed ones: neither is starved.
    assert min(counts[9], counts[10]) > 0 and abs(counts[9] - counts[10]) <= 1
    assert shortfall(make_cases(db, "test", per_category=2), 2) == {}


def test_seed_positions_give_the_category():
    assert infer_category(True, []) == 1
    assert infer_category(True, [0]) == 2
    assert infer_category(False, range(5)) == 4
    assert infer_category(True, range(25)) == 7
    assert infer_category(True, [*range(24), 30]) == 8
    assert infer_category(True, range(100)) == 9
    assert infer_category(False, []) is None  # no title and no seeds: not a category
    assert infer_category(True, [3]) is None


@pytest.fixture(scope="module")
def made(db, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("made") / "challenge"
    report = make_challenge(db, out, per_category=4, seed=1)
    assert report.counts == {n: 4 for n in range(1, 11)} and report.shortfall == {}
    return out


def test_challenge_set_has_the_official_shape(db, made):
    data = json.loads((made / "challenge_set.json").read_text())
    assert {"date", "version", "name", "description", "playlists"} <= data.keys()
    assert data["name"] == "challenge_set" and len(data["playlists"]) == 40
    cases = {c.query.pid: c for c in make_cases(db, "test", per_category=4, seed=1)}
    truth = {p.pid: p for p in read_truth(made / "ground_truth.json").playlists}
    conn = sqlite3.connect(db)
    uri = dict(conn.execute("SELECT id, uri FROM tracks"))
    for playlist in data["playlists"]:
        case = cases[playlist["pid"]]
        fields = {"pid", "num_tracks", "num_samples", "num_holdouts", "tracks"}
        assert playlist.keys() == fields | ({"name"} if case.category not in (4, 6) else set())
        assert playlist.get("name") == case.query.title
        assert playlist["num_samples"] == len(playlist["tracks"]) == len(case.query.seeds)
        assert playlist["num_holdouts"] == len(case.held_out)
        assert playlist["num_tracks"] == len(case.query.seeds) + len(case.held_out)
        for track in playlist["tracks"]:
            assert track.keys() == TRACK_FIELDS.keys()
            assert all(type(track[k]) is kind for k, kind in TRACK_FIELDS.items())
        assert [t["track_uri"] for t in playlist["tracks"]] == [uri[t] for t in case.query.seeds]
        assert truth[case.query.pid].category == case.category
        assert truth[case.query.pid].held_out == [uri[t] for t in case.held_out]
    # Read back: the same queries, the categories inferred from title and positions.
    challenge = read_challenge(made / "challenge_set.json", db)
    assert challenge.unknown_seeds == 0
    assert challenge.queries == [cases[q.pid].query for q in challenge.queries]
    assert challenge.categories == [cases[q.pid].category for q in challenge.queries]


def _submission(path: Path) -> list[list[str]]:
    return [
        [f.strip() for f in line.split(",")]
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    ]


@pytest.mark.parametrize("model", ["popularity", "cooccurrence"])
def test_make_recommend_score(cli, db, tmp_path, model):
    out = tmp_path / "challenge"
    made = cli("challenge", "make", db, out, "--per-category", 3, "--seed", 2, "--json")
    assert made.code == 0, made.err
    assert made.json()["counts"] == {str(n): 3 for n in range(1, 11)}
    assert cli("challenge", "make", db, out).code == 2  # exists: needs --force
    assert cli("challenge", "make", db, out, "--per-category", 3, "--seed", 2, "--force").code == 0
    submission = tmp_path / "submission.csv"
    args = ("challenge", "recommend", model, out / "challenge_set.json", "-o", submission)
    result = cli(*args, "--db", db, "--team", "my team", "--email", "me@example.org")
    assert result.code == 0, result.err
    lines = _submission(submission)
    assert lines[0] == ["team_info", "my team", "me@example.org"]
    truth = read_truth(out / "ground_truth.json")
    assert [int(line[0]) for line in lines[1:]] == [p.pid for p in truth.playlists]
    for line, playlist in zip(lines[1:], truth.playlists, strict=True):
        assert len(set(line[1:])) == len(line) - 1 == 500
        assert not set(line[1:]) & set(playlist.seeds)
    cli(*args, "--db", db).assert_error("already exists")
    cli(
        "challenge", "recommend", model, out / "challenge_set.json", "-o", db, "--db", db
    ).assert_error("is or holds an input")

    scored = cli("challenge", "score", submission, out / "ground_truth.json", "--json")
    assert scored.code == 0, scored.err
    report = scored.json()
    assert report["team_name"] == "my team"
    assert list(report["metrics"]) == [*map(str, range(1, 11)), "all"]
    # The same figures from trecs.metrics directly.
    conn = sqlite3.connect(db)
    artist_of = dict(
        conn.execute("SELECT t.uri, a.uri FROM tracks t JOIN artists a ON a.id = t.artist_id")
    )
    recs = {int(line[0]): line[1:] for line in lines[1:]}
    for group in report["metrics"]:
        chosen = [p for p in truth.playlists if group in ("all", str(p.category))]
        expected = {
            "r_precision": summarise(
                r_precision(recs[p.pid], p.held_out, artist_of) for p in chosen
            ),
            "ndcg": summarise(ndcg(recs[p.pid], p.held_out) for p in chosen),
            "clicks": summarise(clicks(recs[p.pid], p.held_out) for p in chosen),
        }
        for metric, summary in expected.items():
            got = report["metrics"][group][metric]
            assert got["count"] == summary.count == len(chosen)
            assert got["mean"] == pytest.approx(summary.mean)
            assert got["ci95"] == pytest.approx(summary.ci95)
    # `trecs evaluate` on the same cases gives the same figures.
    evaluated = compare(model, db, make_cases(db, "test", 3, seed=2))[model]
    for group, by_metric in metrics_json(evaluated.metrics).items():
        for metric, summary in by_metric.items():
            assert summary == pytest.approx(report["metrics"][group][metric])
    table = cli("challenge", "score", submission, out / "ground_truth.json")
    assert table.code == 0 and "R-precision" in table.out and "title only" in table.out
    if model == "cooccurrence":
        popularity = cli(
            "challenge",
            "recommend",
            "popularity",
            out / "challenge_set.json",
            "-o",
            tmp_path / "pop.csv",
            "--db",
            db,
        )
        assert popularity.code == 0
        pop = cli("challenge", "score", tmp_path / "pop.csv", out / "ground_truth.json", "--json")
        assert (
            report["metrics"]["all"]["r_precision"]["mean"]
            > pop.json()["metrics"]["all"]["r_precision"]["mean"]
        )


@pytest.fixture(scope="module")
def scored(db, made, tmp_path_factory) -> list[str]:
    """A valid popularity submission for `made`, as lines."""
    from trecs.cli import run

    path = tmp_path_factory.mktemp("scored") / "submission.csv"
    code = run(
        [
            "challenge",
            "recommend",
            "popularity",
            str(made / "challenge_set.json"),
            "-o",
            str(path),
            "--db",
            str(db),
        ]
    )
    assert code == 0
    return path.read_text().splitlines()


def _broken(lines: list[str], how: str, seeds: dict[int, list[str]]) -> tuple[list[str], int]:
    """A copy of a submission's lines with one fault; and the pid it concerns."""
    lines = list(lines)
    pid = int(lines[3].split(",")[0])
    fields = lines[3].split(", ")
    if how == "duplicate pid":
        lines.append(lines[3])
    elif how == "missing pid":
        del lines[3]
    elif how == "unknown pid":
        pid = 99_999_999
        lines[3] = ", ".join([str(pid), *fields[1:]])
    elif how == "499 tracks":
        lines[3] = ", ".join(fields[:-1])
    elif how == "repeated track":
        lines[3] = ", ".join([*fields[:-1], fields[1]])
    elif how == "seed track":
        lines[3] = ", ".join([*fields[:-1], seeds[pid][0]])
    elif how == "truncated":
        pid = int(lines[-1].split(",")[0])
        lines[-1] = lines[-1][: len(lines[-1]) // 2].rsplit(",", 1)[0]
    elif how == "bad uri":
        lines[3] = ", ".join([*fields[:-1], "spotify:track:123"])
    return lines, pid


@pytest.mark.parametrize(
    "how",
    [
        "duplicate pid",
        "missing pid",
        "unknown pid",
        "499 tracks",
        "repeated track",
        "seed track",
        "truncated",
        "bad uri",
    ],
)
def test_checker_rejects_a_bad_submission(cli, made, scored, tmp_path, how):
    truth = read_truth(made / "ground_truth.json")
    seeds = {p.pid: p.seeds for p in truth.playlists if p.seeds}
    # The line broken must have seeds for the seed-track fault: pick a submission line with them.
    lines = scored
    head = [lines[0], "# a comment", ""]
    body = sorted(lines[1:], key=lambda line: int(line.split(",")[0]) not in seeds)
    broken, pid = _broken(head + body, how, seeds)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(broken) + "\n")
    result = cli("challenge", "score", bad, made / "ground_truth.json", "--json")
    result.assert_error(str(bad), f"pid {pid}")
    assert result.out == ""
    # Comments, blank lines and spaces around commas are fine.
    ok = tmp_path / "ok.csv"
    ok.write_text("\n".join(head + [line.replace(", ", " ,  ") for line in body]) + "\n")
    assert cli("challenge", "score", ok, made / "ground_truth.json").code == 0


def _official(made: Path) -> dict:
    return json.loads((made / "challenge_set.json").read_text())


@pytest.mark.parametrize(
    "fault, fragment",
    [
        ("truncated", "not valid JSON"),
        ("duplicate pid", "appears twice"),
        ("pid type", "pid is str"),
        ("missing field", "missing field 'num_holdouts'"),
        ("track field type", "duration_ms is str"),
    ],
)
def test_a_bad_challenge_set_is_one_error(cli, db, made, tmp_path, fault, fragment):
    data = _official(made)
    pid = data["playlists"][5]["pid"]
    if fault == "duplicate pid":
        data["playlists"].append(data["playlists"][5])
    elif fault == "pid type":
        data["playlists"][5]["pid"] = str(pid)
    elif fault == "missing field":
        del data["playlists"][5]["num_holdouts"]
    elif fault == "track field type":
        data["playlists"][5]["tracks"][0]["duration_ms"] = "long"
    text = json.dumps(data)
    path = tmp_path / "challenge_set.json"
    path.write_text(text[: len(text) // 2] if fault == "truncated" else text)
    output = tmp_path / "submission.csv"
    result = cli("challenge", "recommend", "popularity", path, "-o", output, "--db", db)
    where = [str(path), fragment] + ([] if fault in ("truncated", "pid type") else [f"pid {pid}"])
    result.assert_error(*where)
    assert not output.exists() and list(tmp_path.iterdir()) == [path]


def test_the_official_challenge_set_with_unknown_tracks(cli, db, made, tmp_path):
    """Real challenge playlists are not in our database: unknown seeds are dropped."""
    data = _official(made)
    unknown = 0
    for i, playlist in enumerate(data["playlists"]):
        playlist["pid"] += 1_000_000  # like the official set's pids, none in the database
        for j, track in enumerate(playlist["tracks"]):
            if (i + j) % 3 == 0:
                track["track_uri"] = f"spotify:track:{i:011d}{j:011d}"
                unknown += 1
    path = tmp_path / "challenge_set.json"
    path.write_text(json.dumps(data))
    challenge = read_challenge(path, db)
    assert challenge.unknown_seeds == unknown > 0
    assert challenge.seeds == sum(len(p["tracks"]) for p in data["playlists"])
    assert [q.title for q in challenge.queries] == [p.get("name") for p in data["playlists"]]
    output = tmp_path / "submission.csv.gz"
    result = cli("challenge", "recommend", "cooccurrence", path, "-o", output, "--db", db)
    assert result.code == 0, result.err
    assert f"{unknown:,} of {challenge.seeds:,} seed tracks" in result.err
    import gzip

    lines = gzip.decompress(output.read_bytes()).decode().splitlines()
    assert len(lines) == 41 and all(len(line.split(",")) == 501 for line in lines[1:])


def test_too_small_a_database_is_one_error(cli, tmp_path):
    synth_mpd(tmp_path / "mpd", playlists=40, tracks=300, seed=3)
    small = tmp_path / "small.db"
    build_database(small, [tmp_path / "mpd"], split=(0.5, 0.0, 0.5), workers=1)
    out = tmp_path / "challenge"
    assert cli("challenge", "make", small, out, "--per-category", 1).code == 0
    output = tmp_path / "submission.csv"
    result = cli(
        "challenge",
        "recommend",
        "popularity",
        out / "challenge_set.json",
        "-o",
        output,
        "--db",
        small,
    )
    result.assert_error(str(small), "tracks besides the seeds of pid", "needs 500")
    assert not output.exists()


def test_make_never_replaces_other_files(cli, db, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    cli("challenge", "make", db, tmp_path, "--force").assert_error("holds other files")
    assert (tmp_path / "notes.txt").read_text() == "mine"
    with pytest.raises(UserError, match="expected numbers from 1 to 10"):
        make_cases(db, "test", 3, categories=(0, 11))


def test_short_lists_are_completed_from_the_database(cli, tmp_path):
    """A train split of a few playlists knows too few tracks for 500: the rest of the
    database completes the lists, never with a seed."""
    synth_mpd(tmp_path / "mpd", playlists=80, tracks=3000, seed=4)
    db = tmp_path / "mpd.db"
    build_database(db, [tmp_path / "mpd"], split=(0.05, 0.0, 0.95), workers=1)
    out = tmp_path / "challenge"
    assert cli("challenge", "make", db, out, "--per-category", 2).code == 0
    output = tmp_path / "submission.csv"
    args = ("challenge", "recommend", "popularity", out / "challenge_set.json", "-o", output)
    result = cli(*args, "--db", db)
    assert result.code == 0, result.err
    assert "completed with the most popular tracks" in result.err
    truth = read_truth(out / "ground_truth.json")
    lines = _submission(output)[1:]
    assert len(lines) == len(truth.playlists) > 0
    for line, playlist in zip(lines, truth.playlists, strict=True):
        assert len(set(line[1:])) == 500 and not set(line[1:]) & set(playlist.seeds)
    assert cli("challenge", "score", output, out / "ground_truth.json").code == 0


@pytest.mark.parametrize("command", ["make", "recommend", "score"])
def test_every_challenge_option_is_explained(cli, command):
    result = cli("challenge", command, "--help")
    assert result.code == 0
    options = [line.strip() for line in result.out.splitlines() if line.strip().startswith("-")]
    assert options
    for option in options:
        assert option.startswith("--help") or len(option.split(None, 2)) >= 2, option
