"""What every route needs of its app, loaded once by create_app: the routes reach it as a
FastAPI dependency, so they stay module-level functions on a router."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import spotipy
from fastapi import Depends, Request
from starlette.exceptions import HTTPException

from pressedplay import spotify, spotify_account
from pressedplay.picture import Continuation
from pressedplay.predict import Predictor
from pressedplay.server.limits import ImageGate


@dataclass
class ServerContext:
    """One model, one catalog, one feedback database, the packaged page files, the Spotify
    app's settings (None: not configured) and, with `serve --continue`, the trecs run."""

    predictor: Predictor
    catalog: Path
    feedback_db: Path
    web: dict[str, bytes]
    settings: dict[str, str] | None
    gate: ImageGate
    continuing: Continuation | None = None
    # One forward pass at a time: CPU-bound, and not re-entrant.
    predicting: threading.Lock = field(default_factory=threading.Lock)


async def _context(request: Request) -> ServerContext:
    # async: resolved on the event loop, never waiting for a thread behind pictures.
    return request.app.state.context


Context = Annotated[ServerContext, Depends(_context)]


def spotify_client(context: ServerContext, request: Request) -> spotipy.Spotify:
    """The user client of the configured Spotify app, logging in through /callback;
    503 when no app is configured."""
    settings = context.settings
    if settings is None:
        raise HTTPException(
            503,
            f"Spotify is not configured: set {spotify.ID_ENV} and {spotify.SECRET_ENV} "
            "and restart `pressedplay serve`",
        )
    return spotify_account.make_user_client(
        settings[spotify.ID_ENV],
        settings[spotify.SECRET_ENV],
        str(request.url_for("callback")),
        api_url=settings.get(spotify.API_URL_ENV, spotify.API_URL),
        accounts_url=settings.get(spotify.ACCOUNTS_URL_ENV, spotify.ACCOUNTS_URL),
        open_browser=False,
    )
