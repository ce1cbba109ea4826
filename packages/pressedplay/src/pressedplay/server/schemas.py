"""The API's JSON shapes: they validate the answers and describe them at /openapi.json."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from pressedplay.features import FEATURES, Feature


def _range(feature: Feature) -> str:
    unit = f" {feature.unit}" if feature.unit else ""
    return f"{feature.meaning}, {feature.low:g} to {feature.high:g}{unit}"


Features = create_model(
    "Features", **{f.name: (float, Field(description=_range(f))) for f in FEATURES}
)


class Problem(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route, for its `responses`."""
    return {status: {"model": Problem} for status in statuses}


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


class Seed(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    artist: str
    distance: float = Field(description="Euclidean, in the run's tracks' standardised units.")
    url: str


class ContinuedTrack(Seed):
    score: float = Field(description="The transformer's log-probability of the track.")
    rank: int = Field(description="Its place among the transformer's candidates.")


class ContinuedPlaylist(BaseModel):
    """`serve --continue`: as `generate --continue --format json`."""

    model_config = ConfigDict(extra="allow")
    features: Features
    model: str
    trecs_run: str
    db: str = Field(description="The trecs database the tracks come from.")
    feature_weight: float
    seeds: list[Seed] = Field(description="The tracks nearest the picture, continued.")
    tracks: list[ContinuedTrack]


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
    genres: list[str] = Field(
        description="The catalog's genres, most tracks first; none with a trecs run."
    )
    trecs_run: str | None = Field(description="`serve --continue`: the trecs run, if any.")
    features: list[FeatureRange]
    max_upload: int = Field(description="The largest image accepted, in bytes.")
    max_tracks: int
    spotify: SpotifyState
