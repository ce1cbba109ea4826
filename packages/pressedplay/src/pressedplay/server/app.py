"""create_app: the FastAPI app for one model, one catalog and one feedback database."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from pressedplay import __version__, continuation, feedback, images, spotify
from pressedplay.catalog import resolve_catalog
from pressedplay.errors import UserError
from pressedplay.picture import Continuation
from pressedplay.playlist import load_index
from pressedplay.predict import load_predictor
from pressedplay.server import pages, routes
from pressedplay.server.context import ServerContext
from pressedplay.server.limits import IMAGE_QUEUE, MAX_BODY, BodyLimit, ImageGate, SameOrigin
from pressedplay.server.running import LOCAL_HOSTS, quiet_access_log


def create_app(
    *,
    model: str | Path | None = None,
    catalog: str | Path | None = None,
    feedback_db: Path | None = None,
    device: str = "cpu",
    env_file: Path | None = Path(".env"),
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
    image_queue: int = IMAGE_QUEUE,
    continuing: Continuation | None = None,
) -> FastAPI:
    """The app for one model (as `predict --model`), one catalog (as `generate --catalog`)
    and one feedback database (default: the data folder's); with `continuing`, playlists
    are a trecs run's continuations (as `generate --continue`). Spotify is offered when
    SPOTIFY_CLIENT_ID and SPOTIFY_CLIENT_SECRET are in the environment or `env_file`.

    The model, the catalog, the trecs run and the packaged page are loaded here, so a
    wrong name fails before anything is served. Requests naming another Host are refused
    (400): a web page elsewhere could otherwise reach this local server through a
    rebound DNS name.
    """
    predictor = load_predictor(model, device=device)
    catalog_path = resolve_catalog(catalog)
    load_index(catalog_path)  # a missing or broken catalog stops serve before it starts
    if continuing is not None:
        continuation.load_continuer(continuing.run, continuing.db)  # and so does a bad run
    context = ServerContext(
        predictor=predictor,
        catalog=catalog_path,
        feedback_db=Path(feedback_db) if feedback_db is not None else feedback.default_path(),
        web=pages.read_web(),
        settings=_spotify_settings(env_file),
        gate=ImageGate(image_queue),
        continuing=continuing,
    )
    quiet_access_log()

    app = FastAPI(
        title="pressedplay",
        version=__version__,
        summary="From a picture to audio features to a playlist of real tracks.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the page loads nothing
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(SameOrigin)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))  # runs first
    _add_error_handlers(app)
    app.state.context = context
    app.state.image_gate = context.gate
    app.include_router(pages.router)
    app.include_router(routes.router)
    app.include_router(routes.playlist_router(continuing is not None))
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
