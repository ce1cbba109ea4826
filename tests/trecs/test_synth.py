"""synth-mpd writes the MPD's exact format, deterministically, with planted structure."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np

from trecs.synth import CATALOG_COLUMNS, synth_mpd

# Key order of the real MPD (shared/data/mpd.slice.0-99.json and tests' fixture).
PLAYLIST_KEYS = [
    "name",
    "collaborative",
    "pid",
    "modified_at",
    "num_tracks",
    "num_albums",
    "num_followers",
    "tracks",
    "num_edits",
    "duration_ms",
    "num_artists",
]
UNIT_FEATURES = [
    "danceability",
    "energy",
    "speechiness",
    "acousticness",
    "instrumentalness",
    "liveness",
    "valence",
]
TRACK_KEYS = [
    "pos",
    "artist_name",
    "track_uri",
    "artist_uri",
    "track_name",
    "album_uri",
    "duration_ms",
    "album_name",
]


def test_layout_matches_the_mpd(mpd_dir):
    names = sorted(p.name for p in (mpd_dir / "data").iterdir())
    assert names == ["mpd.slice.0-999.json", "mpd.slice.1000-1999.json", "mpd.slice.2000-2499.json"]
    for line in (mpd_dir / "md5sums").read_text().splitlines():
        digest, name = line.split("  ")
        assert hashlib.md5((mpd_dir / name).read_bytes()).hexdigest() == digest
    with zipfile.ZipFile(mpd_dir.with_name("mpd.zip")) as archive:
        members = archive.namelist()
        assert members[:2] == ["README.md", "md5sums"]
        assert sorted(members[2:]) == sorted(f"data/{n}" for n in names)
        assert (
            archive.read("data/mpd.slice.0-999.json")
            == (mpd_dir / "data/mpd.slice.0-999.json").read_bytes()
        )


def test_json_schema_matches_the_real_mpd(mpd_dir):
    real = json.loads((Path(__file__).parent / "fixtures/mpd.slice.0-999.json").read_text())
    assert list(real["playlists"][0]) == PLAYLIST_KEYS
    data = json.loads((mpd_dir / "data/mpd.slice.1000-1999.json").read_text())
    assert list(data) == ["info", "playlists"]
    assert data["info"]["slice"] == "1000-1999"
    assert [p["pid"] for p in data["playlists"]] == list(range(1000, 2000))
    described = 0
    for playlist in data["playlists"]:
        keys = list(playlist)
        if "description" in keys:
            described += 1
            keys.remove("description")
            assert isinstance(playlist["description"], str)
        assert keys == PLAYLIST_KEYS
        assert playlist["collaborative"] in ("true", "false")
        tracks = playlist["tracks"]
        assert all(list(t) == TRACK_KEYS for t in tracks)
        assert [t["pos"] for t in tracks] == list(range(len(tracks)))
        assert playlist["num_tracks"] == len(tracks)
        assert playlist["duration_ms"] == sum(t["duration_ms"] for t in tracks)
        assert playlist["num_artists"] == len({t["artist_uri"] for t in tracks})
        assert playlist["num_albums"] == len({t["album_uri"] for t in tracks})
        assert all(
            t["track_uri"].startswith("spotify:track:") and len(t["track_uri"]) == 36
            for t in tracks
        )
    assert 0 < described < 100


def test_lengths_like_the_mpd(mpd_json):
    lengths = np.array([p["num_tracks"] for p in mpd_json.values()])
    assert lengths.min() >= 5 and lengths.max() <= 250
    assert 58 <= lengths.mean() <= 75
    assert np.median(lengths) < lengths.mean()  # right-skewed


def test_deterministic_per_seed(tmp_path):
    a = synth_mpd(tmp_path / "a", playlists=300, tracks=1000, seed=3)
    b = synth_mpd(tmp_path / "b", playlists=300, tracks=1000, seed=3)
    c = synth_mpd(tmp_path / "c", playlists=300, tracks=1000, seed=4)
    assert a.entries == b.entries
    for name in ("md5sums", "catalog.csv", "data/mpd.slice.0-299.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a/md5sums").read_text() != (tmp_path / "c/md5sums").read_text()
    assert c.playlists == 300


def _catalog(mpd_dir):
    with (mpd_dir / "catalog.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_catalog_has_every_track_in_tidytuesday_columns(mpd_dir, mpd_json):
    rows = _catalog(mpd_dir)
    assert list(rows[0]) == CATALOG_COLUMNS
    ids = {r["track_id"] for r in rows}
    assert len(ids) == len(rows) == 3000
    used = {t["track_uri"].split(":")[-1] for p in mpd_json.values() for t in p["tracks"]}
    assert used <= ids
    for r in rows:
        for name in UNIT_FEATURES:
            assert 0.0 <= float(r[name]) <= 1.0
        assert float(r["loudness"]) <= 0.0
        assert r["mode"] in ("0", "1") and 0 <= int(r["key"]) <= 11


def test_audio_features_cluster_by_genre(mpd_dir):
    rows = _catalog(mpd_dir)
    x = np.array([[float(r[n]) for n in UNIT_FEATURES] for r in rows])
    genre = np.array([r["playlist_subgenre"] for r in rows])
    centroids = {g: x[genre == g].mean(0) for g in set(genre)}
    within = np.mean([((x[genre == g] - c) ** 2).sum(1).mean() for g, c in centroids.items()])
    nearest_own = np.mean(
        [
            min(centroids, key=lambda g: ((row - centroids[g]) ** 2).sum()) == own
            for row, own in zip(x, genre, strict=True)
        ]
    )
    assert within < ((x - x.mean(0)) ** 2).sum(1).mean()
    assert nearest_own > 3 / len(centroids)  # far above chance


def test_planted_structure(mpd_dir, mpd_json):
    genre_of = {f"spotify:track:{r['track_id']}": r["playlist_subgenre"] for r in _catalog(mpd_dir)}
    album_of = {}
    popularity = Counter()
    top_two, album_runs, pairs = [], 0, 0
    for playlist in mpd_json.values():
        uris = [t["track_uri"] for t in playlist["tracks"]]
        popularity.update(uris)
        counts = Counter(genre_of[u] for u in uris).most_common(2)
        top_two.append(sum(n for _, n in counts) / len(uris))
        for t in playlist["tracks"]:
            album_of[t["track_uri"]] = t["album_uri"]
        for a, b in pairwise(uris):
            pairs += 1
            album_runs += album_of[a] == album_of[b]
    # Playlists draw mostly from one or two genres.
    assert np.mean(top_two) > 0.85
    # Album runs are common, far above what random draws would give.
    assert album_runs / pairs > 0.2
    # Popularity is heavy-tailed: the top 5% of tracks hold well over 5% of entries (this
    # small catalog saturates; at 50k tracks and 10k playlists the share is about 38%).
    counts = np.sort(np.array(list(popularity.values())))[::-1]
    assert counts[: len(counts) // 20].sum() / counts.sum() > 0.12


def test_refuses_to_overwrite(cli, tmp_path):
    (tmp_path / "out").mkdir()
    cli("synth-mpd", tmp_path / "out", "--playlists", 5, "--tracks", 300).assert_error(
        "already exists", "--force"
    )
    result = cli(
        "synth-mpd", tmp_path / "out", "--playlists", 5, "--tracks", 300, "--force", "--json"
    )
    assert result.code == 0
    assert result.json()["playlists"] == 5
    assert (tmp_path / "out/data/mpd.slice.0-4.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rejects_bad_options(cli, tmp_path):
    cli("synth-mpd", tmp_path / "x", "--playlists", "many").assert_error("--playlists")
    cli("synth-mpd", tmp_path / "x", "--tracks", 10).assert_error("--tracks")
    assert not (tmp_path / "x").exists()


def test_demo_seed_is_stable(tmp_path):
    """The Makefile's demo seeds generation with playlist 0's first track."""
    synth_mpd(tmp_path / "demo", playlists=1, tracks=50_000, seed=0)
    first = json.loads((tmp_path / "demo/data/mpd.slice.0-0.json").read_text())["playlists"][0]
    makefile = (Path(__file__).parents[2] / "Makefile").read_text()
    assert f"DEMO_SEED := {first['tracks'][0]['track_uri']}" in makefile
