"""A playlist for a picture: the catalog tracks nearest to its predicted features.

The features come from a predictor (pressedplay.predict); this module only turns them into
tracks (pressedplay.retrieval), picks the genre filter from the user's Spotify top artists
when asked (pressedplay.genres), and writes the result as M3U.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import spotipy

from pressedplay.catalog import resolve_catalog
from pressedplay.features import NAMES
from pressedplay.genres import GenreMapper
from pressedplay.paths import file_version
from pressedplay.retrieval import CatalogIndex
from pressedplay.spotify_account import top_artist_genres
from pressedplay.terminal import printable


@functools.lru_cache(maxsize=2)
def _index(path: str, mtime_ns: int, size: int) -> CatalogIndex:
    """Loaded once per catalog file version: the web server asks again and again."""
    return CatalogIndex.load(path)


def load_index(catalog: str | Path | None = None) -> CatalogIndex:
    """The index of a catalog name or file (None: the default catalog), cached while the
    file is unchanged. No catalog: the UserError that says how to get one."""
    return _index(*file_version(resolve_catalog(catalog)))


def generate(
    features: Mapping[str, float],
    *,
    catalog: str | Path | None = None,
    genres: Sequence[str] | None = None,
    n: int = 20,
    max_per_artist: int = 2,
) -> dict:
    """The `n` catalog tracks nearest to `features` (original units), nearest first."""
    path = resolve_catalog(catalog)
    hits = load_index(path).search(features, n=n, genres=genres, max_per_artist=max_per_artist)
    return {
        "features": {name: float(features[name]) for name in NAMES},
        "catalog": str(path),
        "genres": list(genres) if genres else None,
        "tracks": [hit.as_dict() for hit in hits],
    }


def genres_for_user(
    sp: spotipy.Spotify,
    catalog_genres: Sequence[str],
    mapping: Mapping[str, Sequence[str]] | None = None,
) -> tuple[list[str], str | None]:
    """The catalog genres of the user's top artists, most of them first, and a note when
    there is no filter to apply (Spotify gave no genres, or none maps onto the catalog)."""
    fine = top_artist_genres(sp)
    if not fine:
        return [], (
            "Spotify gave no genres for your top artists (it withholds artist genres from "
            "development-mode apps since 2026): no genre filter"
        )
    mapper = GenreMapper(catalog_genres, mapping)
    votes: Counter[str] = Counter()
    for genre in fine:
        votes.update(mapper.map(genre))
    if not votes:
        shown = ", ".join(fine[:5]) + (", ..." if len(fine) > 5 else "")
        return [], (
            f"none of your top artists' genres ({shown}) matches the catalog's genres "
            f"({', '.join(catalog_genres)}): no genre filter"
        )
    return [genre for genre, _ in votes.most_common()], None


def to_m3u(result: Mapping) -> str:
    """An extended M3U playlist of open.spotify.com track links, "artist - name" as titles."""
    lines = ["#EXTM3U"]
    for track in result["tracks"]:
        title = printable(f"{track['artist']} - {track['name']}")
        lines += [f"#EXTINF:-1,{title}", printable(track["url"])]
    return "\n".join(lines) + "\n"
