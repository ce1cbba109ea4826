"""A local fake of the Spotify Web API and accounts service for tests.

A real `ThreadingHTTPServer` on 127.0.0.1 answering with the Web API's JSON shapes as of
2026 (`/playlists/{id}/items`, search limited to 10 per page, `/users/{id}/playlists` and
`/audio-features` removed for development-mode apps), serving real JPEG bytes made with
Pillow at the cover URLs. spotipy talks to it over HTTP exactly as it would to Spotify, so
tests exercise the client's auth, paging, retries and error handling, not a mock of them.

For the user's account it also answers the authorization-code and refresh-token grants,
GET /me, GET /me/top/artists (genres absent, empty or given), POST /me/playlists, POST
/playlists/{id}/items (at most 100 URIs) and PUT /playlists/{id}/images (a base64 JPEG of
at most 256 KB), each refusing a token without the scope it needs, as Spotify does.
GET /authorize stands for the consent page: it sends the browser straight back to the
redirect URI with the code and the state (or `error=access_denied` when `consent` is off).
"""

from __future__ import annotations

import base64
import io
import json
import random
import re
import string
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from PIL import Image

from pressedplay.features import NAMES

CLIENT_ID = "fake-client-id-0123456789"
CLIENT_SECRET = "fake-client-secret-s3cr3t-do-not-print"
TOKEN = "fake-access-token-abcdef"
# The user login (authorization-code flow): what the accounts service hands out.
AUTH_CODE = "fake-authorization-code-42"
USER_TOKEN = "fake-user-access-token-uvwxyz"
REFRESH_TOKEN = "fake-refresh-token-0987"
USER_ID = "alice"
USER_SCOPES = frozenset({"user-top-read", "playlist-modify-private", "ugc-image-upload"})
MAX_COVER_PAYLOAD = 256 * 1024  # base64 characters, Spotify's documented limit


def spotify_id(rng: random.Random) -> str:
    """A 22-character base-62 id, like Spotify's."""
    return "".join(rng.choices(string.ascii_letters + string.digits, k=22))


@dataclass
class Track:
    id: str
    name: str
    artist: str
    features: dict[str, float] | None = None  # None: audio-features answers null for it
    album: str = "An Album"

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "type": "track",
            "uri": f"spotify:track:{self.id}",
            "is_local": False,
            "artists": [{"id": "artist0000000000000000", "name": self.artist, "type": "artist"}],
            "album": {"id": "album00000000000000000", "name": self.album, "images": []},
            "duration_ms": 200_000,
        }

    def audio_features(self) -> dict | None:
        if self.features is None:
            return None
        return {
            "id": self.id,
            "type": "audio_features",
            "uri": f"spotify:track:{self.id}",
            "key": 5,
            "mode": 1,
            "tempo": 120.0,
            "duration_ms": 200_000,
            "time_signature": 4,
            **self.features,
        }


def track_item(track: Track) -> dict:
    return {"added_at": "2026-01-01T00:00:00Z", "is_local": False, "track": track.as_json()}


def local_item(name: str) -> dict:
    """A local file in a playlist: no Spotify id."""
    return {
        "added_at": "2026-01-01T00:00:00Z",
        "is_local": True,
        "track": {
            "id": None,
            "name": name,
            "type": "track",
            "uri": f"spotify:local:artist:album:{name}:180",
            "is_local": True,
            "artists": [{"id": None, "name": "someone"}],
            "album": {"id": None, "name": None},
        },
    }


def episode_item(episode_id: str) -> dict:
    return {
        "added_at": "2026-01-01T00:00:00Z",
        "is_local": False,
        "track": {"id": episode_id, "name": "a podcast", "type": "episode", "is_local": False},
    }


def null_item() -> dict:
    """A track that is no longer available: Spotify answers `track: null`."""
    return {"added_at": "2026-01-01T00:00:00Z", "is_local": False, "track": None}


@dataclass
class Playlist:
    id: str
    name: str
    owner: str
    items: list[dict]
    color: tuple[int, int, int]
    # (width, height) per listed image, in the order listed; None sizes like user uploads
    sizes: list[tuple[int | None, int | None]] = field(
        default_factory=lambda: [(48, 48), (160, 160), (96, 96)]
    )

    def image_bytes(self, index: int) -> bytes:
        width, height = self.sizes[index]
        width, height = width or 120, height or 120
        image = Image.new("RGB", (width, height), self.color)
        # a diagonal stripe so the picture is not flat and differs per size
        for x in range(min(width, height)):
            image.putpixel((x, x), (255 - self.color[0], 255 - self.color[1], 0))
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=90)
        return buf.getvalue()


@dataclass
class Artist:
    name: str
    genres: list[str] | None = None  # None: the field is absent, as for apps since 2026

    def as_json(self, index: int) -> dict:
        artist = {"id": f"artist{index:016d}", "name": self.name, "type": "artist"}
        if self.genres is not None:
            artist["genres"] = list(self.genres)
        return artist


@dataclass
class CreatedPlaylist:
    """A playlist made through POST /me/playlists, as the fake stored it."""

    id: str
    name: str
    description: str
    public: bool
    uris: list[str] = field(default_factory=list)
    cover: bytes | None = None  # the decoded JPEG of the last accepted upload


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    status: int


class FakeSpotify:
    """The fake's data and behaviour switches; `start()` serves it on 127.0.0.1."""

    def __init__(self) -> None:
        self.playlists: dict[str, Playlist] = {}
        self.tracks: list[Track] = []  # what audio-features knows
        self.users: dict[str, list[str]] = {}
        self.search_nulls = 1  # null entries at the head of every search page
        self.audio_features_status = 200  # 403: the app lost access (all apps since 2024)
        self.audio_features_answers: int | None = None  # answer only this many per batch
        self.user_playlists_status = 404  # removed for development-mode apps in 2026
        self.item_key = "track"  # playlist item field holding the track ("item" also seen)
        self.page_size = 3  # small, so that tests cross page boundaries
        self.fail_after_playlists: int | None = None  # then every /v1 call fails
        self.fail_status = 500
        self.requests: list[Request] = []
        # the user's account
        self.top_artists: list[Artist] = []
        self.granted_scopes: set[str] = set(USER_SCOPES)  # what the user consented to
        self.created: dict[str, CreatedPlaylist] = {}
        self.token_grants: list[str] = []  # grant_type of each successful token request
        self.consent = True  # what the user answers on the consent page
        self.authorizations: list[dict[str, str]] = []  # the query of each consent page shown
        self._rng = random.Random(1234)
        self._throttle: list[tuple[str, str]] = []  # (path prefix, Retry-After) per 429
        self._failures: list[tuple[str, str, int]] = []  # (method, path prefix, status)
        self._served: set[str] = set()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.base = ""

    # --- data -------------------------------------------------------------------------
    def add_playlist(self, playlist: Playlist, user: str | None = None) -> Playlist:
        self.playlists[playlist.id] = playlist
        if user is not None:
            self.users.setdefault(user, []).append(playlist.id)
        return playlist

    def throttle(self, count: int, retry_after: str = "1", path: str = "/v1/") -> None:
        """Answer the next `count` requests under `path` with 429 and this Retry-After."""
        with self._lock:
            self._throttle.extend([(path, retry_after)] * count)

    def fail_next(self, method: str, path: str, status: int = 500, count: int = 1) -> None:
        """Answer the next `count` `method` requests under `path` with this error status."""
        with self._lock:
            self._failures.extend([(method, path, status)] * count)

    def calls(self, path_prefix: str, status: int | None = None) -> list[Request]:
        return [
            r
            for r in self.requests
            if r.path.startswith(path_prefix) and (status is None or r.status == status)
        ]

    # --- serving ----------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        return f"{self.base}/v1/"

    @property
    def accounts_url(self) -> str:
        return self.base

    def start(self) -> FakeSpotify:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._handle(self, "GET")

            def do_POST(self) -> None:
                fake._handle(self, "POST")

            def do_PUT(self) -> None:
                fake._handle(self, "PUT")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeSpotify:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        status, payload, headers = self._route(method, parts.path, query, handler.headers, body)
        with self._lock:
            self.requests.append(Request(method, parts.path, query, status))
        if payload is None:  # 202 Accepted, nothing to say
            data, ctype = b"", "text/plain"
        elif isinstance(payload, bytes):
            data, ctype = payload, "image/jpeg"
        else:
            data, ctype = json.dumps(payload).encode(), "application/json; charset=utf-8"
        handler.send_response(status)
        handler.send_header("Content-Type", ctype)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method, path, query, headers, body) -> tuple[int, dict | bytes, dict]:
        with self._lock:
            for i, (prefix, retry_after) in enumerate(self._throttle):
                if path.startswith(prefix):
                    del self._throttle[i]
                    return 429, _error(429, "API rate limit exceeded"), {"Retry-After": retry_after}
            for i, (verb, prefix, status) in enumerate(self._failures):
                if method == verb and path.startswith(prefix):
                    del self._failures[i]
                    return status, _error(status, "Server error"), {}
        if method == "GET" and path == "/authorize":
            return self._authorize(query)
        if method == "POST" and path == "/api/token":
            return self._token(headers, body)
        if path.startswith("/images/"):
            return self._image(path)
        if not path.startswith("/v1/"):
            return 404, _error(404, "Service not found"), {}
        segments = path[len("/v1/") :].strip("/").split("/")
        if _user_route(method, segments):
            if headers.get("Authorization") != f"Bearer {USER_TOKEN}":
                return 401, _error(401, "Invalid access token"), {}
            return self._user(method, segments, query, headers, body)
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, _error(401, "Invalid access token"), {}
        if segments[0] == "playlists" and len(segments) == 2:
            return self._playlist(segments[1])
        if segments[0] == "playlists" and len(segments) == 3 and segments[2] == "items":
            return self._items(segments[1], query)
        if segments[0] == "users" and len(segments) == 3 and segments[2] == "playlists":
            return self._user_playlists(segments[1], query)
        if segments == ["search"]:
            return self._search(query)
        if segments == ["audio-features"]:
            return self._audio_features(query)
        return 404, _error(404, "Service not found"), {}

    def _token(self, headers, body) -> tuple[int, dict, dict]:
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = parse_qs(body.decode())
        if headers.get("Authorization") != f"Basic {expected}":
            return 400, {"error": "invalid_client", "error_description": "Invalid client"}, {}
        grant = form.get("grant_type", [""])[0]
        if grant == "client_credentials":
            answer = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}
        elif grant == "authorization_code":
            if form.get("code") != [AUTH_CODE] or not form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "Invalid code"}, {}
            answer = self._user_token(refresh=True)
        elif grant == "refresh_token":
            if form.get("refresh_token") != [REFRESH_TOKEN]:
                return 400, {"error": "invalid_grant", "error_description": "Revoked token"}, {}
            answer = self._user_token(refresh=False)  # Spotify may omit a new refresh token
        else:
            return 400, {"error": "unsupported_grant_type"}, {}
        with self._lock:
            self.token_grants.append(grant)
        return 200, answer, {}

    def _user_token(self, refresh: bool) -> dict:
        answer = {
            "access_token": USER_TOKEN,
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": " ".join(sorted(self.granted_scopes)),
        }
        return {**answer, "refresh_token": REFRESH_TOKEN} if refresh else answer

    def _authorize(self, query: dict) -> tuple[int, dict | None, dict]:
        """The consent page, answered at once: back to redirect_uri with code and state."""
        if query.get("client_id") != CLIENT_ID:
            return 400, _error(400, "INVALID_CLIENT: Invalid client"), {}
        if query.get("response_type") != "code" or not query.get("redirect_uri"):
            return 400, _error(400, "unsupported_response_type"), {}
        with self._lock:
            self.authorizations.append(dict(query))
        answer = {"code": AUTH_CODE} if self.consent else {"error": "access_denied"}
        if "state" in query:
            answer["state"] = query["state"]
        return 302, None, {"Location": f"{query['redirect_uri']}?{urlencode(answer)}"}

    def _image(self, path: str) -> tuple[int, dict | bytes, dict]:
        # /images/{playlist id}/{index}.jpg
        try:
            _, _, pid, name = path.split("/")
            return 200, self.playlists[pid].image_bytes(int(name.removesuffix(".jpg"))), {}
        except (ValueError, KeyError, IndexError):
            return 404, _error(404, "Not found"), {}

    def _simplified(self, p: Playlist) -> dict:
        return {
            "id": p.id,
            "name": p.name,
            "type": "playlist",
            "uri": f"spotify:playlist:{p.id}",
            "public": True,
            "snapshot_id": "snap",
            "owner": {"id": p.owner, "display_name": p.owner, "type": "user"},
            "images": [
                {"url": f"{self.base}/images/{p.id}/{i}.jpg", "width": w, "height": h}
                for i, (w, h) in enumerate(p.sizes)
            ],
            "items": {"href": f"{self.api_url}playlists/{p.id}/items", "total": len(p.items)},
            "tracks": None,
        }

    def _playlist(self, pid: str) -> tuple[int, dict, dict]:
        if pid not in self.playlists:
            return 404, _error(404, "Resource not found"), {}
        with self._lock:
            limit = self.fail_after_playlists
            if limit is not None and pid not in self._served and len(self._served) >= limit:
                return self.fail_status, _error(self.fail_status, "Server error"), {}
            self._served.add(pid)
        return 200, self._simplified(self.playlists[pid]), {}

    def _paging(self, path: str, items: list, query: dict, limit_max: int) -> dict | None:
        limit = int(query.get("limit", 20))
        offset = int(query.get("offset", 0))
        if not 1 <= limit <= limit_max or offset < 0:
            return None
        size = min(limit, self.page_size)
        page = items[offset : offset + size]
        rest = {k: v for k, v in query.items() if k not in ("limit", "offset")}

        def link(at: int) -> str:
            return f"{self.base}{path}?{urlencode({**rest, 'offset': at, 'limit': limit})}"

        return {
            "href": link(offset),
            "items": page,
            "limit": size,
            "offset": offset,
            "total": len(items),
            "next": link(offset + size) if offset + size < len(items) else None,
            "previous": link(max(0, offset - size)) if offset > 0 else None,
        }

    def _items(self, pid: str, query: dict) -> tuple[int, dict, dict]:
        if pid not in self.playlists:
            return 404, _error(404, "Resource not found"), {}
        items = [
            {("item" if k == "track" else k): v for k, v in it.items()}
            if self.item_key == "item"
            else it
            for it in self.playlists[pid].items
        ]
        page = self._paging(f"/v1/playlists/{pid}/items", items, query, 50)
        if page is None:
            return 400, _error(400, "Invalid limit"), {}
        return 200, page, {}

    def _user_playlists(self, user: str, query: dict) -> tuple[int, dict, dict]:
        if self.user_playlists_status != 200:
            return self.user_playlists_status, _error(self.user_playlists_status, "Not found"), {}
        if user not in self.users:
            return 404, _error(404, "No such user"), {}
        items = [self._simplified(self.playlists[pid]) for pid in self.users[user]]
        page = self._paging(f"/v1/users/{user}/playlists", items, query, 50)
        return (200, page, {}) if page is not None else (400, _error(400, "Invalid limit"), {})

    def _search(self, query: dict) -> tuple[int, dict, dict]:
        if query.get("type") != "playlist" or not query.get("q"):
            return 400, _error(400, "Bad search"), {}
        words = query["q"].lower().split()
        found = [
            self._simplified(p)
            for p in self.playlists.values()
            if all(w in p.name.lower() for w in words)
        ]
        # Spotify pads search pages with nulls where it hides a result.
        items: list[dict | None] = []
        for p in found:
            items.extend([None] * self.search_nulls)
            items.append(p)
        page = self._paging("/v1/search", items, query, 10)  # 10 is the 2026 maximum
        if page is None:
            return 400, _error(400, "Invalid limit"), {}
        return 200, {"playlists": page}, {}

    def _audio_features(self, query: dict) -> tuple[int, dict, dict]:
        if self.audio_features_status != 200:
            return self.audio_features_status, _error(self.audio_features_status, "Forbidden"), {}
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not 1 <= len(ids) <= 100:
            return 400, _error(400, "Too many ids requested"), {}
        known = {t.id: t for t in self.tracks}
        answers = [known[i].audio_features() if i in known else None for i in ids]
        return 200, {"audio_features": answers[: self.audio_features_answers]}, {}

    # --- the user's account ----------------------------------------------------------
    def _user(self, method, segments, query, headers, body) -> tuple[int, dict | None, dict]:
        if segments == ["me"]:
            return 200, {"id": USER_ID, "display_name": "Alice", "type": "user"}, {}
        if segments == ["me", "top", "artists"]:
            return self._top_artists(query)
        if segments == ["me", "playlists"]:
            return self._create(body)
        if segments[2] == "items":
            return self._add_items(segments[1], query, body)
        return self._upload_cover(segments[1], headers, body)

    def _missing_scope(self, scope: str) -> tuple[int, dict, dict] | None:
        if scope in self.granted_scopes:
            return None
        return 403, _error(403, "Insufficient client scope"), {}

    def _top_artists(self, query: dict) -> tuple[int, dict, dict]:
        refused = self._missing_scope("user-top-read")
        if refused:
            return refused
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
        if not 1 <= limit <= 50 or offset < 0:
            return 400, _error(400, "Invalid limit"), {}
        artists = [a.as_json(i) for i, a in enumerate(self.top_artists)]
        page = {
            "href": f"{self.api_url}me/top/artists",
            "items": artists[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "total": len(artists),
            "next": None,
            "previous": None,
        }
        return 200, page, {}

    def _create(self, body: bytes) -> tuple[int, dict, dict]:
        try:
            spec = json.loads(body)
        except ValueError:
            return 400, _error(400, "Error parsing JSON."), {}
        if not isinstance(spec, dict) or not str(spec.get("name") or "").strip():
            return 400, _error(400, "Missing required field: name"), {}
        public = spec.get("public", True) is not False
        refused = self._missing_scope(
            "playlist-modify-public" if public else "playlist-modify-private"
        )
        if refused:
            return refused
        with self._lock:
            pid = spotify_id(self._rng)
            self.created[pid] = CreatedPlaylist(
                pid, spec["name"], spec.get("description") or "", public
            )
        return 201, self._created_json(self.created[pid]), {}

    def _created_json(self, p: CreatedPlaylist) -> dict:
        return {
            "id": p.id,
            "name": p.name,
            "description": p.description,
            "public": p.public,
            "type": "playlist",
            "uri": f"spotify:playlist:{p.id}",
            "external_urls": {"spotify": f"https://open.spotify.com/playlist/{p.id}"},
            "owner": {"id": USER_ID, "type": "user"},
            "images": [],
            "items": {"href": f"{self.api_url}playlists/{p.id}/items", "total": len(p.uris)},
        }

    def _add_items(self, pid: str, query: dict, body: bytes) -> tuple[int, dict, dict]:
        if pid not in self.created:
            return 404, _error(404, "Resource not found"), {}
        refused = self._missing_scope("playlist-modify-private")
        if refused:
            return refused
        try:
            data = json.loads(body) if body else {"uris": query.get("uris", "").split(",")}
        except ValueError:
            return 400, _error(400, "Error parsing JSON."), {}
        uris = data.get("uris") if isinstance(data, dict) else data  # both shapes are accepted
        if not isinstance(uris, list) or not 1 <= len(uris) <= 100:
            return 400, _error(400, "You can add a maximum of 100 tracks per request."), {}
        if not all(isinstance(u, str) and _TRACK_URI.fullmatch(u) for u in uris):
            return 400, _error(400, "Invalid track uri"), {}
        with self._lock:
            playlist = self.created[pid]
            at = int(query.get("position", len(playlist.uris)))
            playlist.uris[at:at] = uris
        return 201, {"snapshot_id": f"snap{len(playlist.uris)}"}, {}

    def _upload_cover(self, pid: str, headers, body: bytes) -> tuple[int, dict | None, dict]:
        if pid not in self.created:
            return 404, _error(404, "Resource not found"), {}
        refused = self._missing_scope("ugc-image-upload")
        if refused:
            return refused
        if headers.get("Content-Type") != "image/jpeg":
            return 400, _error(400, "Content-Type must be image/jpeg"), {}
        if len(body) > MAX_COVER_PAYLOAD:
            return 413, _error(413, "Payload too large"), {}
        try:
            jpeg = base64.b64decode(body, validate=True)
            with Image.open(io.BytesIO(jpeg)) as image:
                image.load()
                if image.format != "JPEG":
                    raise ValueError(image.format)
        except Exception:
            return 400, _error(400, "Bad image: not a base64 encoded JPEG"), {}
        with self._lock:
            self.created[pid].cover = jpeg
        return 202, None, {}


_TRACK_URI = re.compile(r"spotify:track:[0-9A-Za-z]{22}")


def _user_route(method: str, segments: list[str]) -> bool:
    """The endpoints that act for a logged-in user (and need the user's token)."""
    return (
        (method == "GET" and segments in (["me"], ["me", "top", "artists"]))
        or (method == "POST" and segments == ["me", "playlists"])
        or (method == "POST" and len(segments) == 3 and segments[::2] == ["playlists", "items"])
        or (method == "PUT" and len(segments) == 3 and segments[::2] == ["playlists", "images"])
    )


def _error(status: int, message: str) -> dict:
    return {"error": {"status": status, "message": message}}


def build(seed: int = 0, playlists: int = 5, tracks_per_playlist: int = 7) -> FakeSpotify:
    """A fake with `playlists` playlists named "mood N" owned by user "alice".

    Every playlist holds its own tracks plus one shared track (so a track appears in
    several playlists), a local file, an episode and a removed (null) track; track 0 of
    each playlist has no audio features anywhere; playlist 0 lists one track twice. Features are random in their ranges.
    """
    rng = random.Random(seed)
    fake = FakeSpotify()
    shared = _track(rng, "shared song")
    all_tracks = [shared]
    for n in range(playlists):
        own = [_track(rng, f"song {n}.{k}") for k in range(tracks_per_playlist)]
        own[0].features = None
        all_tracks.extend(own)
        items = [track_item(t) for t in own[:3]]
        items += [local_item(f"demo{n}.mp3"), episode_item(spotify_id(rng)), null_item()]
        items += [track_item(t) for t in own[3:]] + [track_item(shared)]
        if n == 0:
            items.append(track_item(own[1]))  # listed twice
        color = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        fake.add_playlist(Playlist(spotify_id(rng), f"mood {n}", "alice", items, color), "alice")
    fake.tracks = all_tracks
    return fake


def _track(rng: random.Random, name: str) -> Track:
    features = {f: round(rng.uniform(0, 1), 4) for f in NAMES}
    features["loudness"] = round(rng.uniform(-30, -2), 3)
    return Track(spotify_id(rng), name, f"artist of {name}", features)


def seed_login(path: Path, *, expired: bool = False, refresh: str = REFRESH_TOKEN) -> None:
    """The token cache spotipy leaves after the browser step of a login (tests have no
    browser): valid for an hour, or already expired so that the client must refresh."""
    path.parent.mkdir(parents=True, exist_ok=True)
    token = {
        "access_token": "stale-token" if expired else USER_TOKEN,
        "token_type": "Bearer",
        "expires_in": 3600,
        "expires_at": int(time.time()) + (-10 if expired else 3600),
        "refresh_token": refresh,
        "scope": " ".join(sorted(USER_SCOPES)),
    }
    path.write_text(json.dumps(token))
