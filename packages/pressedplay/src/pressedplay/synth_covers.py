"""Synthetic cover images with a planted, learnable relation to their tracks' features.

Real covers with audio features need Spotify and a catalog; tests, benchmarks and the
demo need a dataset anywhere, offline, in seconds. Each synthetic cover is a playlist
with a hidden mood (a 3-d latent: positiveness, arousal, acoustic-ness). Its tracks'
eight features scatter around that mood, and the image is drawn from the mean of those
features plus noise, so a model can learn the features from the image, but not exactly:

- hue (warm vs cold) and lightness <- valence
- saturation, and the number of shapes (edge density) <- energy
- smoothness (blur) <- acousticness
- stripe frequency <- danceability
- contrast of the shapes against the background <- loudness
- round vs angular shapes <- instrumentalness
- thin text-like bars <- speechiness
- film grain <- liveness
"""

from __future__ import annotations

import colorsys
import csv
import functools
import io
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pressedplay import catalog_csv, dataset, paths
from pressedplay.errors import UserError
from pressedplay.features import FEATURES, NAMES

SIZE = 256
JPEG_QUALITY = 90
_ID_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
_GENRES = {
    "edm": "progressive electro house",
    "latin": "tropical",
    "pop": "dance pop",
    "r&b": "neo soul",
    "rap": "trap",
    "rock": "classic rock",
}
_TIDYTUESDAY_COLUMNS = (
    "track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
    "track_album_release_date,playlist_name,playlist_id,playlist_genre,playlist_subgenre,"
    "danceability,energy,key,loudness,mode,speechiness,acousticness,instrumentalness,"
    "liveness,valence,tempo,duration_ms"
).split(",")
_LOUDNESS = NAMES.index("loudness")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _track_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_ID_ALPHABET, 22))


def cover_tracks(rng: np.random.Generator, n: int) -> np.ndarray:
    """Features (n, 8) in NAMES order for one cover's tracks, scattered around its mood."""
    positive, arousal, organic = rng.normal(size=3)
    centre = {
        "acousticness": 1.4 * organic - 0.7 * arousal - 0.3,
        "danceability": 0.5 * positive + 0.6 * arousal + 0.4,
        "energy": 1.4 * arousal - 0.5 * organic + 0.4,
        "instrumentalness": 1.0 * organic - 2.0,
        "liveness": -1.6,
        "loudness": 0.0,  # in dB below, not a logit
        "speechiness": -2.4 + 0.4 * arousal - 0.3 * organic,
        "valence": 1.4 * positive + 0.3 * arousal,
    }
    logits = np.array([centre[name] for name in NAMES]) + rng.normal(0.0, 0.3, size=8)
    features = _sigmoid(logits + rng.normal(0.0, 0.6, size=(n, 8)))
    loud_db = -7.0 + 2.5 * arousal - 1.5 * organic + rng.normal(0.0, 1.0)
    low, high = FEATURES[_LOUDNESS].low, FEATURES[_LOUDNESS].high
    features[:, _LOUDNESS] = np.clip(loud_db + rng.normal(0.0, 1.5, size=n), low, high)
    return features


def _rgb(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, min(max(saturation, 0), 1), min(max(value, 0), 1))
    return round(r * 255), round(g * 255), round(b * 255)


@functools.cache
def _grid(size: int) -> np.ndarray:
    """Pixel coordinates (y, x) in [0, 1), float32, shared by every cover of a size."""
    return (np.mgrid[0:size, 0:size] / size).astype(np.float32)


def render(features: np.ndarray, rng: np.random.Generator, size: int = SIZE) -> bytes:
    """A JPEG cover drawn from one cover's mean features (8, NAMES order), plus noise."""
    f = dict(zip(NAMES, (float(x) for x in features), strict=True))
    loud = min(max((f["loudness"] + 20.0) / 18.0, 0.0), 1.0)
    # Cold blue (0.62) for sad covers to warm orange (0.05) for happy ones.
    hue = 0.62 - 0.57 * f["valence"] + rng.normal(0.0, 0.04)
    value = 0.3 + 0.55 * f["valence"] + rng.normal(0.0, 0.05)
    saturation = 0.15 + 0.75 * f["energy"] + rng.normal(0.0, 0.05)

    # Background: a linear gradient from the base colour to a darker neighbour.
    y, x = _grid(size)
    angle = rng.uniform(0, 2 * math.pi)
    along = np.clip(0.5 + (x - 0.5) * math.cos(angle) + (y - 0.5) * math.sin(angle), 0, 1)
    start = np.array(_rgb(hue, saturation, value), dtype=np.float32)
    end = np.array(_rgb(hue + rng.normal(0.0, 0.05), saturation, value * 0.7), dtype=np.float32)
    pixels = start + along[..., None] * (end - start)  # float32 (size, size, 3)

    # Stripes whose frequency follows danceability.
    cycles = 2 + 14 * f["danceability"] + rng.normal(0.0, 0.5)
    stripe_angle = rng.uniform(0, math.pi)
    phase = (x * math.cos(stripe_angle) + y * math.sin(stripe_angle)) * cycles * 2 * math.pi
    pixels *= (1 + 0.18 * np.sin(phase + rng.uniform(0, 2 * math.pi)))[..., None]
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    # Shapes: more of them with energy, round with instrumentalness, contrast with loudness.
    draw = ImageDraw.Draw(image)
    contrast = 0.1 + 0.5 * loud
    for _ in range(int(rng.poisson(2 + 25 * f["energy"]))):
        shade = value + contrast * rng.choice((-1.0, 1.0))
        colour = _rgb(hue + rng.normal(0.0, 0.08), saturation, shade)
        cx, cy = rng.uniform(0, size, size=2)
        radius = rng.uniform(0.03, 0.15) * size
        if rng.random() < f["instrumentalness"] * 0.8 + 0.1:
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
        else:
            corners = int(rng.integers(3, 6))
            turn = rng.uniform(0, 2 * math.pi)
            draw.polygon(
                [
                    (
                        cx + radius * math.cos(turn + 2 * math.pi * c / corners),
                        cy + radius * math.sin(turn + 2 * math.pi * c / corners),
                    )
                    for c in range(corners)
                ],
                fill=colour,
            )
    # Text-like bars for speechy tracks.
    ink = _rgb(hue + 0.5, 0.1, 1.0 - value)
    for _ in range(int(rng.poisson(1 + 20 * f["speechiness"]))):
        left, top = rng.uniform(0.05, 0.6) * size, rng.uniform(0.05, 0.95) * size
        draw.rectangle((left, top, left + rng.uniform(0.1, 0.35) * size, top + 3), fill=ink)

    blur = 3.5 * f["acousticness"] + abs(rng.normal(0.0, 0.2))
    image = image.filter(ImageFilter.GaussianBlur(blur))
    grain = rng.standard_normal((size, size, 1), dtype=np.float32) * (3 + 25 * f["liveness"])
    pixels = np.clip(np.asarray(image, dtype=np.float32) + grain, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def _cover(seed: int, index: int, tracks_per_cover: int) -> tuple[list[dict], Callable[[], bytes]]:
    """One cover's catalog rows and its image renderer, seeded by (seed, index) alone.

    So a resumed run produces the same covers and can skip rendering the ones it has.
    """
    rng = np.random.default_rng([seed, index])
    features = cover_tracks(rng, tracks_per_cover)
    f = dict(zip(NAMES, features.mean(axis=0), strict=True))
    genre = list(_GENRES)[int(np.argmax(_genre_scores(f)))]
    playlist = _track_id(rng)
    rows = []
    for t, track in enumerate(features):
        row = dict(zip(NAMES, (round(float(v), 4) for v in track), strict=True))
        album = _track_id(rng)
        row.update(
            track_id=_track_id(rng),
            track_name=f"Synth Track {index}-{t}",
            track_artist=f"Synth Artist {int(rng.integers(0, 500))}",
            track_popularity=int(rng.integers(0, 101)),
            track_album_id=album,
            track_album_name=f"Synth Album {album[:6]}",
            track_album_release_date=f"{int(rng.integers(1970, 2025))}-01-01",
            playlist_name=f"Synth Playlist {index}",
            playlist_id=playlist,
            playlist_genre=genre,
            playlist_subgenre=_GENRES[genre],
            key=int(rng.integers(0, 12)),
            mode=int(rng.integers(0, 2)),
            tempo=round(float(80 + 80 * row["danceability"] + rng.normal(0, 10)), 3),
            duration_ms=int(rng.integers(120_000, 300_000)),
        )
        rows.append(row)
    mean = np.array([[row[name] for name in NAMES] for row in rows]).mean(axis=0)
    return rows, lambda: render(mean, rng)


def _genre_scores(f: dict) -> list[float]:
    """A plausible genre for the playlist's mood (edm, latin, pop, r&b, rap, rock)."""
    return [
        f["energy"] + f["danceability"] - f["acousticness"],
        f["valence"] + f["danceability"],
        0.6 + 0.2 * f["valence"],
        f["acousticness"] + 0.5 * (1 - f["energy"]),
        4 * f["speechiness"] + f["danceability"] - 0.3,
        f["energy"] + f["instrumentalness"] - f["danceability"] + 0.2,
    ]


def synth_covers(
    out: Path,
    *,
    covers: int = 2000,
    tracks_per_cover: int = 20,
    seed: int = 0,
    catalog_name: str | None = "synth",
    force: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Write a synthetic cover dataset to `out` and, unless None, a matching catalog.

    The same seed gives the same covers, tracks and split. An interrupted run resumes
    from the partial dataset. The catalog (a TidyTuesday-layout CSV imported with
    `catalog_csv.import_csv`) holds every track, so collectors and recommenders can find
    them by id like real tracks.
    """
    if covers < 1:
        raise UserError(f"--covers must be at least 1, got {covers}.")
    if tracks_per_cover < 1:
        raise UserError(f"--tracks-per-cover must be at least 1, got {tracks_per_cover}.")
    if catalog_name is not None and paths.catalog_path(catalog_name).exists() and not force:
        raise UserError(f"catalog {catalog_name!r} already exists; pass --force to replace it.")
    source = f"synth-covers seed={seed} covers={covers} tracks_per_cover={tracks_per_cover}"
    with tempfile.TemporaryDirectory(prefix="pressedplay-synth-") as tmp:
        csv_path = Path(tmp) / "synth_songs.csv"
        with (
            open(csv_path, "w", newline="", encoding="utf-8") as handle,
            dataset.DatasetWriter(
                Path(out),
                source=source,
                force=force,
                seed=seed,
                commit_every=dataset.LOCAL_COMMIT_EVERY,
            ) as writer,
        ):
            rows_out = csv.DictWriter(handle, fieldnames=_TIDYTUESDAY_COLUMNS)
            rows_out.writeheader()
            for index in range(covers):
                rows, image = _cover(seed, index, tracks_per_cover)
                rows_out.writerows(rows)
                key = f"synth:{index}"
                if not writer.is_done(key):
                    tracks = [
                        dataset.TrackFeatures(
                            row["track_id"],
                            row["track_name"],
                            row["track_artist"],
                            tuple(float(row[name]) for name in NAMES),
                        )
                        for row in rows
                    ]
                    writer.add_cover(image(), key, tracks, key=key)
                if progress is not None:
                    progress(1)
            report = writer.finish()
        if catalog_name is not None:
            report["catalog"] = catalog_csv.import_csv(csv_path, catalog_name, force=True)
    return report
