"""The JSON API: each route parses its form, calls one use case of pressedplay.picture
and answers in the CLI's `--json` shape."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from pressedplay import __version__
from pressedplay.features import describe
from pressedplay.picture import playlist_for_picture, predict_features, record_verdict
from pressedplay.picture import save_to_spotify as save_playlist
from pressedplay.playlist import load_index
from pressedplay.server.context import Context, spotify_client
from pressedplay.server.limits import MAX_TRACKS, MAX_UPLOAD, read_upload, track_ids
from pressedplay.server.schemas import (
    Config,
    ContinuedPlaylist,
    FeedbackStored,
    Playlist,
    Prediction,
    SpotifySaved,
    errors,
)
from pressedplay.spotify_account import TokenFile, login_url, token_cache_path

router = APIRouter()

Image = Annotated[UploadFile, File(description="The image.")]


@router.get("/api/config", response_model=Config)
async def config(context: Context) -> dict:
    """What the page needs to draw itself: features and their ranges, genres, limits,
    whether Spotify is configured and logged in. No secrets."""
    cached = TokenFile(token_cache_path()).get_cached_token()
    continuing = context.continuing
    return {
        "version": __version__,
        "model": context.predictor.name,
        "catalog": str(context.catalog),
        # cached; a changed file re-reads. A continuation takes no genre filter.
        "genres": load_index(context.catalog).genres if continuing is None else [],
        "trecs_run": str(continuing.run) if continuing is not None else None,
        "features": describe(),
        "max_upload": MAX_UPLOAD,
        "max_tracks": MAX_TRACKS,
        "spotify": {"configured": context.settings is not None, "logged_in": cached is not None},
    }


@router.post("/api/predict", response_model=list[Prediction], responses=errors(413, 422, 503))
def predict_image(file: Image, context: Context) -> list:
    """The image's eight features, as `pressedplay predict IMG --json`: a list of one."""
    picture = read_upload(file)
    with context.gate.admitted():
        features = predict_features(picture, context.predictor, context.predicting)
    return [{"image": picture.name, "model": context.predictor.name, "features": features}]


def playlist(
    file: Image,
    context: Context,
    genre: Annotated[
        list[str] | None,
        Form(description="Keep tracks of this catalog genre (repeatable)."),
    ] = None,
    n: Annotated[int, Form(ge=1, le=MAX_TRACKS, description="Tracks in the playlist.")] = 20,
) -> dict:
    """The catalog tracks nearest to the image's features, as `pressedplay generate IMG
    --format json`; with `serve --continue`, their continuation by the trecs run, as
    `generate IMG --continue TRECS_RUN --format json`."""
    picture = read_upload(file)
    with context.gate.admitted():
        return playlist_for_picture(
            picture,
            context.predictor,
            catalog=context.catalog,
            genres=genre,
            n=n,
            continuing=context.continuing,
            guard=context.predicting,
        ).playlist


def playlist_router(continuing: bool) -> APIRouter:
    """/api/playlist, documented in the shape this app answers in."""
    shape: type[BaseModel] = ContinuedPlaylist if continuing else Playlist
    router = APIRouter()
    router.add_api_route(
        "/api/playlist",
        playlist,
        methods=["POST"],
        response_model=shape,
        responses=errors(400, 413, 422, 503),
    )
    return router


@router.post("/api/feedback", response_model=FeedbackStored, responses=errors(400, 413, 422, 503))
def store_feedback(
    file: Annotated[UploadFile, File(description="The image the playlist was for.")],
    verdict: Annotated[Literal["like", "dislike"], Form()],
    context: Context,
    track: Annotated[
        list[str] | None, Form(description="The judged playlist's track ids (repeat).")
    ] = None,
) -> dict:
    """Store a like or dislike, as `pressedplay feedback IMG --like --playlist FILE
    --json`: the image, this server's prediction for it, the verdict, the track ids and
    their mean features in the catalog. `train --feedback` learns from them."""
    picture = read_upload(file)
    ids = track_ids(track)
    with context.gate.admitted():
        return record_verdict(
            picture,
            context.predictor,
            verdict,
            track_ids=ids,
            catalog=context.catalog,
            feedback_db=context.feedback_db,
            guard=context.predicting,
        )


@router.post("/api/spotify/playlist", response_model=SpotifySaved, responses=errors(409, 422, 503))
def save_to_spotify(
    request: Request,
    file: Annotated[UploadFile, File(description="The picture: the playlist's cover.")],
    context: Context,
    track: Annotated[list[str] | None, Form(description="Track ids, in order (repeat).")] = None,
    name: Annotated[str | None, Form(max_length=100)] = None,
) -> dict:
    """A private playlist in the logged-in user's account with the picture as cover, as
    `generate --spotify` makes (409 before the login at /login)."""
    picture = read_upload(file)
    ids = track_ids(track)
    sp = spotify_client(context, request)
    if login_url(sp) is not None:
        raise HTTPException(409, "log in to Spotify first (the page's login link, /login)")
    with context.gate.admitted():  # the cover is decoded and scaled for Spotify
        return save_playlist(sp, picture, ids, context.predictor.name, name)
