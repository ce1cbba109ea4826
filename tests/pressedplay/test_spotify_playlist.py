"""The user's Spotify account through spotipy against the local fake: login, top artists'
genres, playlist creation with a cover."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import socket
import stat
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import fake_spotify as fs
import numpy as np
import pytest
from PIL import Image

from pressedplay.errors import UserError
from pressedplay.images import ImageError
from pressedplay.spotify_account import (
    MAX_COVER_PAYLOAD,
    USER_SCOPES,
    cover_jpeg,
    create_playlist,
    login_url,
    make_user_client,
    token_cache_path,
    top_artist_genres,
    user_client,
)

REDIRECT = "http://127.0.0.1:8888/callback"


def client_for(fake: fs.FakeSpotify, cache: Path):
    return make_user_client(
        fs.CLIENT_ID,
        fs.CLIENT_SECRET,
        REDIRECT,
        api_url=fake.api_url,
        accounts_url=fake.accounts_url,
        cache_path=cache,
        open_browser=False,
        backoff_factor=0,
    )


@pytest.fixture
def logged_in(fake_spotify, tmp_path):
    cache = tmp_path / "token.json"
    fs.seed_login(cache)
    return client_for(fake_spotify, cache)


def track_ids(n: int) -> list[str]:
    rng = random.Random(n)
    return [fs.spotify_id(rng) for _ in range(n)]


def noisy_image(width: int, height: int, fmt: str = "PNG", seed: int = 0, **save) -> bytes:
    """Random pixels: the worst case for JPEG size."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **save)
    return buffer.getvalue()


def fits(jpeg: bytes) -> bool:
    return len(base64.b64encode(jpeg)) <= MAX_COVER_PAYLOAD


# --- login ------------------------------------------------------------------------------
def test_login_by_authorization_code_is_cached_privately(fake_spotify, tmp_path) -> None:
    cache = tmp_path / "login" / "token.json"
    sp = client_for(fake_spotify, cache)
    url = login_url(sp)
    assert url is not None and url.startswith(f"{fake_spotify.accounts_url}/authorize?")
    query = parse_qs(urlsplit(url).query)
    assert query["client_id"] == [fs.CLIENT_ID] and query["redirect_uri"] == [REDIRECT]
    assert set(query["scope"][0].split()) == set(USER_SCOPES)
    # What spotipy does with the code the browser brings back to the redirect URI.
    sp.auth_manager.get_access_token(code=fs.AUTH_CODE, as_dict=False, check_cache=False)
    assert fake_spotify.token_grants == ["authorization_code"]
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert json.loads(cache.read_text())["refresh_token"] == fs.REFRESH_TOKEN
    assert [p.name for p in cache.parent.iterdir()] == ["token.json"]  # no temporary left
    assert login_url(sp) is None
    assert sp.me()["id"] == fs.USER_ID


def test_expired_login_is_refreshed_and_saved(fake_spotify, tmp_path) -> None:
    cache = tmp_path / "token.json"
    fs.seed_login(cache, expired=True)
    sp = client_for(fake_spotify, cache)
    assert sp.me()["id"] == fs.USER_ID
    assert fake_spotify.token_grants == ["refresh_token"]
    saved = json.loads(cache.read_text())
    assert saved["access_token"] == fs.USER_TOKEN and saved["expires_at"] > time.time() + 3000
    assert saved["refresh_token"] == fs.REFRESH_TOKEN  # kept though Spotify sent none


def test_revoked_login_says_how_to_log_in_again(fake_spotify, tmp_path) -> None:
    cache = tmp_path / "token.json"
    fs.seed_login(cache, expired=True, refresh="revoked")
    with pytest.raises(UserError, match="refused the login \\(invalid_grant\\)") as info:
        top_artist_genres(client_for(fake_spotify, cache))
    assert f"delete {cache}" in str(info.value)
    assert fs.CLIENT_SECRET not in str(info.value)


def test_damaged_token_cache_means_logging_in_again(fake_spotify, tmp_path) -> None:
    cache = tmp_path / "token.json"
    cache.write_text("{not json")
    assert login_url(client_for(fake_spotify, cache)) is not None


def test_user_client_needs_the_redirect_uri(fake_spotify, tmp_path, monkeypatch) -> None:
    for name in ("SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET", "SPOTIFY_REDIRECT_URI"):
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text(f"SPOTIFY_CLIENT_ID={fs.CLIENT_ID}\nSPOTIFY_CLIENT_SECRET={fs.CLIENT_SECRET}\n")
    with pytest.raises(UserError, match="set SPOTIFY_REDIRECT_URI in") as info:
        user_client(env)
    assert "http://127.0.0.1:8888/callback" in str(info.value)
    assert "SPOTIFY_CLIENT_ID" not in str(info.value)


def test_user_client_uses_the_token_cache_in_data_home(fake_spotify, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SPOTIFY_CLIENT_ID", fs.CLIENT_ID)
    monkeypatch.setenv("SPOTIFY_CLIENT_SECRET", fs.CLIENT_SECRET)
    monkeypatch.setenv("SPOTIFY_REDIRECT_URI", REDIRECT)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_API_URL", fake_spotify.api_url)
    monkeypatch.setenv("PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL", fake_spotify.accounts_url)
    assert token_cache_path() == tmp_path / "home" / "spotify-user-token.json"
    fs.seed_login(token_cache_path())
    sp = user_client(None)
    assert login_url(sp) is None and sp.me()["id"] == fs.USER_ID


# --- top artists ------------------------------------------------------------------------
def test_top_artist_genres_empty_when_spotify_gives_none(fake_spotify, logged_in) -> None:
    fake_spotify.top_artists = [fs.Artist("no field"), fs.Artist("empty list", [])]
    assert top_artist_genres(logged_in) == []
    (call,) = fake_spotify.calls("/v1/me/top/artists", 200)
    assert call.query["limit"] == "20" and call.query["time_range"] == "medium_term"


def test_top_artist_genres_most_artists_first(fake_spotify, logged_in) -> None:
    fake_spotify.top_artists = [
        fs.Artist("a", ["indie soul", "neo soul"]),
        fs.Artist("b", ["dark trap", "trap"]),
        fs.Artist("c", ["trap", "trap", "rap"]),  # a genre counts once per artist
        fs.Artist("d", ["neo soul"]),
    ]
    assert top_artist_genres(logged_in) == ["neo soul", "trap", "indie soul", "dark trap", "rap"]
    assert top_artist_genres(logged_in, limit=1) == ["indie soul", "neo soul"]
    with pytest.raises(UserError, match="limit must be 1-50"):
        top_artist_genres(logged_in, limit=51)


def test_top_artists_without_permission(fake_spotify, logged_in) -> None:
    fake_spotify.granted_scopes.discard("user-top-read")
    with pytest.raises(UserError, match=r"answered 403 for .*/v1/me/top/artists: the login lacks"):
        top_artist_genres(logged_in)


def test_an_app_token_is_not_a_login(fake_spotify, tmp_path) -> None:
    cache = tmp_path / "token.json"
    fs.seed_login(cache)
    cache.write_text(cache.read_text().replace(fs.USER_TOKEN, fs.TOKEN))
    with pytest.raises(UserError, match="refused the login token \\(401\\)"):
        top_artist_genres(client_for(fake_spotify, cache))


# --- playlist creation ------------------------------------------------------------------
def test_create_playlist_private_in_batches_with_cover(fake_spotify, logged_in) -> None:
    ids = track_ids(250)
    image = noisy_image(900, 600, "PNG")
    result = create_playlist(logged_in, "pressedplay: beach", "for a picture", ids, image)
    (made,) = fake_spotify.created.values()
    assert result == {
        "id": made.id,
        "url": f"https://open.spotify.com/playlist/{made.id}",
        "tracks": 250,
        "cover": True,
        "warnings": [],
    }
    assert (made.name, made.description, made.public) == (
        "pressedplay: beach",
        "for a picture",
        False,
    )
    assert made.uris == [f"spotify:track:{t}" for t in ids]
    posts = [r for r in fake_spotify.calls(f"/v1/playlists/{made.id}/items") if r.method == "POST"]
    assert len(posts) == 3  # 100 + 100 + 50
    with Image.open(io.BytesIO(made.cover)) as cover:
        assert cover.format == "JPEG" and cover.size == (600, 600)
    assert made.cover == cover_jpeg(image)


def test_refused_cover_is_a_warning_not_a_failure(fake_spotify, logged_in) -> None:
    fake_spotify.granted_scopes.discard("ugc-image-upload")
    result = create_playlist(logged_in, "mix", "", track_ids(3), noisy_image(64, 64))
    (made,) = fake_spotify.created.values()
    assert len(made.uris) == 3 and made.cover is None
    assert result["cover"] is False and result["tracks"] == 3
    (warning,) = result["warnings"]
    assert warning.startswith("the cover was not uploaded: Spotify answered 403")


def test_without_cover_nothing_is_uploaded(fake_spotify, logged_in) -> None:
    result = create_playlist(logged_in, "mix", "", track_ids(2), None)
    assert result["cover"] is False and result["warnings"] == []
    assert not [r for r in fake_spotify.requests if r.method == "PUT"]


def test_rate_limited_batch_is_retried_once(fake_spotify, logged_in) -> None:
    fake_spotify.throttle(1, "0", path="/v1/playlists/")
    create_playlist(logged_in, "mix", "", track_ids(120), None)
    (made,) = fake_spotify.created.values()
    assert len(made.uris) == 120  # nothing added twice
    assert len(fake_spotify.calls("/v1/playlists/", 429)) == 1


def test_failed_batch_is_not_repeated_and_names_the_playlist(fake_spotify, logged_in) -> None:
    """A POST that failed with 500 may have been applied: repeating it could add twice."""
    fake_spotify.fail_next("POST", "/v1/playlists/", 500)
    with pytest.raises(UserError, match="answered 500") as info:
        create_playlist(logged_in, "mix", "", track_ids(150), None)
    (made,) = fake_spotify.created.values()
    assert f"https://open.spotify.com/playlist/{made.id} was created with 0 of 150" in str(
        info.value
    )
    assert len([r for r in fake_spotify.requests if r.path.endswith("/items")]) == 1


def test_long_rate_limit_stops_with_a_clear_error(fake_spotify, logged_in) -> None:
    fake_spotify.throttle(1, "3600", path="/v1/me/playlists")
    with pytest.raises(UserError, match="wait 3600 s"):
        create_playlist(logged_in, "mix", "", track_ids(1), None)
    assert fake_spotify.created == {}


@pytest.mark.parametrize(
    ("name", "ids", "message"),
    [
        (" ", track_ids(2), "needs a name"),
        ("mix", [], "no tracks"),
        ("mix", ["short"], "'short' is not a Spotify track id"),
    ],
)
def test_bad_requests_create_nothing(fake_spotify, logged_in, name, ids, message) -> None:
    with pytest.raises(UserError, match=message):
        create_playlist(logged_in, name, "", ids, None)
    assert fake_spotify.requests == []


def test_unreadable_cover_creates_nothing(fake_spotify, logged_in) -> None:
    with pytest.raises(ImageError, match="not an image"):
        create_playlist(logged_in, "mix", "", track_ids(2), b"<html>not a picture</html>")
    assert fake_spotify.requests == []


# --- the cover --------------------------------------------------------------------------
def test_cover_jpeg_shrinks_until_it_fits() -> None:
    big = noisy_image(640, 800, "PNG", seed=3)  # cropped, not scaled: the noise stays
    jpeg = cover_jpeg(big)
    assert fits(jpeg)
    with Image.open(io.BytesIO(jpeg)) as image:
        assert image.format == "JPEG" and image.width == image.height < 640
    # Random noise at 640 px does not fit even at the lowest quality: the size went down.
    assert not fits(cover_jpeg_at(big, 640, 70))


def cover_jpeg_at(data: bytes, side: int, quality: int) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        square = image.convert("RGB").crop((0, 0, min(image.size), min(image.size)))
        buffer = io.BytesIO()
        square.resize((side, side)).save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def test_cover_jpeg_crops_the_centre_square() -> None:
    image = Image.new("RGB", (300, 100), (255, 0, 0))
    image.paste((0, 0, 255), (100, 0, 200, 100))  # blue middle third
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    with Image.open(io.BytesIO(cover_jpeg(buffer.getvalue()))) as cover:
        assert cover.size == (100, 100)
        red, _, blue = cover.convert("RGB").getpixel((50, 50))
        assert blue > 200 and red < 60


def test_cover_jpeg_is_idempotent_and_keeps_fitting_covers() -> None:
    once = cover_jpeg(noisy_image(300, 300, "JPEG", quality=95))
    assert cover_jpeg(once) == once
    fine = noisy_image(200, 200, "JPEG", quality=80)
    assert cover_jpeg(fine) == fine


def test_cover_jpeg_re_encodes_what_spotify_may_not_show() -> None:
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to show"
    Image.new("RGB", (200, 200), (10, 20, 30)).save(rotated, "JPEG", exif=exif)
    assert cover_jpeg(rotated.getvalue()) != rotated.getvalue()
    cmyk = io.BytesIO()
    Image.new("CMYK", (100, 100), (0, 255, 0, 0)).save(cmyk, "JPEG")
    with Image.open(io.BytesIO(cover_jpeg(cmyk.getvalue()))) as cover:
        assert cover.mode == "RGB"


@pytest.mark.parametrize("data", [b"", b"GIF89a broken", b"\x00" * 100])
def test_cover_jpeg_refuses_non_images(data) -> None:
    with pytest.raises(ImageError):
        cover_jpeg(data)


def test_secrets_stay_out_of_spotipys_debug_log(fake_spotify, tmp_path, caplog) -> None:
    cache = tmp_path / "token.json"
    fs.seed_login(cache, expired=True)
    caplog.set_level(logging.DEBUG)
    sp = client_for(fake_spotify, cache)
    create_playlist(sp, "mix", "", track_ids(2), noisy_image(32, 32))
    assert fake_spotify.token_grants == ["refresh_token"] and fake_spotify.created
    assert "RESULTS" in caplog.text  # spotipy did log at DEBUG
    basic = base64.b64encode(f"{fs.CLIENT_ID}:{fs.CLIENT_SECRET}".encode()).decode()
    for secret in (fs.CLIENT_SECRET, basic, fs.USER_TOKEN, fs.REFRESH_TOKEN):
        assert secret not in caplog.text


def test_login_server_port_in_use_is_a_user_error(fake_spotify, tmp_path) -> None:
    """The first login listens on the redirect URI's port; another program holds it."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        sp = make_user_client(
            fs.CLIENT_ID,
            fs.CLIENT_SECRET,
            f"http://127.0.0.1:{port}/callback",
            api_url=fake_spotify.api_url,
            accounts_url=fake_spotify.accounts_url,
            cache_path=tmp_path / "token.json",
        )
        with pytest.raises(UserError, match=r"Spotify login failed: .*in use"):
            top_artist_genres(sp)
    assert fake_spotify.requests == []
