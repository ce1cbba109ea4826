"""Where a picture becomes a playlist: the use cases that `pressedplay generate`,
`pressedplay feedback` and the web server share.

Each function takes a picture already read and a loaded predictor, so the CLI (a file,
one call) and the server (an upload, a model kept loaded, one forward pass at a time)
run the same steps in the same order; they only parse their input and render the answer.
Nothing here prints: what a user should be told comes back as data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import spotipy

from pressedplay import continuation, feedback
from pressedplay.catalog import resolve_catalog
from pressedplay.errors import UserError
from pressedplay.images import ImageError
from pressedplay.playlist import generate, genres_for_user, load_index
from pressedplay.predict import Predictor, predict_one, read
from pressedplay.spotify_account import create_playlist

# Held while a picture is decoded and predicted: the server's lock (one forward pass at a
# time), nothing for the CLI.
Guard = AbstractContextManager[object]


@dataclass(frozen=True)
class Picture:
    """An image's bytes and the name it is shown under (the CLI's path as given, the
    upload's file name)."""

    name: str
    data: bytes


def read_picture(path: Path) -> Picture:
    """A picture file, or UserError "PATH: reason" (a FIFO, a folder, too large...)."""
    try:
        return Picture(str(path), read(path))
    except ImageError as exc:
        raise UserError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class Continuation:
    """`--continue TRECS_RUN`: the picture's nearest tracks continued by a trecs run's
    transformer (pressedplay.continuation), with its knobs."""

    run: Path
    db: Path | None = None
    feature_weight: float = continuation.DEFAULT_FEATURE_WEIGHT
    seeds: int = continuation.DEFAULT_SEEDS
    candidates: int = continuation.DEFAULT_CANDIDATES


@dataclass(frozen=True)
class PicturePlaylist:
    """A playlist in `generate --format json`'s shape, and what the user should be told
    about it (a genre filter that could not be applied, a short continuation)."""

    playlist: dict
    notices: list[str] = field(default_factory=list)


def predict_features(picture: Picture, predictor: Predictor, guard: Guard | None = None) -> dict:
    """The picture's features (original units), or ImageError "NAME: reason"."""
    with guard or nullcontext():
        return predict_one(picture.name, picture.data, predictor)["features"]


def playlist_for_picture(
    picture: Picture,
    predictor: Predictor,
    *,
    catalog: str | Path | None = None,
    genres: Sequence[str] | None = None,
    genre_mapping: Path | None = None,
    n: int = 20,
    max_per_artist: int = 2,
    continuing: Continuation | None = None,
    spotify: Callable[[], spotipy.Spotify] | None = None,
    guard: Guard | None = None,
) -> PicturePlaylist:
    """The catalog tracks nearest to the picture's features, or with `continuing` a trecs
    transformer's continuation of them; with `spotify` (called after the prediction, so a
    bad picture never asks for a login) also saved there as a private playlist.

    Without `genres`, a Spotify user's top artists' genres filter the catalog (mapped by
    `genre_mapping`, a {fine genre: [genres]} file); a continuation takes no genre filter
    (the trecs database has none).
    """
    if continuing is not None and (genres or genre_mapping is not None):
        raise UserError(
            "a genre filter does not apply to a continuation: its tracks come from the "
            "trecs database"
        )
    if continuing is not None:
        continuation.require_trecs()  # before the picture's features are predicted
    features = predict_features(picture, predictor, guard)
    client = spotify() if spotify is not None else None
    notices: list[str] = []
    if continuing is not None:
        playlist = _continue(features, continuing, n, max_per_artist, notices)
    else:
        if client is not None and not genres:
            genres = _user_genres(client, catalog, genre_mapping, notices)
        playlist = generate(
            features, catalog=catalog, genres=genres or None, n=n, max_per_artist=max_per_artist
        )
    playlist["model"] = predictor.name
    if client is not None:
        track_ids = [track["id"] for track in playlist["tracks"]]
        playlist["spotify"] = save_to_spotify(client, picture, track_ids, predictor.name)
    return PicturePlaylist(playlist, notices)


def _user_genres(
    client: spotipy.Spotify,
    catalog: str | Path | None,
    mapping_file: Path | None,
    notices: list[str],
) -> list[str]:
    """The catalog genres of the user's top artists; a notice when there are none."""
    from pressedplay.genres import load_mapping

    mapping = load_mapping(mapping_file) if mapping_file is not None else None
    # The index generate() searches next (cached), not a second catalog query.
    genres, note = genres_for_user(client, load_index(catalog).genres, mapping)
    if note:
        notices.append(note)
    return genres


def _continue(
    features: dict, continuing: Continuation, n: int, max_per_artist: int, notices: list[str]
) -> dict:
    playlist = continuation.load_continuer(continuing.run, continuing.db).continue_playlist(
        features,
        n=n,
        feature_weight=continuing.feature_weight,
        seeds=continuing.seeds,
        candidates=continuing.candidates,
        max_per_artist=max_per_artist,
    )
    if len(playlist["tracks"]) < n:
        notices.append(
            f"only {len(playlist['tracks'])} tracks: the run knows no more tracks with "
            "audio features under the artist cap"
        )
    return playlist


def save_to_spotify(
    client: spotipy.Spotify,
    picture: Picture,
    track_ids: Sequence[str],
    model: str,
    name: str | None = None,
) -> dict:
    """A private playlist of the tracks in the user's account, the picture as its cover:
    {"id", "url", "tracks", "cover", "warnings"}. Named after the picture unless `name`."""
    path = Path(picture.name)
    return create_playlist(
        client,
        name or f"pressedplay: {path.stem}",
        f"Tracks matching the picture {path.name}, picked by pressedplay ({model}).",
        track_ids,
        picture.data,
    )


def record_verdict(
    picture: Picture,
    predictor: Predictor,
    verdict: feedback.Verdict,
    *,
    playlist: str | None = None,
    track_ids: Sequence[str] = (),
    catalog: str | Path | None = None,
    feedback_db: Path | None = None,
    guard: Guard | None = None,
) -> dict:
    """Store a like or dislike with the picture and this predictor's features for it
    (re-predicted: the verdict is on what the model says now), as `feedback --json`.

    The judged tracks are `track_ids`, or those of `playlist` (a `generate` output file or
    a Spotify playlist reference, parsed after the picture so its errors come first);
    their mean features in the catalog are stored as the verdict's target.
    """
    features = predict_features(picture, predictor, guard)
    reference = None
    if playlist:
        reference, track_ids = feedback.parse_playlist(playlist)
    playlist_features = None
    if track_ids:
        playlist_features = feedback.playlist_features(track_ids, resolve_catalog(catalog))
    path = feedback_db or feedback.default_path()
    row_id = feedback.record(
        path,
        image=picture.data,
        image_name=picture.name,
        model=predictor.name,
        predicted=features,
        verdict=verdict,
        playlist_ref=reference,
        track_ids=list(track_ids),
        playlist_features=playlist_features,
    )
    return {
        "id": row_id,
        "db": str(path),
        "image": picture.name,
        "verdict": verdict,
        "tracks": len(track_ids),
    }
