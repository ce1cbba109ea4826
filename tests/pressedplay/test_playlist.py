"""Playlists for features: generate(), genres from the user's top artists, M3U, and the
`generate` command end to end (colour prior, a real catalog file, the fake Spotify)."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import fake_spotify as fs
import pytest
from PIL import Image

from pressedplay import catalog_csv, feedback
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.playlist import generate, genres_for_user, load_index, to_m3u
from pressedplay.spotify_account import make_user_client

SAMPLE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"
TIDYTUESDAY = ["edm", "rap", "r&b", "pop", "latin", "rock"]
QUERY = {
    "acousticness": 0.2,
    "danceability": 0.7,
    "energy": 0.8,
    "instrumentalness": 0.0,
    "liveness": 0.15,
    "loudness": -6.0,
    "speechiness": 0.08,
    "valence": 0.6,
}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(home))
    return home


@pytest.fixture
def default_catalog(home) -> Path:
    """The 300-row TidyTuesday sample as the default catalog."""
    return Path(catalog_csv.import_csv(SAMPLE)["path"])


def test_generate_returns_the_nearest_tracks(default_catalog) -> None:
    result = generate(QUERY, n=7)
    assert result["features"] == QUERY and result["genres"] is None
    assert result["catalog"] == str(default_catalog)
    tracks = result["tracks"]
    assert len(tracks) == 7
    assert set(tracks[0]) == {"id", "name", "artist", "genres", "distance", "url"}
    assert [t["distance"] for t in tracks] == sorted(t["distance"] for t in tracks)
    expected = load_index().search(QUERY, n=7)
    assert [t["id"] for t in tracks] == [h.id for h in expected]
    json.dumps(result)  # plain data


def test_generate_filters_genres_and_caps_artists(default_catalog) -> None:
    result = generate(QUERY, genres=["rap", "R&B"], n=25, max_per_artist=1)
    assert result["genres"] == ["rap", "R&B"]
    assert all({"rap", "r&b"} & set(t["genres"]) for t in result["tracks"])
    artists = [t["artist"] for t in result["tracks"]]
    assert len(artists) == len(set(artists)) == 25


def test_generate_without_a_catalog_says_how_to_get_one(home) -> None:
    with pytest.raises(UserError, match="pressedplay catalog download"):
        generate(QUERY)
    with pytest.raises(UserError, match="catalog import CSV` --name mine"):
        generate(QUERY, catalog="mine")
    with pytest.raises(UserError, match="no catalog file at"):
        generate(QUERY, catalog=home / "absent.db")


def test_the_index_is_loaded_once_per_file_version(default_catalog) -> None:
    first = load_index()
    assert load_index(default_catalog) is first
    time.sleep(0.01)
    catalog_csv.import_csv(SAMPLE, force=True)  # the file is replaced: load again
    assert load_index() is not first


def test_m3u_round_trips_through_feedback(default_catalog, tmp_path) -> None:
    result = generate(QUERY, n=4)
    text = to_m3u(result)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 9 and text.endswith("\n")
    first = result["tracks"][0]
    assert lines[1] == f"#EXTINF:-1,{first['artist']} - {first['name']}"
    assert lines[2] == f"https://open.spotify.com/track/{first['id']}"
    m3u = tmp_path / "mix.m3u"
    m3u.write_text(text)
    assert feedback.parse_playlist(str(m3u)) == (str(m3u), [t["id"] for t in result["tracks"]])
    as_json = tmp_path / "mix.json"
    as_json.write_text(json.dumps(result))
    assert feedback.parse_playlist(str(as_json))[1] == [t["id"] for t in result["tracks"]]


# --- genres from the user's Spotify account ---------------------------------------------
@pytest.fixture
def sp(fake_spotify, tmp_path):
    fs.seed_login(tmp_path / "token.json")
    return make_user_client(
        fs.CLIENT_ID,
        fs.CLIENT_SECRET,
        "http://127.0.0.1:8888/callback",
        api_url=fake_spotify.api_url,
        accounts_url=fake_spotify.accounts_url,
        cache_path=tmp_path / "token.json",
        open_browser=False,
    )


def test_no_genres_from_spotify_means_no_filter(fake_spotify, sp) -> None:
    fake_spotify.top_artists = [fs.Artist("a"), fs.Artist("b")]
    genres, note = genres_for_user(sp, TIDYTUESDAY)
    assert genres == [] and "no genres" in note and note.endswith("no genre filter")


def test_top_artist_genres_mapped_onto_the_catalog(fake_spotify, sp) -> None:
    fake_spotify.top_artists = [
        fs.Artist("a", ["dark trap", "trap latino"]),
        fs.Artist("b", ["indie soul"]),
        fs.Artist("c", ["uk drill", "polka"]),
    ]
    genres, note = genres_for_user(sp, TIDYTUESDAY)
    assert note is None
    assert genres == ["rap", "latin", "r&b"]  # rap from three names, then first seen


def test_user_mapping_is_applied(fake_spotify, sp) -> None:
    fake_spotify.top_artists = [fs.Artist("a", ["nightcore"])]
    assert genres_for_user(sp, TIDYTUESDAY)[0] == []
    assert genres_for_user(sp, TIDYTUESDAY, {"nightcore": ["edm"]}) == (["edm"], None)


def test_genres_that_match_nothing_are_named(fake_spotify, sp) -> None:
    fake_spotify.top_artists = [fs.Artist("a", ["polka", "filmi", "sean-nos", "yodeling"])]
    genres, note = genres_for_user(sp, TIDYTUESDAY)
    assert genres == []
    assert note.startswith("none of your top artists' genres (polka, filmi, sean-nos, yodeling)")
    assert note.endswith("(edm, rap, r&b, pop, latin, rock): no genre filter")


# --- the command ------------------------------------------------------------------------


def test_cli_generate_json(default_catalog, picture, cli) -> None:
    result = cli("generate", picture, "--model", "prior", "--n", "5", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data["features"]) == set(NAMES) and len(data["tracks"]) == 5
    assert data["tracks"] == generate(data["features"], n=5)["tracks"]
    assert "prior" in data["model"]


def test_cli_generate_m3u_and_genre(default_catalog, picture, cli) -> None:
    result = cli("generate", picture, "--model", "prior", "--genre", "rock", "--format", "m3u")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 1 + 2 * 20
    index = load_index()
    for line in lines[2::2]:
        assert "rock" in index.track_genres(index.ids.index(line.rsplit("/", 1)[1]))


def test_cli_generate_bad_input_is_one_line(home, picture, cli, tmp_path) -> None:
    missing = cli("generate", picture, "--model", "prior")
    assert missing.code == 2
    assert missing.err.startswith("error: no catalog named 'tidytuesday'")
    assert "pressedplay catalog download" in missing.err and "Traceback" not in missing.err
    catalog_csv.import_csv(SAMPLE)
    unknown = cli("generate", picture, "--model", "prior", "--genre", "jazz")
    assert unknown.code == 2 and unknown.err.count("\n") == 1
    assert "'jazz' is not in the catalog; its genres: " in unknown.err
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"<html>")
    corrupt = cli("generate", junk, "--model", "prior")
    assert corrupt.code == 2 and corrupt.err.startswith("error: ") and "not an image" in corrupt.err


def test_cli_generate_to_spotify_with_top_artist_genres(
    spotify_login, default_catalog, picture, cli
) -> None:
    spotify_login.top_artists = [fs.Artist("a", ["dark trap"]), fs.Artist("b", ["neo soul"])]
    result = cli("generate", picture, "--model", "prior", "--spotify", "--format", "json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["genres"] == ["rap", "r&b"]
    assert all({"rap", "r&b"} & set(t["genres"]) for t in data["tracks"])
    (made,) = spotify_login.created.values()
    assert made.public is False and "sunset" in made.name
    assert made.uris == [f"spotify:track:{t['id']}" for t in data["tracks"]]
    with Image.open(io.BytesIO(made.cover)) as cover:
        assert cover.format == "JPEG" and cover.size == (200, 200)
    assert data["spotify"]["url"] == f"https://open.spotify.com/playlist/{made.id}"
    assert data["spotify"]["url"] in result.err
    for secret in (fs.CLIENT_SECRET, fs.USER_TOKEN, fs.REFRESH_TOKEN):
        assert secret not in result.out + result.err


def test_cli_generate_to_spotify_without_genres_says_no_filter(
    spotify_login, default_catalog, picture, cli
) -> None:
    spotify_login.top_artists = [fs.Artist("a"), fs.Artist("b")]
    result = cli("generate", picture, "--model", "prior", "--spotify", "--n", "3")
    assert result.code == 0, result.err
    assert "no genre filter" in result.err
    (made,) = spotify_login.created.values()
    assert len(made.uris) == 3
