"""The Spotify Web API client every Spotify feature shares, and its settings.

spotify_covers collects a cover dataset with the app's own credentials; spotify_account
acts for a user who logged in. Both get from here: the app's settings (environment over
.env), a spotipy client with bounded retries that logs no secrets, and playlist references.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import requests
import spotipy
from dotenv import dotenv_values
from spotipy.cache_handler import MemoryCacheHandler
from urllib3.util.retry import Retry

from pressedplay.errors import UserError

API_URL = "https://api.spotify.com/v1/"
ACCOUNTS_URL = "https://accounts.spotify.com"
# Point the client elsewhere (a proxy, the tests' local fake Spotify).
API_URL_ENV = "PRESSEDPLAY_SPOTIFY_API_URL"
ACCOUNTS_URL_ENV = "PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL"
ID_ENV, SECRET_ENV = "SPOTIFY_CLIENT_ID", "SPOTIFY_CLIENT_SECRET"
REDIRECT_ENV = "SPOTIFY_REDIRECT_URI"  # the user login's redirect, registered for the app
EXAMPLE_REDIRECT = "http://127.0.0.1:8888/callback"

# A 429 asking for a longer wait than this stops the run (resumable) instead of sleeping.
MAX_RETRY_AFTER = 120.0

_PLAYLIST_ID = r"(?P<id>[0-9A-Za-z]{22})"
_PLAYLIST_URL = re.compile(
    r"(?:https?://)?open\.spotify\.com/(?:intl-[A-Za-z-]+/)?(?:user/[^/]+/)?playlist/"
    rf"{_PLAYLIST_ID}/?(?:[?#].*)?"
)
_PLAYLIST_URI = re.compile(rf"spotify:(?:user:[^:]+:)?playlist:{_PLAYLIST_ID}")
_BARE_ID = re.compile(_PLAYLIST_ID)


class WaitTooLong(Exception):
    """Raised from inside urllib3's retry loop when Spotify asks for a very long pause."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Retry-After {seconds:.0f} s")
        self.seconds = seconds


class BoundedRetry(Retry):
    """urllib3's retry (Retry-After honoured on 429/503, backoff otherwise), but bounded."""

    def sleep_for_retry(self, response) -> bool:
        wait = self.get_retry_after(response)
        if wait is not None and wait > MAX_RETRY_AFTER:
            raise WaitTooLong(wait)
        return super().sleep_for_retry(response)


class _HideSecrets(logging.Filter):
    """spotipy logs request headers (the client secret in Basic auth, the bearer token) at
    DEBUG, and every HTTP error at ERROR; callers report those errors themselves."""

    _drop = ("Authorization", "Bearer ", "Basic ", "HTTP Error for", "Max Retries")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self._drop)


def quiet_spotipy() -> None:
    """Keep secrets and already-reported errors out of spotipy's logs (idempotent)."""
    for name in ("spotipy.client", "spotipy.oauth2", "spotipy.util"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideSecrets) for f in logger.filters):
            logger.addFilter(_HideSecrets())


def http_session(
    retries: int,
    backoff_factor: float,
    retry_class: type[BoundedRetry] = BoundedRetry,
    methods: frozenset[str] = frozenset({"GET", "POST"}),
) -> requests.Session:
    """A session retrying 429 and 5xx answers to `methods` at most `retries` times."""
    retry = retry_class(
        total=retries,
        read=False,
        status=retries,
        backoff_factor=backoff_factor,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=methods,
    )
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def make_client(
    client_id: str,
    client_secret: str,
    *,
    api_url: str = API_URL,
    accounts_url: str = ACCOUNTS_URL,
    retries: int = 4,
    backoff_factor: float = 0.5,
    timeout: float = 15.0,
) -> spotipy.Spotify:
    """A spotipy client with client-credentials auth (public playlists need no user login),
    the token kept in memory (no .cache file), and bounded retries on 429 and 5xx."""
    quiet_spotipy()
    session = http_session(retries, backoff_factor)
    auth = spotipy.SpotifyClientCredentials(
        client_id,
        client_secret,
        requests_session=session,
        requests_timeout=timeout,
        cache_handler=MemoryCacheHandler(),
    )
    auth.OAUTH_TOKEN_URL = accounts_url.rstrip("/") + "/api/token"
    return api_client(auth, session, api_url, timeout)


def api_client(
    auth: spotipy.oauth2.SpotifyAuthBase, session: requests.Session, api_url: str, timeout: float
) -> spotipy.Spotify:
    """A spotipy client sending its API calls through `session` to `api_url`."""
    client = spotipy.Spotify(auth_manager=auth, requests_session=session, requests_timeout=timeout)
    client.prefix = api_url.rstrip("/") + "/"
    return client


def client_from_env(env_file: Path | None = Path(".env")) -> spotipy.Spotify:
    """A client from SPOTIFY_CLIENT_ID/SECRET in the environment or, failing that, env_file.

    The environment wins over the file. PRESSEDPLAY_SPOTIFY_API_URL and
    PRESSEDPLAY_SPOTIFY_ACCOUNTS_URL replace Spotify's base URLs. Nothing is printed.
    """
    settings = read_settings(env_file, (ID_ENV, SECRET_ENV))
    return make_client(
        settings[ID_ENV],
        settings[SECRET_ENV],
        api_url=settings.get(API_URL_ENV, API_URL),
        accounts_url=settings.get(ACCOUNTS_URL_ENV, ACCOUNTS_URL),
    )


def read_settings(env_file: Path | None, required: Sequence[str]) -> dict[str, str]:
    """The environment over env_file's values; a missing required one is a UserError."""
    settings = {}
    if env_file is not None and Path(env_file).is_file():
        settings = {k: v for k, v in dotenv_values(env_file).items() if v}
    settings.update({k: v for k, v in os.environ.items() if v})
    missing = [name for name in required if name not in settings]
    if missing:
        where = f"the environment or {env_file}" if env_file is not None else "the environment"
        redirect = (
            f"; {REDIRECT_ENV} is a redirect URI registered there, e.g. {EXAMPLE_REDIRECT}"
            if REDIRECT_ENV in missing
            else ""
        )
        raise UserError(
            f"Spotify credentials missing: set {' and '.join(missing)} in {where} "
            f"(from your app at https://developer.spotify.com/dashboard{redirect})"
        )
    return settings


def parse_playlist(ref: str) -> str:
    """The playlist id in an open.spotify.com URL, a spotify:playlist: URI or a bare id."""
    text = ref.strip()
    for pattern in (_PLAYLIST_URL, _PLAYLIST_URI, _BARE_ID):
        match = pattern.fullmatch(text)
        if match:
            return match["id"]
    raise UserError(
        f"{ref!r} is not a Spotify playlist: give an open.spotify.com/playlist/ URL, "
        "a spotify:playlist: URI or a 22-character playlist id"
    )
