"""Act for the user's Spotify account (`generate --spotify`, the web page's Save button).

The authorization-code login, kept between runs in a token file only its owner can read;
the user's top artists' genres (the genre filter); and a private playlist holding the
picked tracks, with the picture, converted to a cover Spotify accepts, as its image.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import requests
import spotipy
from PIL import Image
from spotipy.cache_handler import CacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError

from pressedplay import images, inputs
from pressedplay.atomic import replacing
from pressedplay.errors import UserError
from pressedplay.inputs import TRACK_ID
from pressedplay.paths import data_home
from pressedplay.spotify import (
    ACCOUNTS_URL,
    ACCOUNTS_URL_ENV,
    API_URL,
    API_URL_ENV,
    ID_ENV,
    REDIRECT_ENV,
    SECRET_ENV,
    BoundedRetry,
    WaitTooLong,
    api_client,
    http_session,
    quiet_spotipy,
    read_settings,
)

# Three permissions, asked for once at login: the top artists (genres for the filter),
# private playlists, and the playlist cover.
USER_SCOPES = ("user-top-read", "playlist-modify-private", "ugc-image-upload")
ADD_BATCH = 100  # POST /playlists/{id}/items takes at most 100 URIs
MAX_COVER_PAYLOAD = 256 * 1024  # Spotify's limit on the base64 text of a playlist cover
COVER_SIDE = 640  # the largest size Spotify lists covers in
_COVER_QUALITIES = (90, 80, 70)  # below 70 a smaller size looks better
PLAYLIST_URL = "https://open.spotify.com/playlist/"


def token_cache_path() -> Path:
    """Where the user's login is kept between runs; delete it to log in again."""
    return data_home() / "spotify-user-token.json"


class TokenFile(CacheHandler):
    """spotipy's token cache as one file, replaced atomically and readable by its owner only
    (spotipy's own CacheFileHandler writes in place with the default permissions)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def get_cached_token(self) -> dict | None:
        try:
            token = inputs.read_json(self.path)
        except inputs.InputError:
            return None  # missing or damaged: only means logging in again
        return token if isinstance(token, dict) else None

    def save_token_to_cache(self, token_info: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(self.path) as tmp:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # owner only
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(token_info, fh)


class _UserRetry(BoundedRetry):
    """Retries a POST only after a 429 (refused unprocessed): a POST that failed with a 5xx
    may still have created the playlist or added the tracks, and repeating it doubles them."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method == "POST" and status_code != 429:
            return False
        return super().is_retry(method, status_code, has_retry_after)


def make_user_client(
    client_id: str,
    client_secret: str,
    redirect_uri: str,
    *,
    api_url: str = API_URL,
    accounts_url: str = ACCOUNTS_URL,
    cache_path: Path | None = None,
    open_browser: bool = True,
    retries: int = 4,
    backoff_factor: float = 0.5,
    timeout: float = 15.0,
) -> spotipy.Spotify:
    """A spotipy client acting for a user (authorization-code login with USER_SCOPES).

    The login is kept in `cache_path` (default token_cache_path()) and refreshed from there;
    only the first call without one opens the browser at Spotify's consent page.
    """
    quiet_spotipy()
    session = http_session(retries, backoff_factor, _UserRetry, frozenset({"GET", "POST", "PUT"}))
    auth = spotipy.SpotifyOAuth(
        client_id,
        client_secret,
        redirect_uri,
        scope=list(USER_SCOPES),
        cache_handler=TokenFile(cache_path or token_cache_path()),
        requests_session=session,
        requests_timeout=timeout,
        open_browser=open_browser,
    )
    accounts = accounts_url.rstrip("/")
    auth.OAUTH_AUTHORIZE_URL = accounts + "/authorize"
    auth.OAUTH_TOKEN_URL = accounts + "/api/token"
    return api_client(auth, session, api_url, timeout)


def user_client(env_file: Path | None = Path(".env")) -> spotipy.Spotify:
    """A user client from SPOTIFY_CLIENT_ID/SECRET/REDIRECT_URI (environment over env_file);
    the base URLs are overridable as for client_from_env."""
    settings = read_settings(env_file, (ID_ENV, SECRET_ENV, REDIRECT_ENV))
    return make_user_client(
        settings[ID_ENV],
        settings[SECRET_ENV],
        settings[REDIRECT_ENV],
        api_url=settings.get(API_URL_ENV, API_URL),
        accounts_url=settings.get(ACCOUNTS_URL_ENV, ACCOUNTS_URL),
    )


def login_url(sp: spotipy.Spotify) -> str | None:
    """The consent page the user must visit before the next call, or None when the cached
    login is valid (refreshing it if it expired). Lets a CLI say what is about to happen."""
    auth = sp.auth_manager
    with user_errors(sp):
        if auth.validate_token(auth.cache_handler.get_cached_token()) is not None:
            return None
    return auth.get_authorize_url()


@contextmanager
def user_errors(sp: spotipy.Spotify) -> Iterator[None]:
    """What Spotify answered to a user-account call, as one sentence saying what to do."""
    cache = getattr(sp.auth_manager.cache_handler, "path", token_cache_path())
    again = f"to log in again, delete {cache} and rerun"
    try:
        yield
    except SpotifyOauthError as exc:
        raise UserError(
            f"Spotify refused the login ({exc.error or 'no reason given'}): check {ID_ENV}, "
            f"{SECRET_ENV} and {REDIRECT_ENV}; {again}"
        ) from None
    except WaitTooLong as exc:
        raise UserError(
            f"Spotify asks to wait {exc.seconds:.0f} s before the next request (rate limit); "
            "try again later"
        ) from None
    except SpotifyException as exc:
        where = exc.msg.split(":\n")[0].split("?")[0]
        if exc.http_status == 401:
            raise UserError(f"Spotify refused the login token (401) for {where}; {again}") from None
        if exc.http_status == 403:
            raise UserError(
                f"Spotify answered 403 for {where}: the login lacks a permission "
                f"({', '.join(USER_SCOPES)}) or, for an app in development mode, the account "
                f"is not on the app's user list; {again}"
            ) from None
        if exc.http_status == 429:  # spotipy's word for any exhausted retry
            raise UserError(
                f"Spotify kept failing after retries ({exc.reason or 'rate limited'}); "
                "try again later"
            ) from None
        raise UserError(f"Spotify answered {exc.http_status} for {where}") from None
    except requests.RequestException as exc:
        raise UserError(f"could not reach Spotify ({type(exc).__name__})") from None
    except OSError as exc:  # the login's local redirect server, or the token file
        raise UserError(f"Spotify login failed: {exc}") from None


def top_artist_genres(sp: spotipy.Spotify, limit: int = 20) -> list[str]:
    """The genres of the user's top artists, most artists first (ties: the higher-ranked
    artist's first). Empty when Spotify gives no genres, as for development-mode apps since
    2026."""
    if not 1 <= limit <= 50:
        raise UserError(f"top artists: limit must be 1-50, not {limit}")
    with user_errors(sp):
        page = sp.current_user_top_artists(limit=limit, time_range="medium_term")
    counts: Counter[str] = Counter()
    for artist in (page or {}).get("items") or []:
        counts.update(list(dict.fromkeys(g for g in (artist or {}).get("genres") or [] if g)))
    return sorted(counts, key=lambda genre: -counts[genre])  # stable: first seen first


def _payload_size(jpeg_bytes: int) -> int:
    return 4 * ((jpeg_bytes + 2) // 3)  # base64 length


def _is_cover(data: bytes, decoded: Image.Image) -> bool:
    """A square JPEG of at most COVER_SIDE px, upright without EXIF help, that fits."""
    with Image.open(io.BytesIO(data)) as header:
        upright = header.getexif().get(0x0112, 1) == 1  # EXIF orientation: none needed
        is_jpeg = header.format == "JPEG" and header.mode in ("RGB", "L")  # not CMYK
    width, height = decoded.size
    return (
        is_jpeg
        and upright
        and width == height <= COVER_SIDE
        and _payload_size(len(data)) <= MAX_COVER_PAYLOAD
    )


def cover_jpeg(image_bytes: bytes) -> bytes:
    """The image as a square JPEG whose base64 fits Spotify's 256 KB cover limit.

    Centre-cropped to a square (Spotify shows covers square), at most 640 px, then lower
    JPEG quality and, if that is not enough, a smaller size until it fits. A JPEG that
    already is such a cover comes back unchanged, so converting twice loses nothing.
    """
    image = images.decode(image_bytes)
    if _is_cover(image_bytes, image):
        return image_bytes
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    size = min(side, COVER_SIDE)
    while True:
        scaled = square.resize((size, size), Image.Resampling.LANCZOS)
        for quality in _COVER_QUALITIES:
            buffer = io.BytesIO()
            scaled.save(buffer, "JPEG", quality=quality, optimize=True)
            if _payload_size(buffer.tell()) <= MAX_COVER_PAYLOAD:
                return buffer.getvalue()
        size = max(1, size * 3 // 4)


def create_playlist(
    sp: spotipy.Spotify,
    name: str,
    description: str,
    track_ids: Sequence[str],
    cover: bytes | None = None,
) -> dict:
    """A private playlist in the user's account holding the tracks, with `cover` (any image
    pressedplay can read) as its picture: {"id", "url", "tracks", "cover", "warnings"}.

    The cover is converted before anything is created, so a bad image creates nothing. A
    refused cover upload is a warning: the playlist is there and usable without it.
    """
    if not name.strip():
        raise UserError("a playlist needs a name")
    if not track_ids:
        raise UserError("no tracks to put in a playlist")
    bad = [t for t in track_ids if not TRACK_ID.fullmatch(t)]
    if bad:
        raise UserError(f"{bad[0]!r} is not a Spotify track id (22 letters and digits)")
    payload = base64.b64encode(cover_jpeg(cover)).decode("ascii") if cover is not None else None
    uris = [f"spotify:track:{t}" for t in track_ids]
    with user_errors(sp):
        created = sp.current_user_playlist_create(name, public=False, description=description)
    pid = created["id"]
    url = (created.get("external_urls") or {}).get("spotify") or PLAYLIST_URL + pid
    added = 0
    try:
        with user_errors(sp):
            for start in range(0, len(uris), ADD_BATCH):
                sp.playlist_add_items(pid, uris[start : start + ADD_BATCH])
                added = min(len(uris), start + ADD_BATCH)
    except UserError as exc:
        raise UserError(
            f"{exc} (the playlist {url} was created with {added} of {len(uris)} tracks)"
        ) from None
    warnings_: list[str] = []
    if payload is not None:
        try:
            with user_errors(sp):
                sp.playlist_upload_cover_image(pid, payload)
        except UserError as exc:
            warnings_.append(f"the cover was not uploaded: {exc}")
    return {
        "id": pid,
        "url": url,
        "tracks": added,
        "cover": payload is not None and not warnings_,
        "warnings": warnings_,
    }
