"""Collect a cover dataset from Spotify: each playlist's cover paired with its tracks' features.

Spotify still serves playlists, their items, search and cover images, but audio features
only to apps that had access before November 2024 and users' playlist lists only to apps
outside development mode (2026). So features come from Spotify while the app still gets
them and from the local catalog (pressedplay.catalog) once Spotify refuses, which is said
once and never asked again in that run. Everything goes through DatasetWriter, so an
interrupted collection resumes from OUT.partial without duplicates.

Acting for a user (`generate --spotify`) is the authorization-code login instead: the
user's top artists' genres, and a private playlist with the picture as its cover.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import re
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests
import spotipy
from dotenv import dotenv_values
from PIL import Image
from spotipy.cache_handler import CacheHandler, MemoryCacheHandler
from spotipy.exceptions import SpotifyException, SpotifyOauthError
from urllib3.util.retry import Retry

from pressedplay import images, inputs
from pressedplay.atomic import replacing
from pressedplay.catalog import TRACK_ID, Catalog, resolve_catalog
from pressedplay.dataset import DatasetWriter, TrackFeatures
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.paths import data_home

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
FEATURE_BATCH = 100  # audio-features takes at most 100 ids
SEARCH_PAGE = 10  # the 2026 maximum for search in development mode
ITEMS_PAGE = 50

_PLAYLIST_ID = r"(?P<id>[0-9A-Za-z]{22})"
_PLAYLIST_URL = re.compile(
    r"(?:https?://)?open\.spotify\.com/(?:intl-[A-Za-z-]+/)?(?:user/[^/]+/)?playlist/"
    rf"{_PLAYLIST_ID}/?(?:[?#].*)?"
)
_PLAYLIST_URI = re.compile(rf"spotify:(?:user:[^:]+:)?playlist:{_PLAYLIST_ID}")
_BARE_ID = re.compile(_PLAYLIST_ID)

Progress = Callable[[int], None]


class _WaitTooLong(Exception):
    """Raised from inside urllib3's retry loop when Spotify asks for a very long pause."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Retry-After {seconds:.0f} s")
        self.seconds = seconds


class _Retry(Retry):
    """urllib3's retry (Retry-After honoured on 429/503, backoff otherwise), but bounded."""

    def sleep_for_retry(self, response) -> bool:
        wait = self.get_retry_after(response)
        if wait is not None and wait > MAX_RETRY_AFTER:
            raise _WaitTooLong(wait)
        return super().sleep_for_retry(response)


class _HideSecrets(logging.Filter):
    """spotipy logs request headers (the client secret in Basic auth, the bearer token) at
    DEBUG, and every HTTP error at ERROR; the collector reports those errors itself."""

    _drop = ("Authorization", "Bearer ", "Basic ", "HTTP Error for", "Max Retries")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self._drop)


def _quiet_spotipy() -> None:
    for name in ("spotipy.client", "spotipy.oauth2", "spotipy.util"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _HideSecrets) for f in logger.filters):
            logger.addFilter(_HideSecrets())


def _session(
    retries: int,
    backoff_factor: float,
    retry_class: type[_Retry] = _Retry,
    methods: frozenset[str] = frozenset({"GET", "POST"}),
) -> requests.Session:
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
    _quiet_spotipy()
    session = _session(retries, backoff_factor)
    auth = spotipy.SpotifyClientCredentials(
        client_id,
        client_secret,
        requests_session=session,
        requests_timeout=timeout,
        cache_handler=MemoryCacheHandler(),
    )
    auth.OAUTH_TOKEN_URL = accounts_url.rstrip("/") + "/api/token"
    return _api_client(auth, session, api_url, timeout)


def _api_client(
    auth: spotipy.oauth2.SpotifyAuthBase, session: requests.Session, api_url: str, timeout: float
) -> spotipy.Spotify:
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


@contextmanager
def _spotify_errors() -> Iterator[None]:
    """Turn what Spotify or the network answered into one sentence; the partial build stays."""
    resume = "run the same command again later to resume"
    try:
        yield
    except SpotifyOauthError as exc:
        raise UserError(
            f"Spotify refused the app credentials ({exc.error or 'no reason given'}): "
            f"check {ID_ENV} and {SECRET_ENV}"
        ) from None
    except _WaitTooLong as exc:
        raise UserError(
            f"Spotify asks to wait {exc.seconds:.0f} s before the next request (rate limit); "
            f"{resume}"
        ) from None
    except SpotifyException as exc:
        if exc.http_status == 401:
            raise UserError(
                f"Spotify refused the access token (401); check {ID_ENV} and {SECRET_ENV}"
            ) from None
        if exc.http_status == 429:  # spotipy's word for any exhausted retry
            raise UserError(
                f"Spotify kept failing after retries ({exc.reason or 'rate limited'}); {resume}"
            ) from None
        where = exc.msg.split(":\n")[0]
        raise UserError(f"Spotify answered {exc.http_status} for {where}; {resume}") from None
    except requests.RequestException as exc:
        raise UserError(f"could not reach Spotify ({type(exc).__name__}); {resume}") from None


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


class _Collector:
    """One run's state: which feature source still works, features already fetched."""

    def __init__(
        self,
        client: spotipy.Spotify,
        catalog: str | Path | None,
        warn: Callable[[str], None],
        stack: ExitStack,
    ) -> None:
        self.client = client
        self.catalog_arg = catalog
        self.catalog: Catalog | None = None
        self.warn = warn
        self.stack = stack
        self.spotify_features = True  # until Spotify answers 403/404 once
        self.features: dict[str, tuple[float, ...] | None] = {}
        self.features_from: Counter[str] = Counter()
        self.warnings: list[str] = []
        self.images = stack.enter_context(_session(4, 0.5))

    def say(self, message: str) -> None:
        self.warnings.append(message)
        self.warn(message)

    # --- which playlists ---------------------------------------------------------------
    def user_playlists(self, user: str, limit: int | None) -> list[str]:
        ids: list[str] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                page = self.client.user_playlists(user, limit=ITEMS_PAGE)
            while page and (limit is None or len(ids) < limit):
                ids += [p["id"] for p in page["items"] if p and p.get("id")]
                page = self.client.next(page)
        except SpotifyException as exc:
            if exc.http_status not in (403, 404):
                raise
            self.say(
                f"Spotify answered {exc.http_status} for user {user!r}'s playlists: the user "
                "does not exist, or (since 2026) GET /users/{id}/playlists is closed to "
                "development-mode apps; pass --playlist URLs or --query TEXT instead"
            )
        return ids

    def search(self, query: str, limit: int | None) -> list[str]:
        ids: list[str] = []
        page = self.client.search(query, limit=SEARCH_PAGE, type="playlist")["playlists"]
        while page and (limit is None or len(ids) < limit):
            # Spotify pads search pages with null entries.
            ids += [p["id"] for p in page["items"] if p and p.get("id")]
            page = self.client.next(page)["playlists"] if page.get("next") else None
        return ids

    # --- one playlist -------------------------------------------------------------------
    def playlist(self, writer: DatasetWriter, pid: str) -> None:
        key = f"spotify:playlist:{pid}"
        try:
            playlist = self.client.playlist(pid, fields="id,name,images,owner(id)")
            tracks, skipped = self.items(pid)
        except SpotifyException as exc:
            if exc.http_status not in (403, 404):
                raise
            writer.skip("playlist not found or private", key=key)
            return
        cover = self.cover(playlist.get("images") or [])
        if isinstance(cover, str):
            writer.skip(cover, key=key)
            return
        features = self.lookup([t["id"] for t in tracks])
        rows = [
            TrackFeatures(t["id"], t.get("name"), _artists(t), features.get(t["id"]) or ())
            for t in tracks
        ]
        # Non-track items and tracks without features are counted in the cover's commit.
        writer.add_cover(cover, key, rows, key=key, skipped=skipped)

    def items(self, pid: str) -> tuple[list[dict], Counter[str]]:
        """The playlist's tracks (each once), and how many items were not tracks, by why."""
        tracks: dict[str, dict] = {}
        skipped: Counter[str] = Counter()
        page = self.client.playlist_items(pid, limit=ITEMS_PAGE)
        while page:
            for entry in page["items"]:
                # 2026 responses call the item "item"; earlier ones "track".
                track = (entry or {}).get("item", (entry or {}).get("track"))
                if track is None:
                    skipped["unavailable track"] += 1
                elif entry.get("is_local") or track.get("is_local"):
                    skipped["local file"] += 1
                elif track.get("type", "track") != "track":
                    skipped[f"{track['type']} (not a track)"] += 1
                elif not track.get("id"):
                    skipped["unavailable track"] += 1
                else:
                    tracks.setdefault(track["id"], track)
            page = self.client.next(page)
        return list(tracks.values()), skipped

    def cover(self, listed: list[dict]) -> bytes | str:
        """The largest listed image's bytes, or why there is none."""
        if not listed:
            return "playlist without cover"
        # Spotify lists the largest first; uploaded covers come without sizes.
        best = max(listed, key=lambda im: (im.get("width") or 0) * (im.get("height") or 0))
        if not best.get("url"):
            return "playlist without cover"
        with self.images.get(best["url"], timeout=15, stream=True) as response:
            if response.status_code != 200:
                return "cover download failed"
            data = bytearray()
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > images.MAX_BYTES:  # enough to be refused (and counted)
                    break
        return bytes(data)

    # --- features -----------------------------------------------------------------------
    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[float, ...] | None]:
        need = [i for i in ids if i not in self.features]
        if need and self.spotify_features:
            need = self.from_spotify(need)
        if need and (not self.spotify_features or self.catalog_arg is not None):
            found = self.open_catalog().lookup(need)
            for i in need:
                entry = found.get(i)
                self.features[i] = tuple(entry.features) if entry else None
                self.features_from["catalog"] += entry is not None
        else:  # Spotify answered, with nothing for these, and no catalog was asked for
            self.features.update(dict.fromkeys(need))
        return {i: self.features[i] for i in ids}

    def from_spotify(self, ids: list[str]) -> list[str]:
        """Fetch features in batches; the ids Spotify had nothing for (all, once it refuses)."""
        left = []
        for start in range(0, len(ids), FEATURE_BATCH):
            batch = ids[start : start + FEATURE_BATCH]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    answers = self.client.audio_features(batch)
            except SpotifyException as exc:
                if exc.http_status not in (403, 404):
                    raise
                self.spotify_features = False
                self.say(
                    f"Spotify answered {exc.http_status} for audio features (removed for apps "
                    "created after November 2024); taking features from the catalog instead"
                )
                return left + ids[start:]
            # A short or missing answer leaves the rest to the catalog, not unaccounted.
            answers = list(answers or [])[: len(batch)]
            answers += [None] * (len(batch) - len(answers))
            for track_id, answer in zip(batch, answers, strict=True):
                values = tuple((answer or {}).get(name) for name in NAMES)
                if all(isinstance(v, int | float) for v in values):
                    self.features[track_id] = tuple(float(v) for v in values)
                    self.features_from["spotify"] += 1
                else:
                    left.append(track_id)
        return left

    def open_catalog(self) -> Catalog:
        if self.catalog is None:
            self.catalog = self.stack.enter_context(Catalog(resolve_catalog(self.catalog_arg)))
        return self.catalog


def _artists(track: dict) -> str | None:
    names = [a["name"] for a in track.get("artists") or [] if a and a.get("name")]
    return ", ".join(names) or None


def collect(
    out: Path,
    *,
    playlists: Sequence[str] = (),
    user: str | None = None,
    query: str | None = None,
    catalog: str | Path | None = None,
    limit: int | None = None,
    force: bool = False,
    seed: int = 0,
    progress: Progress | None = None,
    client: spotipy.Spotify | None = None,
    warn: Callable[[str], None] = _stderr_warning,
) -> dict:
    """Build a cover dataset at OUT from Spotify playlists; the dataset's info plus a report.

    Sources: playlists (URLs, URIs or ids), a user's public playlists, a playlist search;
    at most `limit` playlists in all. Rerunning after an interruption with the same
    arguments continues where it stopped. `seed` picks the train/valid/test split. `warn`
    gets each one-line warning once (default: printed to stderr).
    """
    ids = [parse_playlist(ref) for ref in playlists]
    if not (ids or user or query):
        raise UserError("say which playlists to collect: --playlist, --user or --query")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, not {limit}")
    if catalog is not None:
        resolve_catalog(catalog)  # a mistyped name fails before any request
    source = json.dumps(
        {
            "spotify": {"playlists": ids, "user": user, "query": query, "limit": limit},
            "catalog": None if catalog is None else str(catalog),
        },
        sort_keys=True,
    )
    with ExitStack() as stack, _spotify_errors():
        run = _Collector(client or client_from_env(), catalog, warn, stack)
        if user:
            ids += run.user_playlists(user, limit)
        if query:
            ids += run.search(query, limit)
        ids = list(dict.fromkeys(ids))[:limit]
        if not ids:
            raise UserError("no playlists to collect: the user and the search gave none")
        writer = stack.enter_context(
            DatasetWriter(Path(out), source=source, force=force, seed=seed)
        )
        resumed = 0
        for pid in ids:
            if writer.is_done(f"spotify:playlist:{pid}"):
                resumed += 1
            else:
                run.playlist(writer, pid)
            if progress is not None:
                progress(1)
        report = writer.finish()
    report.update(
        playlists={"listed": len(ids), "resumed": resumed},
        features_from=dict(run.features_from),
        warnings=run.warnings,
    )
    return report


# --- the user's account: top artists' genres, playlist creation ----------------------------
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


class _UserRetry(_Retry):
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
    _quiet_spotipy()
    session = _session(retries, backoff_factor, _UserRetry, frozenset({"GET", "POST", "PUT"}))
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
    return _api_client(auth, session, api_url, timeout)


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
    except _WaitTooLong as exc:
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
