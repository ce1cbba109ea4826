"""build-db: round trip, input forms, split determinism, features, and every bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from trecs.build_db import assign_splits, build_database
from trecs.errors import UserError

FIXTURES = Path(__file__).parent / "fixtures"


def tables(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows, in a canonical order, for comparing two databases."""
    conn = sqlite3.connect(db)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: sorted(conn.execute(f"SELECT * FROM {name}").fetchall(), key=repr)
            for name in names
            if name != "meta"
        }
    finally:
        conn.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def built(mpd_dir, tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("db") / "mpd.db"
    build_database(db, [mpd_dir], features=mpd_dir / "catalog.csv")
    return db


def test_round_trip_every_playlist(built, mpd_json):
    conn = sqlite3.connect(built)
    rows = conn.execute(
        """
        SELECT m.playlist_id, t.uri, t.name, t.duration_ms, al.uri, al.name, ar.uri, ar.name
        FROM playlist_track_memberships m
        JOIN tracks t ON t.id = m.track_id
        JOIN albums al ON al.id = t.album_id
        JOIN artists ar ON ar.id = t.artist_id
        ORDER BY m.playlist_id, m.pos
        """
    ).fetchall()
    got: dict[int, list[tuple]] = {}
    for pid, *track in rows:
        got.setdefault(pid, []).append(tuple(track))
    assert set(got) == set(mpd_json)
    for pid, playlist in mpd_json.items():
        expected = [
            (
                t["track_uri"],
                t["track_name"],
                t["duration_ms"],
                t["album_uri"],
                t["album_name"],
                t["artist_uri"],
                t["artist_name"],
            )
            for t in playlist["tracks"]
        ]
        assert got[pid] == expected, pid
    meta = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT id, name, description, collaborative, modified_at, num_followers, num_edits, num_tracks FROM playlists"
        )
    }
    for pid, p in mpd_json.items():
        assert meta[pid] == (
            p["name"],
            p.get("description"),
            int(p["collaborative"] == "true"),
            p["modified_at"],
            p["num_followers"],
            p["num_edits"],
            p["num_tracks"],
        )
    conn.close()


def test_counts_match_the_json(cli, built, mpd_json):
    info = cli("info", built, "--json").json()
    tracks = {t["track_uri"] for p in mpd_json.values() for t in p["tracks"]}
    assert info["playlists"] == len(mpd_json) == 2500
    assert info["entries"] == sum(p["num_tracks"] for p in mpd_json.values())
    assert info["tracks"] == len(tracks)
    assert info["artists"] == len({t["artist_uri"] for p in mpd_json.values() for t in p["tracks"]})
    assert info["albums"] == len({t["album_uri"] for p in mpd_json.values() for t in p["tracks"]})
    assert info["tracks_with_audio_features"] == len(tracks)
    assert sum(s["playlists"] for s in info["splits"].values()) == 2500
    assert sum(s["entries"] for s in info["splits"].values()) == info["entries"]
    conn = sqlite3.connect(built)
    assert (
        conn.execute("SELECT COUNT(*) FROM playlist_track_memberships").fetchone()[0]
        == info["entries"]
    )
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    indices = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"tracks_uri", "albums_uri", "artists_uri", "split_memberships_split"} <= indices


def test_audio_features_join_on_track_id(built, mpd_dir):
    conn = sqlite3.connect(built)
    got = dict(conn.execute("SELECT uri, danceability FROM tracks"))
    catalog = (mpd_dir / "catalog.csv").read_text().splitlines()
    header = catalog[0].split(",")
    checked = 0
    for line in catalog[1:200]:
        row = dict(zip(header, line.split(","), strict=True))
        uri = f"spotify:track:{row['track_id']}"
        if uri in got:
            assert got[uri] == pytest.approx(float(row["danceability"]))
            checked += 1
    assert checked > 50


def test_zip_folder_and_files_build_the_same_database(mpd_dir, tmp_path, built):
    from_zip = tmp_path / "zip.db"
    build_database(from_zip, [mpd_dir.with_name("mpd.zip")], features=mpd_dir / "catalog.csv")
    slices = sorted((mpd_dir / "data").glob("*.json"))
    from_files = tmp_path / "files.db"
    build_database(from_files, [slices[2], slices[0], slices[1]], features=mpd_dir / "catalog.csv")
    reference = tables(built)
    assert tables(from_zip) == reference
    assert tables(from_files) == reference


def test_splits_are_seeded_and_independent_of_input_order(mpd_dir, tmp_path):
    slices = sorted((mpd_dir / "data").glob("*.json"))

    def split_of(db: Path) -> dict[int, str]:
        conn = sqlite3.connect(db)
        return dict(
            conn.execute(
                "SELECT m.playlist_id, s.name FROM split_memberships m JOIN splits s ON s.id = m.split_id"
            )
        )

    build_database(tmp_path / "a.db", slices, workers=1)
    build_database(tmp_path / "b.db", list(reversed(slices)), workers=3)
    build_database(tmp_path / "c.db", slices[1:2])
    build_database(tmp_path / "d.db", slices, seed=43)
    a, b, c, d = (split_of(tmp_path / f"{x}.db") for x in "abcd")
    assert a == b
    # A playlist keeps its split in a database built from fewer slices.
    assert c == {pid: a[pid] for pid in c}
    assert a != d
    counts = {name: list(a.values()).count(name) for name in ("train", "valid", "test")}
    assert 0.75 < counts["train"] / 2500 < 0.85
    assert 0.07 < counts["valid"] / 2500 < 0.13
    assert 0.07 < counts["test"] / 2500 < 0.13


def test_split_fractions_are_honoured():
    pids = np.arange(200_000)
    shares = np.bincount(assign_splits(pids, (0.6, 0.3, 0.1), seed=1), minlength=3) / len(pids)
    assert shares == pytest.approx([0.6, 0.3, 0.1], abs=0.005)
    assert (assign_splits(pids, (1.0, 0.0, 0.0), seed=1) == 0).all()


def test_real_mpd_playlists_build(cli, tmp_path):
    result = cli("build-db", tmp_path / "real.db", FIXTURES / "mpd.slice.0-999.json", "--json")
    assert result.code == 0, result.err
    report = result.json()
    real = json.loads((FIXTURES / "mpd.slice.0-999.json").read_text())["playlists"]
    assert report["playlists"] == 5
    assert report["entries"] == sum(p["num_tracks"] for p in real)
    conn = sqlite3.connect(tmp_path / "real.db")
    assert (
        conn.execute("SELECT description FROM playlists WHERE id = 94").fetchone()[0]
        == "chilllll out"
    )
    first = conn.execute(
        "SELECT t.uri FROM playlist_track_memberships m JOIN tracks t ON t.id = m.track_id "
        "WHERE m.playlist_id = 0 ORDER BY m.pos LIMIT 1"
    ).fetchone()[0]
    assert first == real[0]["tracks"][0]["track_uri"]


def test_small_build_is_pinned(tmp_path):
    """Every row of a three-slice build from two worker processes, pinned: ids, positions
    and values must not change when the builder is made faster."""
    real = json.loads((FIXTURES / "mpd.slice.0-999.json").read_text())["playlists"]
    folder = tmp_path / "in"
    for start, chunk in ((0, real[:2]), (1000, real[2:4]), (2000, real[4:])):
        write_slice(folder, chunk, f"mpd.slice.{start}-{start + 999}.json")
    build_database(tmp_path / "out.db", [folder], workers=2)
    rows = tables(tmp_path / "out.db")
    assert {name: len(r) for name, r in rows.items()} == {
        "artists": 266,
        "albums": 338,
        "tracks": 402,
        "playlists": 5,
        "playlist_track_memberships": 405,
        "splits": 3,
        "split_memberships": 5,
    }
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    assert digest == "00528d2becad1909d2373783aa1a0a197d3108a31580243ea118bf0449f3ac80"
    meta = dict(sqlite3.connect(tmp_path / "out.db").execute("SELECT key, value FROM meta"))
    assert meta | {"trecs_version": ""} == {
        "format_version": "1",
        "trecs_version": "",
        "split_seed": "42",
        "split_fractions": "[0.8, 0.1, 0.1]",
        "slices": "3",
        "skipped": "{}",
        "features": "false",
    }


# --- bad input: one clear line, exit 2, no database left behind -------------------------


def write_slice(folder: Path, playlists: list[dict], name: str = "mpd.slice.0-999.json") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    info = {"generated_on": "2017-12-03 08:41:42.057563", "slice": "0-999", "version": "v1"}
    path.write_text(json.dumps({"info": info, "playlists": playlists}))
    return path


@pytest.fixture
def real_playlists() -> list[dict]:
    return json.loads((FIXTURES / "mpd.slice.0-999.json").read_text())["playlists"]


def corrupt(playlists: list[dict], how: str) -> list[dict]:
    p = playlists[1]
    if how == "wrong type":
        p["num_followers"] = "1"
    elif how == "missing field":
        del p["tracks"][3]["track_uri"]
    elif how == "num_tracks":
        p["num_tracks"] += 1
    elif how == "positions":
        p["tracks"][4]["pos"] = 7
    elif how == "duration":
        p["duration_ms"] += 1
    elif how == "num_artists":
        p["num_artists"] -= 1
    elif how == "bad uri":
        p["tracks"][2]["track_uri"] = "spotify:album:1234567890123456789012"
    elif how == "negative":
        p["tracks"][0]["duration_ms"] = -5
    elif how == "collaborative":
        p["collaborative"] = False
    return playlists


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("wrong type", "num_followers"),
        ("missing field", "track_uri"),
        ("num_tracks", "num_tracks is 40 but it lists 39 tracks"),
        ("positions", "track 4 has pos 7"),
        ("duration", "duration_ms is"),
        ("num_artists", "num_artists is"),
        ("bad uri", "track 2: track_uri 'spotify:album:"),
        ("negative", "duration_ms"),
        ("collaborative", "collaborative"),
    ],
)
def test_invalid_playlist_stops_the_build(cli, tmp_path, real_playlists, how, message):
    source = write_slice(tmp_path / "in", corrupt(real_playlists, how))
    result = cli("build-db", tmp_path / "out.db", source)
    result.assert_error(f"{source}: playlist 1: ", message)
    assert not (tmp_path / "out.db").exists()
    assert leftovers(tmp_path) == []


def test_lenient_skips_and_reports(cli, tmp_path, real_playlists):
    corrupt(real_playlists, "positions")
    real_playlists[3]["num_tracks"] = 1
    source = write_slice(tmp_path / "in", real_playlists)
    result = cli("build-db", tmp_path / "out.db", source, "--lenient", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["playlists"] == 3
    assert sum(report["skipped"].values()) == 2
    assert any("pos" in reason for reason in report["skipped"])
    text = cli("build-db", tmp_path / "out2.db", source, "--lenient")
    assert "skipped 1 playlists: num_tracks is N but it lists N tracks" in text.out


def test_truncated_json(cli, tmp_path, real_playlists):
    source = write_slice(tmp_path / "in", real_playlists)
    source.write_bytes(source.read_bytes()[:-5000])
    cli("build-db", tmp_path / "out.db", source).assert_error(
        str(source), "invalid JSON", "truncated"
    )
    cli("build-db", tmp_path / "out.db", source, "--lenient").assert_error("invalid JSON")
    assert not (tmp_path / "out.db").exists()


def test_not_a_slice(cli, tmp_path):
    source = tmp_path / "mpd.slice.0-999.json"
    source.write_text('{"playlists": 3}')
    cli("build-db", tmp_path / "out.db", source).assert_error("not an MPD slice")
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    cli("build-db", tmp_path / "out.db", other).assert_error(
        "not an MPD zip archive, folder or .json slice"
    )
    cli("build-db", tmp_path / "out.db", tmp_path / "missing.zip").assert_error("no such file")


def test_duplicate_pid_across_slices(cli, tmp_path, real_playlists):
    a = write_slice(tmp_path / "in", real_playlists[:2], "mpd.slice.0-999.json")
    b = write_slice(tmp_path / "in", real_playlists[1:3], "mpd.slice.1000-1999.json")
    cli("build-db", tmp_path / "out.db", a, b).assert_error(
        "playlist 1: pid appears more than once"
    )
    result = cli("build-db", tmp_path / "out.db", a, b, "--lenient", "--json")
    assert result.json()["skipped"] == {"duplicate pid": 1}
    assert result.json()["playlists"] == 3


def test_empty_archive_and_folder(cli, tmp_path):
    empty_zip = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("README.md", "nothing here")
    cli("build-db", tmp_path / "out.db", empty_zip).assert_error("no mpd.slice.*.json files")
    (tmp_path / "empty").mkdir()
    cli("build-db", tmp_path / "out.db", tmp_path / "empty").assert_error(
        "no mpd.slice.*.json files"
    )
    garbage = tmp_path / "broken.zip"
    garbage.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    cli("build-db", tmp_path / "out.db", garbage).assert_error("not an MPD zip archive")
    assert not (tmp_path / "out.db").exists()


def test_wrong_md5(cli, mpd_dir, tmp_path):
    copy = tmp_path / "mpd"
    shutil.copytree(mpd_dir, copy)
    slice_path = copy / "data/mpd.slice.1000-1999.json"
    slice_path.write_bytes(slice_path.read_bytes() + b"\n")  # same JSON, different bytes
    cli("verify", copy).assert_error("mpd.slice.1000-1999.json: md5 mismatch")
    cli("build-db", tmp_path / "out.db", copy, "--verify-md5").assert_error("md5 mismatch")
    assert not (tmp_path / "out.db").exists()
    assert leftovers(tmp_path) == []
    # Without --verify-md5 the (still valid) JSON builds.
    assert cli("build-db", tmp_path / "out.db", copy).code == 0


def test_verify_checks_the_listing(cli, mpd_dir, tmp_path):
    assert cli("verify", mpd_dir.with_name("mpd.zip"), "--json").json() == {"slices": 3, "ok": True}
    assert cli("verify", mpd_dir / "data").code == 0
    copy = tmp_path / "mpd"
    shutil.copytree(mpd_dir, copy)
    (copy / "data/mpd.slice.0-999.json").unlink()
    cli("verify", copy).assert_error("lists data/mpd.slice.0-999.json, which is missing")
    (copy / "md5sums").unlink()
    cli("verify", copy).assert_error("no md5sums")
    (copy / "md5sums").write_text("not a checksum\n")
    cli("verify", copy).assert_error("not an md5sum line")


def test_existing_output_needs_force(cli, mpd_dir, tmp_path, real_playlists):
    out = tmp_path / "out.db"
    out.write_text("precious")
    source = write_slice(tmp_path / "in", real_playlists)
    cli("build-db", out, source).assert_error("already exists", "--force")
    assert out.read_text() == "precious"
    # A failed --force rebuild leaves the old database untouched.
    bad = write_slice(tmp_path / "bad", corrupt(json.loads(json.dumps(real_playlists)), "duration"))
    cli("build-db", out, bad, "--force").assert_error("duration_ms")
    assert out.read_text() == "precious"
    assert cli("build-db", out, source, "--force").code == 0
    assert sqlite3.connect(out).execute("SELECT COUNT(*) FROM playlists").fetchone()[0] == 5
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("name,danceability\nx,0.5\n", "no track id column"),
        ("track_id,name\n4uLU6hMCjMI75M1A2tKUQC,x\n", "no audio-feature columns"),
        (
            "track_id,danceability\n4uLU6hMCjMI75M1A2tKUQC,loud\n",
            "line 2: danceability 'loud' is not a number",
        ),
        (
            "track_id,danceability\n4uLU6hMCjMI75M1A2tKUQC,7\n",
            "line 2: danceability 7.0 is outside [0.0, 1.0]",
        ),
        (
            "track_id,danceability\nnot-an-id,0.5\n",
            "line 2: track_id 'not-an-id' is not a Spotify track id",
        ),
    ],
)
def test_bad_features_csv(cli, tmp_path, real_playlists, content, message):
    source = write_slice(tmp_path / "in", real_playlists)
    features = tmp_path / "features.csv"
    features.write_text(content)
    cli("build-db", tmp_path / "out.db", source, "--features", features).assert_error(
        str(features), message
    )
    assert not (tmp_path / "out.db").exists()


def test_features_accept_kaggle_layout_and_uris(tmp_path, real_playlists):
    source = write_slice(tmp_path / "in", real_playlists)
    first = real_playlists[0]["tracks"][0]["track_uri"]
    second = real_playlists[0]["tracks"][1]["track_uri"].split(":")[-1]
    features = tmp_path / "kaggle.csv"
    features.write_text(
        "id,name,artists,danceability,energy,key,loudness,mode,tempo\n"
        f"{first},a,b,0.5,0.6,5,-7.5,1,120.0\n"
        f"https://open.spotify.com/track/{second}?si=abc,c,d,0.1,0.2,,-20,0,90\n"
        f"{first},dup,dup,0.9,0.9,1,-1,0,80\n"
    )
    report = build_database(tmp_path / "out.db", [source], features=features)
    assert report.tracks_with_audio_features == 2
    conn = sqlite3.connect(tmp_path / "out.db")
    row = conn.execute(
        "SELECT danceability, key, mode, valence FROM tracks WHERE uri = ?", (first,)
    ).fetchone()
    assert row == (0.5, 5, 1, None)  # first row of a track wins; absent columns stay NULL


def test_bad_split_option(cli, tmp_path, real_playlists):
    source = write_slice(tmp_path / "in", real_playlists)
    cli("build-db", tmp_path / "out.db", source, "--split", "0.8,0.3,0.1").assert_error(
        "summing to 1"
    )
    cli("build-db", tmp_path / "out.db", source, "--split", "a,b,c").assert_error("--split")


def test_library_raises_user_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        build_database(tmp_path / "x.db", [tmp_path / "nothing"])
