"""The challenge's ten categories, its files and its scores, on a real sqlite database."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from trecs.build_db import build_database
from trecs.challenge import CATEGORIES, make_cases, shortfall


@pytest.fixture(scope="module")
def db(mpd_dir, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("challenge") / "mpd.db"
    build_database(path, [mpd_dir], workers=1)
    return path


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
