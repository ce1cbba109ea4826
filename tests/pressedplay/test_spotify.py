"""The Spotify collector, end to end through spotipy against a local fake Web API."""

from __future__ import annotations

import base64
import csv
import json
import logging
import random
import sqlite3
import time
from pathlib import Path

import fake_spotify as fs
import pytest

from pressedplay import catalog_csv
from pressedplay.dataset import partial_path
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.spotify import make_client, parse_playlist
from pressedplay.spotify_covers import collect

TIDY_HEADER = (
    "track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
    "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,"
    "danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,"
    "liveness,valence,tempo,duration_ms"
).split(",")


def client(fake: fs.FakeSpotify, secret: str = fs.CLIENT_SECRET, **kw) -> object:
    return make_client(
        fs.CLIENT_ID, secret, api_url=fake.api_url, accounts_url=fake.accounts_url, **kw
    )


def make_catalog(tmp_path: Path, monkeypatch, tracks: list[fs.Track], shift: float = 0.0) -> str:
    """A catalog in TidyTuesday layout holding these tracks (features moved by `shift`)."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    path = tmp_path / "songs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, TIDY_HEADER)
        writer.writeheader()
        for t in tracks:
            row = dict.fromkeys(TIDY_HEADER, "")
            row.update(track_id=t.id, track_name=t.name, track_artist=t.artist)
            row.update(playlist_genre="pop", playlist_subgenre="dance pop", key="5", mode="1")
            row.update(tempo="120", duration_ms="200000", track_popularity="50")
            for name in NAMES:
                row[name] = str(_shifted(t, name, shift))
            writer.writerow(row)
    catalog_csv.import_csv(path, "spotitest")
    return "spotitest"


def _shifted(t: fs.Track, name: str, shift: float) -> float:
    value = t.features[name]
    return round(value - shift * 10, 4) if name == "loudness" else round(value * (1 - shift), 4)


def with_features(fake: fs.FakeSpotify) -> list[fs.Track]:
    return [t for t in fake.tracks if t.features is not None]


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return sorted(conn.execute(sql).fetchall())
    finally:
        conn.close()


def content(db: Path) -> dict:
    """Everything a build stores that must not depend on how the build was run."""
    return {
        "covers": rows(db, "SELECT sha256, origin, width, height, split, image FROM covers"),
        "tracks": rows(db, "SELECT * FROM tracks"),
        "pairs": rows(
            db, "SELECT sha256, track_id FROM pairs JOIN covers ON covers.id = pairs.cover_id"
        ),
        "skipped": rows(db, "SELECT * FROM skipped"),
        "stats": rows(db, "SELECT * FROM feature_stats"),
        "done": rows(db, "SELECT * FROM done"),
    }


def all_refs(fake: fs.FakeSpotify) -> list[str]:
    """The fake's playlists, each written in a different accepted form."""
    forms = [
        "https://open.spotify.com/playlist/{}?si=abc123",
        "spotify:playlist:{}",
        "{}",
        "open.spotify.com/intl-de/playlist/{}",
        "https://open.spotify.com/user/alice/playlist/{}",
    ]
    return [forms[i % len(forms)].format(pid) for i, pid in enumerate(fake.playlists)]


PID = "37i9dQZF1DXcBWIGoYBM5M"


@pytest.mark.parametrize(
    "ref",
    [
        f"https://open.spotify.com/playlist/{PID}",
        f"https://open.spotify.com/playlist/{PID}?si=8f2c1d",
        f"http://open.spotify.com/intl-pt/playlist/{PID}/",
        f"open.spotify.com/playlist/{PID}",
        f"spotify:playlist:{PID}",
        f"spotify:user:spotify:playlist:{PID}",
        f"  {PID} ",
    ],
)
def test_playlist_references_give_the_id(ref: str) -> None:
    assert parse_playlist(ref) == PID


@pytest.mark.parametrize(
    "ref",
    [
        f"https://open.spotify.com/album/{PID}",
        f"spotify:track:{PID}",
        "37i9dQZF1DXcBWIGoYBM5",  # 21 characters
        f"https://example.com/playlist/{PID}",
        "my favourite playlist",
        "",
    ],
)
def test_other_references_are_refused(ref: str) -> None:
    with pytest.raises(UserError, match="not a Spotify playlist"):
        parse_playlist(ref)


def test_collects_covers_and_spotify_features(fake_spotify, tmp_path) -> None:
    out = tmp_path / "covers.db"
    report = collect(out, playlists=all_refs(fake_spotify), client=client(fake_spotify))

    # 5 playlists x (7 own tracks, one without features, + 1 shared track)
    assert report["covers"] == 5
    assert report["tracks"] == 5 * 6 + 1
    assert report["pairs"] == 5 * 7
    assert report["skipped"] == {
        "episode (not a track)": 5,
        "local file": 5,
        "track without features": 5,
        "unavailable track": 5,
    }
    assert report["features_from"] == {"spotify": 31}  # the shared track asked for once
    assert report["warnings"] == []
    assert sum(s["covers"] for s in report["splits"].values()) == 5
    assert not partial_path(out).exists()

    # the largest listed image (160 px, listed second), stored as the bytes served
    covers = rows(out, "SELECT origin, width, height, image FROM covers")
    for origin, width, height, image in covers:
        pid = origin.removeprefix("spotify:playlist:")
        assert (width, height) == (160, 160)
        assert image == fake_spotify.playlists[pid].image_bytes(1)
    stored = {r[0]: r[1:] for r in rows(out, "SELECT * FROM tracks")}
    for t in with_features(fake_spotify):
        assert stored[t.id][:2] == (t.name, t.artist)
        assert stored[t.id][2:] == pytest.approx([t.features[n] for n in NAMES])
    # today's endpoint, paged (page size 3 on the fake), never the removed /tracks
    assert not fake_spotify.calls("/v1/playlists/", 404)
    assert all(not r.path.endswith("/tracks") for r in fake_spotify.requests)
    items = [r for r in fake_spotify.requests if r.path.endswith("/items")]
    assert len(items) == 5 * 4  # 11 items each (12 in the first): 4 pages of 3
    asked = [r.query["ids"].split(",") for r in fake_spotify.calls("/v1/audio-features")]
    assert sum(map(len, asked)) == len({i for ids in asked for i in ids}) == 5 * 7 + 1


def test_item_field_of_2026_responses_is_read(fake_spotify, tmp_path) -> None:
    fake_spotify.item_key = "item"
    report = collect(
        tmp_path / "c.db", playlists=list(fake_spotify.playlists), client=client(fake_spotify)
    )
    assert (report["covers"], report["pairs"]) == (5, 35)


def test_features_fall_back_to_the_catalog_once(
    fake_spotify, tmp_path, monkeypatch, capsys
) -> None:
    fake_spotify.audio_features_status = 403
    known = with_features(fake_spotify)
    missing = {known[1].id, known[2].id}  # in playlists but not in the catalog
    name = make_catalog(tmp_path, monkeypatch, [t for t in known if t.id not in missing], 0.5)

    report = collect(
        tmp_path / "c.db",
        playlists=list(fake_spotify.playlists),
        catalog=name,
        client=client(fake_spotify),
    )

    assert len(fake_spotify.calls("/v1/audio-features")) == 1  # refused once, never again
    assert len(report["warnings"]) == 1
    assert "audio features" in report["warnings"][0] and "catalog" in report["warnings"][0]
    assert capsys.readouterr().err.count("warning:") == 1
    assert report["features_from"] == {"catalog": 31 - 2}
    assert report["skipped"]["track without features"] == 5 + 2
    stored = {r[0]: r[3:] for r in rows(tmp_path / "c.db", "SELECT * FROM tracks")}
    for t in known:
        if t.id not in missing:
            assert stored[t.id] == pytest.approx([_shifted(t, n, 0.5) for n in NAMES])
    assert missing.isdisjoint(stored)


def test_without_a_catalog_the_fallback_says_how_to_get_one(
    fake_spotify, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "empty"))
    fake_spotify.audio_features_status = 404
    with pytest.raises(UserError, match="catalog download"):
        collect(
            tmp_path / "c.db", playlists=list(fake_spotify.playlists), client=client(fake_spotify)
        )


def test_a_mistyped_catalog_fails_before_any_request(fake_spotify, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no catalog named 'nope'"):
        collect(tmp_path / "c.db", playlists=[PID], catalog="nope", client=client(fake_spotify))
    assert fake_spotify.requests == []


def test_audio_features_are_asked_in_batches_of_100(tmp_path) -> None:
    with fs.build(seed=3, playlists=1, tracks_per_playlist=230) as fake:
        fake.page_size = 50
        report = collect(tmp_path / "c.db", playlists=list(fake.playlists), client=client(fake))
        sizes = [len(r.query["ids"].split(",")) for r in fake.calls("/v1/audio-features")]
    assert sizes == [100, 100, 31]
    assert report["pairs"] == 230


def test_a_short_audio_features_answer_leaves_the_rest_unpaired(tmp_path) -> None:
    """Fewer answers than ids: the unanswered tracks are counted, not lost to a KeyError."""
    with fs.build(seed=3, playlists=1, tracks_per_playlist=6) as fake:
        fake.audio_features_answers = 2
        report = collect(tmp_path / "c.db", playlists=list(fake.playlists), client=client(fake))
    assert 1 <= report["features_from"]["spotify"] == report["pairs"] <= 2
    assert report["skipped"]["track without features"] >= 4


def test_rate_limit_waits_for_retry_after_and_completes(fake_spotify, tmp_path) -> None:
    fake_spotify.throttle(2, retry_after="1", path="/v1/playlists/")
    start = time.monotonic()
    report = collect(
        tmp_path / "c.db", playlists=list(fake_spotify.playlists), client=client(fake_spotify)
    )
    elapsed = time.monotonic() - start

    assert len(fake_spotify.calls("/v1/playlists/", 429)) == 2
    assert elapsed >= 1.9  # waited Retry-After twice
    first = fake_spotify.requests[1:4]  # after the token: 429, 429, then the same call answered
    assert [r.status for r in first] == [429, 429, 200]
    assert len({r.path for r in first}) == 1
    assert (report["covers"], report["pairs"]) == (5, 35)


def test_a_very_long_retry_after_stops_without_waiting(fake_spotify, tmp_path) -> None:
    fake_spotify.throttle(1, retry_after="3600")
    start = time.monotonic()
    with pytest.raises(UserError, match="wait 3600 s"):
        collect(
            tmp_path / "c.db", playlists=list(fake_spotify.playlists), client=client(fake_spotify)
        )
    assert time.monotonic() - start < 5


def test_endless_rate_limiting_gives_up_after_bounded_retries(fake_spotify, tmp_path) -> None:
    fake_spotify.throttle(50, retry_after="0")
    with pytest.raises(UserError, match="kept failing after retries"):
        collect(
            tmp_path / "c.db",
            playlists=list(fake_spotify.playlists),
            client=client(fake_spotify, retries=3, backoff_factor=0),
        )
    assert len(fake_spotify.calls("/", 429)) == 4  # the first try and 3 retries
    assert not partial_path(tmp_path / "c.db").exists()  # nothing collected, nothing left


def test_user_playlists_closed_since_2026_is_said_clearly(fake_spotify, tmp_path, capsys) -> None:
    with pytest.raises(UserError, match="no playlists to collect"):
        collect(tmp_path / "c.db", user="alice", client=client(fake_spotify))
    err = capsys.readouterr().err
    assert err.count("warning:") == 1
    assert "GET /users/{id}/playlists" in err and "--playlist" in err

    first = next(iter(fake_spotify.playlists))
    report = collect(
        tmp_path / "c.db", user="alice", playlists=[first], client=client(fake_spotify)
    )
    assert report["covers"] == 1
    assert len(report["warnings"]) == 1
    assert len(fake_spotify.calls("/v1/users/")) == 2  # once per run


def test_user_playlists_where_still_served(fake_spotify, tmp_path) -> None:
    fake_spotify.user_playlists_status = 200
    report = collect(tmp_path / "c.db", user="alice", limit=4, client=client(fake_spotify))
    assert report["covers"] == 4
    assert report["playlists"] == {"listed": 4, "resumed": 0}


def test_search_skips_null_results_and_honours_limit(fake_spotify, tmp_path) -> None:
    report = collect(tmp_path / "c.db", query="mood", limit=4, client=client(fake_spotify))
    assert report["covers"] == 4
    searches = fake_spotify.calls("/v1/search")
    assert len(searches) >= 2  # null-padded pages of 3: more than one page needed
    assert all(int(r.query["limit"]) <= 10 and r.query["type"] == "playlist" for r in searches)
    origins = [r[0] for r in rows(tmp_path / "c.db", "SELECT origin FROM covers")]
    names = {fake_spotify.playlists[o.split(":")[-1]].name for o in origins}
    assert names == {"mood 0", "mood 1", "mood 2", "mood 3"}


def test_search_with_no_results(fake_spotify, tmp_path) -> None:
    with pytest.raises(UserError, match="no playlists to collect"):
        collect(tmp_path / "c.db", query="polka", client=client(fake_spotify))


def test_missing_playlists_and_covers_are_counted(fake_spotify, tmp_path) -> None:
    pids = list(fake_spotify.playlists)
    fake_spotify.playlists[pids[1]].sizes = []  # no cover
    fake_spotify.playlists[pids[2]].sizes = [(None, None)]  # an upload: no sizes given
    report = collect(
        tmp_path / "c.db", playlists=[*pids, "0000000000000000000000"], client=client(fake_spotify)
    )
    assert report["covers"] == 4
    assert report["skipped"]["playlist not found or private"] == 1
    assert report["skipped"]["playlist without cover"] == 1
    sizes = rows(tmp_path / "c.db", "SELECT width, height FROM covers")
    assert sizes.count((120, 120)) == 1


def test_no_source_and_bad_limit_are_refused(tmp_path) -> None:
    with pytest.raises(UserError, match="--playlist, --user or --query"):
        collect(tmp_path / "c.db")
    with pytest.raises(UserError, match="--limit"):
        collect(tmp_path / "c.db", query="x", limit=0)


def test_interrupted_by_server_failure_resumes_to_the_same_db(tmp_path) -> None:
    with fs.build() as fake:
        collect(tmp_path / "whole.db", playlists=list(fake.playlists), client=client(fake))

    out = tmp_path / "resumed.db"
    with fs.build() as fake:
        fake.fail_after_playlists = 2
        quick = client(fake, retries=2, backoff_factor=0)
        with pytest.raises(UserError, match="kept failing"):
            collect(out, playlists=list(fake.playlists), client=quick)
        assert not out.exists() and partial_path(out).exists()

        fake.fail_after_playlists = None
        before = len(fake.requests)
        report = collect(out, playlists=list(fake.playlists), client=quick)
        again = [r.path for r in fake.requests[before:] if r.path.endswith("/items")]

    assert report["playlists"] == {"listed": 5, "resumed": 2}
    done = list(fake.playlists)[:2]
    assert not any(pid in path for pid in done for path in again)  # not fetched again
    assert content(out) == content(tmp_path / "whole.db")


def test_interrupted_by_the_user_resumes_without_duplicates(fake_spotify, tmp_path) -> None:
    out = tmp_path / "c.db"
    pids = list(fake_spotify.playlists)

    def stop_after_three(n: int, seen=[]) -> None:  # noqa: B006 - counts calls
        seen.append(n)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(out, playlists=pids, client=client(fake_spotify), progress=stop_after_three)
    ticks: list[int] = []
    report = collect(out, playlists=pids, client=client(fake_spotify), progress=ticks.append)
    assert ticks == [1] * 5
    assert report["playlists"]["resumed"] == 3
    assert (report["covers"], report["pairs"]) == (5, 35)
    assert report["skipped"]["local file"] == 5  # counted once per playlist, not again

    with fs.build() as fresh:
        collect(tmp_path / "whole.db", playlists=list(fresh.playlists), client=client(fresh))
    assert content(out) == content(tmp_path / "whole.db")


def test_other_arguments_do_not_resume_a_partial_build(fake_spotify, tmp_path) -> None:
    out = tmp_path / "c.db"
    pids = list(fake_spotify.playlists)

    def interrupt(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        collect(out, playlists=pids, client=client(fake_spotify), progress=interrupt)
    with pytest.raises(UserError, match="--force"):
        collect(out, playlists=pids[:2], client=client(fake_spotify))
    report = collect(out, playlists=pids[:2], client=client(fake_spotify), force=True)
    assert report["covers"] == 2


def test_refused_credentials_never_show_the_secret(fake_spotify, tmp_path, capsys, caplog) -> None:
    secret = "wrong-secret-XYZZY-4711"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(UserError) as info:
        collect(tmp_path / "c.db", playlists=[PID], client=client(fake_spotify, secret=secret))
    message = str(info.value)
    assert "refused the app credentials" in message and "SPOTIFY_CLIENT_SECRET" in message
    encoded = base64.b64encode(f"{fs.CLIENT_ID}:{secret}".encode()).decode()
    captured = capsys.readouterr()
    for text in (message, caplog.text, captured.out, captured.err):
        assert secret not in text and encoded not in text


def test_tokens_and_secrets_stay_out_of_debug_logs(
    fake_spotify, tmp_path, caplog, monkeypatch
) -> None:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "empty"))
    caplog.set_level(logging.DEBUG)
    fake_spotify.audio_features_status = 403
    with pytest.raises(UserError):  # no catalog: stops after the refused audio features
        collect(
            tmp_path / "c.db",
            playlists=list(fake_spotify.playlists),
            catalog=None,
            client=client(fake_spotify),
        )
    encoded = base64.b64encode(f"{fs.CLIENT_ID}:{fs.CLIENT_SECRET}".encode()).decode()
    assert "Sending" in caplog.text or "RESULTS" in caplog.text  # spotipy did log at DEBUG
    for secret in (fs.CLIENT_SECRET, encoded, fs.TOKEN):
        assert secret not in caplog.text


def test_cover_without_tracks_with_features_is_counted(tmp_path) -> None:
    rng = random.Random(9)
    with fs.build(playlists=1) as fake:
        lonely = fs.Track(fs.spotify_id(rng), "no features", "nobody")
        fake.add_playlist(
            fs.Playlist(fs.spotify_id(rng), "quiet", "bob", [fs.track_item(lonely)], (1, 2, 3))
        )
        report = collect(tmp_path / "c.db", playlists=list(fake.playlists), client=client(fake))
    assert report["covers"] == 1
    assert report["skipped"]["cover without tracks with features"] == 1


@pytest.fixture
def spotify_env(fake_spotify, monkeypatch, tmp_path):
    """Credentials in a .env in the working folder; base URLs of the fake in the environment."""
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f"SPOTIFY_CLIENT_ID={fs.CLIENT_ID}\nSPOTIFY_CLIENT_SECRET={fs.CLIENT_SECRET}\n"
        "SPOTIFY_REDIRECT_URI=http://127.0.0.1:8888/callback\n"
    )
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL", fake_spotify.accounts_url)
    return fake_spotify


def test_client_from_env_reads_dotenv_and_base_urls(spotify_env, tmp_path) -> None:
    report = collect(tmp_path / "c.db", playlists=list(spotify_env.playlists))
    assert report["covers"] == 5
    assert spotify_env.calls("/api/token", 200)  # client credentials, against the fake


def test_environment_wins_over_dotenv(spotify_env, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", "from-the-environment-QQQ")
    with pytest.raises(UserError, match="refused the app credentials") as info:
        collect(tmp_path / "c.db", playlists=list(spotify_env.playlists))
    assert "QQQ" not in str(info.value)


def test_missing_credentials_are_named(spotify_env, tmp_path) -> None:
    (tmp_path / ".env").write_text(f"SPOTIFY_CLIENT_SECRET={fs.CLIENT_SECRET}\n")
    with pytest.raises(UserError, match="SPOTIFY_CLIENT_ID") as info:
        collect(tmp_path / "c.db", playlists=[PID])
    assert fs.CLIENT_SECRET not in str(info.value)
    assert "SPOTIFY_CLIENT_SECRET" not in str(info.value)  # that one was given
    assert spotify_env.requests == []


def test_cli_build_db_from_spotify_resumes_after_a_failure(
    spotify_env, tmp_path, monkeypatch, cli
) -> None:
    spotify_env.audio_features_status = 403
    name = make_catalog(tmp_path, monkeypatch, with_features(spotify_env))
    out = tmp_path / "covers.db"
    refs = [x for ref in all_refs(spotify_env) for x in ("--playlist", ref)]
    args = ["build-db", out, "--source", "spotify", *refs, "--catalog", name, "--json"]

    spotify_env.fail_after_playlists, spotify_env.fail_status = 2, 401
    failed = cli(*args)
    assert failed.code == 2
    assert failed.err.strip().splitlines()[-1].startswith("error: Spotify refused the access token")
    assert "Traceback" not in failed.err
    assert partial_path(out).exists() and not out.exists()

    spotify_env.fail_after_playlists = None
    done = cli(*args)
    assert done.code == 0, done.err
    report = json.loads(done.out)
    assert (report["covers"], report["pairs"]) == (5, 35)
    assert report["playlists"] == {"listed": 5, "resumed": 2}
    assert done.err.count("warning:") == 1 and "audio features" in done.err
    encoded = base64.b64encode(f"{fs.CLIENT_ID}:{fs.CLIENT_SECRET}".encode()).decode()
    for text in (failed.out, failed.err, done.out, done.err):
        assert fs.CLIENT_SECRET not in text and encoded not in text and fs.TOKEN not in text


def test_cli_refuses_a_bad_playlist_reference(spotify_env, tmp_path, cli) -> None:
    result = cli("build-db", tmp_path / "c.db", "--source", "spotify", "--playlist", "abc")
    assert result.code == 2
    assert result.err.startswith("error: 'abc' is not a Spotify playlist")
    assert spotify_env.requests == []
