"""The web page and its JSON API: `pressedplay serve`.

One page (packaged under pressedplay/web/, nothing fetched from elsewhere) and a small JSON
API that answers in the CLI's `--json` shapes, so the page, scripts and the CLI agree.
The app is local and single-user, like the CLI: it predicts with one model, picks from one
catalog, stores verdicts in one feedback database and acts in Spotify for the login kept in
the CLI's token cache. `create_app` builds it; `serve` runs it in the foreground and
`running` in a background thread (notebooks, tests).

Uploads are counted while they are read, whatever Content-Length says or whether it is
there at all, and refused with 413 past the limit; images are validated by the same
decode as every other input (pressedplay.images), bounded by pixels, not bytes.

Under a burst, at most IMAGE_QUEUE picture requests are admitted (one computes, the rest
wait their turn on a thread); more are answered 503 with Retry-After at once, so threads
and memory stay bounded and the cheap endpoints (the page, /api/config, async) answer
meanwhile. When the last admitted request ends, freed decode buffers go back to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import html
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Literal

import spotipy
import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pressedplay import __version__, feedback, images, spotify
from pressedplay.catalog import TRACK_ID, resolve_catalog
from pressedplay.errors import UserError
from pressedplay.features import FEATURES, Feature, describe
from pressedplay.playlist import generate, load_index
from pressedplay.predict import load_predictor, predict_one

MAX_UPLOAD = 10 * 1024 * 1024  # bytes of the image itself
# The whole request: the image plus the multipart envelope and the other fields.
MAX_BODY = MAX_UPLOAD + 64 * 1024
# The names a browser uses for this machine: the only Host headers served by default.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_TRACKS = 100
IMAGE_QUEUE = 8  # picture requests admitted at once; the next gets 503 + Retry-After
RETRY_AFTER_S = 2
STATE_COOKIE = "pressedplay_login_state"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # kept out of file names echoed in errors
_WEB = {  # URL path -> (packaged file, media type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}
# The page may load and talk to this server only; the preview is a blob: URL.
_CSP = (
    "default-src 'self'; img-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# --- the JSON shapes, for validation of answers and for /openapi.json -------------------
def _range(feature: Feature) -> str:
    unit = f" {feature.unit}" if feature.unit else ""
    return f"{feature.meaning}, {feature.low:g} to {feature.high:g}{unit}"


Features = create_model(
    "Features", **{f.name: (float, Field(description=_range(f))) for f in FEATURES}
)


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")


class Prediction(BaseModel):
    image: str = Field(description="The uploaded file's name.")
    model: str = Field(description="The model that answered: `vae PATH` or `colour prior`.")
    features: Features


class Track(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    artist: str
    genres: list[str]
    distance: float = Field(description="Euclidean, in the catalog's standardised units.")
    url: str


class Playlist(BaseModel):
    model_config = ConfigDict(extra="allow")
    features: Features
    catalog: str
    genres: list[str] | None = Field(description="The genre filter applied, if any.")
    model: str
    tracks: list[Track]


class FeedbackStored(BaseModel):
    id: int = Field(description="The verdict's row in the feedback database.")
    db: str
    image: str
    verdict: Literal["like", "dislike"]
    tracks: int = Field(description="How many track ids were stored with it.")


class SpotifySaved(BaseModel):
    id: str
    url: str
    tracks: int
    cover: bool = Field(description="Whether the picture was accepted as the cover.")
    warnings: list[str]


class FeatureRange(BaseModel):
    name: str
    low: float
    high: float
    unit: str
    meaning: str


class SpotifyState(BaseModel):
    configured: bool = Field(description="SPOTIFY_CLIENT_ID and _SECRET are set.")
    logged_in: bool = Field(description="A login is in the token cache.")


class Config(BaseModel):
    version: str
    model: str
    catalog: str
    genres: list[str] = Field(description="The catalog's genres, most tracks first.")
    features: list[FeatureRange]
    max_upload: int = Field(description="The largest image accepted, in bytes.")
    max_tracks: int
    spotify: SpotifyState


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": Problem} for status in statuses}


# --- the upload limit ------------------------------------------------------------------
class _BodyLimit:
    """413 for a request body over `limit` bytes: at once when Content-Length says so,
    else when the bytes read pass it (a chunked body has no Content-Length; a short one
    is cut by HTTP framing before the app sees more).

    Starlette's own limiter answers a declared oversize in plain text; this one raises an
    HTTPException inside the body read, which FastAPI's handlers turn into JSON like every
    other error.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": _too_large(int(declared))}, status_code=413)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(413, _too_large(seen, more=True))
            return message

        await self.app(scope, counted, send)


class _SameOrigin:
    """403 for a POST sent by another site's page: the API has no login of its own, so a
    form or script there could otherwise store verdicts or fill the user's Spotify account.
    Browsers send Origin with every cross-origin POST; scripts and curl send none."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and origin != f"{scope['scheme']}://{headers.get('host')}":
                detail = f"refused a request from the page of another site ({origin[:100]})"
                await JSONResponse({"detail": detail}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _too_large(size: int, *, more: bool = False) -> str:
    at_least = "over " if more else ""
    return (
        f"upload too large: {at_least}{size:,} bytes; the limit is {MAX_UPLOAD // 2**20} MB "
        f"({MAX_UPLOAD:,} bytes) per image"
    )


def _read_upload(upload: UploadFile) -> tuple[str, bytes]:
    """(file name without folders, bytes); 413 past MAX_UPLOAD (a body within MAX_BODY can
    still carry a file a little over it)."""
    name = _CONTROL.sub("?", Path(upload.filename or "").name)[:200] or "upload"
    data = upload.file.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise HTTPException(413, f"{name}: {_too_large(len(data), more=True)}")
    return name, data


def _track_ids(values: Sequence[str] | None) -> list[str]:
    ids = list(dict.fromkeys(values or ()))
    if not ids:
        raise HTTPException(422, "track: give the playlist's track ids (field `track`, repeated)")
    if len(ids) > MAX_TRACKS:
        raise HTTPException(422, f"track: at most {MAX_TRACKS} tracks, got {len(ids)}")
    bad = [t for t in ids if not TRACK_ID.fullmatch(t)]
    if bad:
        raise HTTPException(422, f"track: {bad[0][:40]!r} is not a Spotify track id")
    return ids


# --- logs ------------------------------------------------------------------------------
class _NoQueryStrings(logging.Filter):
    """uvicorn's access log prints each request's query string; /callback's carries the
    login code. Logged paths keep `?` to show a query was there, not what it said."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path, mark, _ = args[2].partition("?")
            record.args = (*args[:2], path + mark, *args[3:])
        return True


def _quiet_access_log() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, _NoQueryStrings) for f in logger.filters):
        logger.addFilter(_NoQueryStrings())


def _libc_trim() -> ctypes._CFuncPtr | None:
    """glibc's malloc_trim, or None elsewhere (musl, macOS)."""
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None


_MALLOC_TRIM = _libc_trim()


class ImageGate:
    """Admission for picture requests: at most `size` inside at once, the next refused
    with 503 + Retry-After rather than queued on a thread. When the last one leaves,
    glibc is asked to return freed memory (it keeps freed arenas otherwise: a burst of
    large decodes once left 3 GB resident)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._inside = 0
        self._lock = threading.Lock()

    @contextmanager
    def admitted(self) -> Iterator[None]:
        with self._lock:
            if self._inside >= self.size:
                raise HTTPException(
                    503,
                    f"busy: {self.size} pictures are being processed; try again shortly",
                    headers={"Retry-After": str(RETRY_AFTER_S)},
                )
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                idle = self._inside == 0
            if idle and _MALLOC_TRIM is not None:
                _MALLOC_TRIM(0)


def _message_page(title: str, text: str, status: int = 200) -> HTMLResponse:
    """A plain page for the login's browser tab (no script, the page's style)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<title>pressedplay: {html.escape(title)}</title><link rel="stylesheet" '
        'href="/style.css"></head><body class="message"><main><h1>'
        f"{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        '<p><a href="/">Back to pressedplay</a></p></main></body></html>'
    )
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


# --- the app ---------------------------------------------------------------------------
def create_app(
    *,
    model: str | Path | None = None,
    catalog: str | Path | None = None,
    feedback_db: Path | None = None,
    device: str = "cpu",
    env_file: Path | None = Path(".env"),
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
    image_queue: int = IMAGE_QUEUE,
) -> FastAPI:
    """The app for one model (as `predict --model`), one catalog (as `generate --catalog`)
    and one feedback database (default: the data folder's). Spotify is offered when
    SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are in the environment or `env_file`.

    The model, the catalog and the packaged page are loaded here, so a wrong name fails
    before anything is served. Requests naming another Host are refused (400): a web page
    elsewhere could otherwise reach this local server through a rebound DNS name.
    """
    predictor = load_predictor(model, device=device)
    catalog_path = resolve_catalog(catalog)
    load_index(catalog_path)  # a missing or broken catalog stops serve before it starts
    feedback_path = Path(feedback_db) if feedback_db is not None else feedback.default_path()
    settings = _spotify_settings(env_file)
    web = {
        path: files("pressedplay").joinpath("web", name).read_bytes()
        for path, (name, _) in _WEB.items()
    }
    predicting = threading.Lock()  # one forward pass at a time: CPU-bound, and not re-entrant
    gate = ImageGate(image_queue)
    _quiet_access_log()

    app = FastAPI(
        title="pressedplay",
        version=__version__,
        summary="From a picture to audio features to a playlist of real tracks.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page loads nothing
        redoc_url=None,
    )
    app.add_middleware(_BodyLimit, limit=MAX_BODY)
    app.add_middleware(_SameOrigin)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # runs first
    _add_error_handlers(app)
    app.state.image_gate = gate

    def predict(name: str, data: bytes) -> dict:
        with gate.admitted(), predicting:
            return predict_one(name, data, predictor)  # ImageError: 422

    def spotify_client(request: Request) -> spotipy.Spotify:
        if settings is None:
            raise HTTPException(
                503,
                f"Spotify is not configured: set {spotify.ID_ENV} and {spotify.SECRET_ENV} "
                "and restart `pressedplay serve`",
            )
        return spotify.make_user_client(
            settings[spotify.ID_ENV],
            settings[spotify.SECRET_ENV],
            str(request.url_for("callback")),
            api_url=settings.get(spotify.API_URL_ENV, spotify.API_URL),
            accounts_url=settings.get(spotify.ACCOUNTS_URL_ENV, spotify.ACCOUNTS_URL),
            open_browser=False,
        )

    def page(path: str) -> Response:
        media_type = _WEB[path][1]
        headers = {**_HEADERS, "Cache-Control": "no-cache"}
        return Response(web[path], media_type=media_type, headers=headers)

    # The cheap endpoints are async: they never wait for a thread behind picture requests.
    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return page("/")

    @app.get("/app.js", include_in_schema=False)
    async def script() -> Response:
        return page("/app.js")

    @app.get("/style.css", include_in_schema=False)
    async def style() -> Response:
        return page("/style.css")

    @app.get("/api/config", response_model=Config)
    async def config() -> dict:
        """What the page needs to draw itself: features and their ranges, genres, limits,
        whether Spotify is configured and logged in. No secrets."""
        cached = spotify.TokenFile(spotify.token_cache_path()).get_cached_token()
        return {
            "version": __version__,
            "model": predictor.name,
            "catalog": str(catalog_path),
            "genres": load_index(catalog_path).genres,  # cached; a changed file re-reads
            "features": describe(),
            "max_upload": MAX_UPLOAD,
            "max_tracks": MAX_TRACKS,
            "spotify": {"configured": settings is not None, "logged_in": cached is not None},
        }

    @app.post("/api/predict", response_model=list[Prediction], responses=_errors(413, 422, 503))
    def predict_image(file: Annotated[UploadFile, File(description="The image.")]) -> list:
        """The image's eight features, as `pressedplay predict IMG --json`: a list of one."""
        return [predict(*_read_upload(file))]

    @app.post("/api/playlist", response_model=Playlist, responses=_errors(400, 413, 422, 503))
    def playlist(
        file: Annotated[UploadFile, File(description="The image.")],
        genre: Annotated[
            list[str] | None,
            Form(description="Keep tracks of this catalog genre (repeatable)."),
        ] = None,
        n: Annotated[int, Form(ge=1, le=MAX_TRACKS, description="Tracks in the playlist.")] = 20,
    ) -> dict:
        """The catalog tracks nearest to the image's features, as `pressedplay generate IMG
        --format json`."""
        result = predict(*_read_upload(file))
        answer = generate(result["features"], catalog=catalog_path, genres=genre or None, n=n)
        answer["model"] = result["model"]
        return answer

    @app.post("/api/feedback", response_model=FeedbackStored, responses=_errors(400, 413, 422, 503))
    def store_feedback(
        file: Annotated[UploadFile, File(description="The image the playlist was for.")],
        verdict: Annotated[Literal["like", "dislike"], Form()],
        track: Annotated[
            list[str] | None, Form(description="The judged playlist's track ids (repeat).")
        ] = None,
    ) -> dict:
        """Store a like or dislike, as `pressedplay feedback IMG --like --playlist FILE
        --json`: the image, this server's prediction for it, the verdict, the track ids and
        their mean features in the catalog. `train --feedback` learns from them."""
        name, data = _read_upload(file)
        track_ids = _track_ids(track)
        result = predict(name, data)
        row_id = feedback.record(
            feedback_path,
            image=data,
            image_name=name,
            model=result["model"],
            predicted=result["features"],
            verdict=verdict,
            track_ids=track_ids,
            playlist_features=feedback.playlist_features(track_ids, catalog_path),
        )
        return {
            "id": row_id,
            "db": str(feedback_path),
            "image": name,
            "verdict": verdict,
            "tracks": len(track_ids),
        }

    @app.post(
        "/api/spotify/playlist", response_model=SpotifySaved, responses=_errors(409, 422, 503)
    )
    def save_to_spotify(
        request: Request,
        file: Annotated[UploadFile, File(description="The picture: the playlist's cover.")],
        track: Annotated[
            list[str] | None, Form(description="Track ids, in order (repeat).")
        ] = None,
        name: Annotated[str | None, Form(max_length=100)] = None,
    ) -> dict:
        """A private playlist in the logged-in user's account with the picture as cover, as
        `generate --spotify` makes (409 before the login at /login)."""
        image_name, data = _read_upload(file)
        track_ids = _track_ids(track)
        sp = spotify_client(request)
        if spotify.login_url(sp) is not None:
            raise HTTPException(409, "log in to Spotify first (the page's login link, /login)")
        with gate.admitted():  # the cover is decoded and scaled for Spotify
            return spotify.create_playlist(
                sp,
                name or f"pressedplay: {Path(image_name).stem}",
                f"Tracks matching the picture {image_name}, picked by pressedplay "
                f"({predictor.name}).",
                track_ids,
                data,
            )

    @app.get("/login", include_in_schema=False)
    def login(request: Request) -> Response:
        """To Spotify's consent page; a random state in a cookie ties the answer to it."""
        try:
            sp = spotify_client(request)
        except HTTPException as exc:
            return _message_page("Spotify is not configured", str(exc.detail), 503)
        state = secrets.token_urlsafe(24)
        response = RedirectResponse(sp.auth_manager.get_authorize_url(state=state), 303)
        response.set_cookie(
            STATE_COOKIE, state, max_age=600, path="/callback", httponly=True, samesite="lax"
        )
        return response

    @app.get("/callback", include_in_schema=False)
    def callback(
        request: Request,
        code: str | None = None,
        state: str | None = None,
        error: str | None = None,
    ) -> Response:
        """Where Spotify sends the browser back: the code becomes a token in the CLI's
        token cache (spotify.token_cache_path())."""
        expected = request.cookies.get(STATE_COOKIE)
        if error is not None:
            page_ = _message_page("Not logged in", f"Spotify answered: {error[:100]}", 400)
        elif not (code and state and expected and secrets.compare_digest(state, expected)):
            page_ = _message_page(
                "Not logged in",
                "This login did not start here or took too long; log in again from the page.",
                400,
            )
        else:
            sp = spotify_client(request)
            try:
                with spotify.user_errors(sp):
                    sp.auth_manager.get_access_token(code, as_dict=False, check_cache=False)
                page_ = _message_page(
                    "Logged in to Spotify",
                    "You can close this tab: the pressedplay page can now save playlists.",
                )
            except UserError as exc:
                page_ = _message_page("Not logged in", str(exc), 502)
        page_.delete_cookie(STATE_COOKIE, path="/callback")
        return page_

    return app


def _spotify_settings(env_file: Path | None) -> dict[str, str] | None:
    """The Spotify app's settings (environment over env_file), or None without the id and
    secret: then the page offers no Spotify."""
    settings = spotify.read_settings(env_file, ())
    if spotify.ID_ENV in settings and spotify.SECRET_ENV in settings:
        return settings
    return None


def _add_error_handlers(app: FastAPI) -> None:
    """Every error as {"detail": one line}: bad input 4xx, anything else a bare 500."""

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        status = 422 if isinstance(exc, images.ImageError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        # ServerErrorMiddleware logs the traceback after this answer.
        return JSONResponse({"detail": "internal error (see the server's log)"}, 500)


def _one_line(errors: Sequence[dict]) -> str:
    """FastAPI's validation errors as `field: message; ...`."""
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid request"


# --- running it ------------------------------------------------------------------------
def hosts_for(host: str) -> tuple[str, ...]:
    """The Host headers to accept when listening on `host`: any on every interface (the
    user chose to be reachable by other names), else that address and the loopback names."""
    if host in ("0.0.0.0", "::", ""):
        return ("*",)
    return (host, *LOCAL_HOSTS) if host not in LOCAL_HOSTS else LOCAL_HOSTS


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), or UserError saying why not."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(info[4][:2], family=info[0], backlog=128)
    except socket.gaierror as exc:
        raise UserError(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})") from None
    except OSError as exc:  # create_server's message repeats the address: say it once
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UserError(f"cannot listen on {host}:{port}: {reason}") from None


def url(sock: socket.socket) -> str:
    """The base URL of a socket from `bind`."""
    address, port = sock.getsockname()[:2]
    return f"http://{f'[{address}]' if ':' in address else address}:{port}"


def _server(app: FastAPI, **options: Any) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, **options))


def serve(app: FastAPI, sock: socket.socket) -> None:
    """Serve until Ctrl+C (or SIGTERM), with uvicorn's console log."""
    try:
        _server(app, log_level="info").run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it shut down for
        pass
    finally:
        sock.close()


@contextmanager
def running(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` in a background thread; yields its base URL, stops on leaving.

    Logging is left as the caller set it up (uvicorn's records propagate to the root).
    """
    sock = bind(host, port)
    server = _server(app, log_config=None, timeout_graceful_shutdown=5)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server stopped while starting; see the log")
            time.sleep(0.01)
        yield url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
