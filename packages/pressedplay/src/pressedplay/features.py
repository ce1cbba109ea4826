"""The eight audio features pressedplay predicts from an image, in model output order.

Ranges are those of Spotify's (now removed) audio-features endpoint, which the track
catalogs still carry; the model is trained on standardised values and reports these units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Feature:
    name: str
    low: float
    high: float
    unit: str
    meaning: str


FEATURES: tuple[Feature, ...] = (
    Feature("acousticness", 0.0, 1.0, "", "confidence that the track is acoustic"),
    Feature("danceability", 0.0, 1.0, "", "how suitable for dancing: tempo, rhythm, beat strength"),
    Feature("energy", 0.0, 1.0, "", "perceived intensity and activity"),
    Feature("instrumentalness", 0.0, 1.0, "", "likelihood that the track has no vocals"),
    Feature("liveness", 0.0, 1.0, "", "likelihood that an audience is audible"),
    Feature("loudness", -60.0, 0.0, "dB", "average loudness of the track"),
    Feature("speechiness", 0.0, 1.0, "", "presence of spoken words"),
    Feature("valence", 0.0, 1.0, "", "musical positiveness: happy, cheerful, euphoric"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
# What imported data may hold: the nominal ranges, except that real masters go above
# 0 dB (the TidyTuesday file has six tracks up to +1.3 dB): refuse only the absurd.
ACCEPTED: dict[str, tuple[float, float]] = {f.name: (f.low, f.high) for f in FEATURES} | {
    "loudness": (-60.0, 5.0)
}


def describe() -> list[dict]:
    """The features as plain dicts, for JSON output."""
    return [asdict(f) for f in FEATURES]
