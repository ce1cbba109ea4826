"""Nearest catalog tracks to a set of features, in the catalog's standardised feature space.

Raw features live on different scales (loudness in dB next to 0-1 values), so distances are
measured after subtracting the catalog's mean and dividing by its standard deviation per
feature. The search is exact brute force: at eight dimensions a matrix-vector product over
a contiguous float32 matrix plus a partial sort answers a million tracks in milliseconds,
which no approximate index would beat by enough to be worth its inexactness.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Real
from pathlib import Path

import numpy as np

from pressedplay.catalog import Catalog
from pressedplay.errors import UserError
from pressedplay.features import NAMES

TRACK_URL = "https://open.spotify.com/track/"


@dataclass(frozen=True)
class Hit:
    id: str
    name: str
    artist: str
    genres: tuple[str, ...]
    distance: float  # Euclidean, in the catalog's standardised units
    url: str

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "artist": self.artist,
            "genres": list(self.genres),
            "distance": self.distance,
            "url": self.url,
        }


@dataclass(frozen=True)
class _Block:
    """Rows of the catalog scanned together: their indices, standardised features, norms."""

    rows: np.ndarray
    matrix: np.ndarray
    norms: np.ndarray


def _key(genre: str) -> str:
    """Genre names are matched case-insensitively: "R&B" is the catalog's "r&b"."""
    return genre.strip().casefold()


class CatalogIndex:
    """A catalog held in memory for repeated nearest-neighbour queries.

    Track genres are kept compressed (genre codes with per-track offsets); a genre's own
    matrix is built when first queried, so a catalog with a hundred genres does not hold
    copies for genres nobody asks for.
    """

    def __init__(
        self,
        ids: Sequence[str],
        names: Sequence[str],
        artists: Sequence[str],
        features: np.ndarray,
        genre_names: Sequence[str],
        genre_offsets: np.ndarray,
        genre_codes: np.ndarray,
    ) -> None:
        features = np.asarray(features, dtype=np.float64)
        n = len(ids)
        if features.shape != (n, len(NAMES)) or len(names) != n or len(artists) != n:
            raise ValueError(f"{n} ids need {n} names, artists and an ({n}, 8) feature array")
        self.ids = list(ids)
        self.names = list(names)
        self.artists = list(artists)
        self.features = features.astype(np.float32)
        self.mean = features.mean(axis=0) if n else np.zeros(len(NAMES))
        std = features.std(axis=0) if n else np.ones(len(NAMES))
        # A feature that never varies in this catalog cannot separate tracks: leave it unscaled.
        self.std = np.where(std > 0, std, 1.0)
        self.matrix = np.ascontiguousarray((features - self.mean) / self.std, dtype=np.float32)
        self._norms = np.einsum("ij,ij->i", self.matrix, self.matrix)
        codes: dict[str, int] = {}
        self._artist_codes = np.fromiter(
            (codes.setdefault(a.casefold(), len(codes)) for a in self.artists),
            dtype=np.int64,
            count=n,
        )
        self._genre_names = list(genre_names)
        self._genre_offsets = np.asarray(genre_offsets, dtype=np.int64)
        self._genre_codes = np.asarray(genre_codes, dtype=np.int32)
        counts = np.bincount(self._genre_codes, minlength=len(self._genre_names))
        order = sorted(range(len(self._genre_names)), key=lambda g: (-counts[g], genre_names[g]))
        self.genre_counts = {self._genre_names[g]: int(counts[g]) for g in order}
        self._genre_lookup = {_key(name): g for g, name in enumerate(self._genre_names)}
        self._all = _Block(np.arange(n), self.matrix, self._norms)
        self._genre_blocks: dict[int, _Block] = {}

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        ids: Sequence[str],
        names: Sequence[str],
        artists: Sequence[str],
        features: np.ndarray,
        genres: Sequence[Sequence[str]] | None = None,
    ) -> CatalogIndex:
        """An index over tracks given in memory; `genres` holds each track's genre names."""
        genres = genres if genres is not None else [()] * len(ids)
        if len(genres) != len(ids):
            raise ValueError(f"{len(ids)} ids need {len(ids)} genre lists, not {len(genres)}")
        lookup: dict[str, int] = {}
        offsets = np.zeros(len(ids) + 1, dtype=np.int64)
        codes: list[int] = []
        for i, track_genres in enumerate(genres):
            codes.extend(lookup.setdefault(g, len(lookup)) for g in dict.fromkeys(track_genres))
            offsets[i + 1] = len(codes)
        return cls(ids, names, artists, features, list(lookup), offsets, np.array(codes))

    @classmethod
    def load(cls, catalog_path: Path | str) -> CatalogIndex:
        """All tracks of a catalog file, with their distinct genres."""
        width = len(NAMES)
        ids: list[str] = []
        names: list[str] = []
        artists: list[str] = []
        genres: list[Sequence[str]] = []
        with Catalog(catalog_path) as catalog:
            features = np.empty((len(catalog), width), dtype=np.float64)
            for i, (track_id, name, artist, values, track_genres) in enumerate(
                catalog.tracks_with_genres()
            ):
                ids.append(track_id)
                names.append(name)
                artists.append(artist)
                features[i] = values
                genres.append(track_genres)
        return cls.from_arrays(ids, names, artists, features, genres)

    # --- what it holds ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    @property
    def genres(self) -> list[str]:
        """The catalog's genres, most tracks first."""
        return list(self.genre_counts)

    def track_genres(self, row: int) -> tuple[str, ...]:
        start, stop = self._genre_offsets[row], self._genre_offsets[row + 1]
        return tuple(self._genre_names[c] for c in self._genre_codes[start:stop])

    def standardise(self, features: Mapping[str, float]) -> np.ndarray:
        """Features in original units -> the catalog's standardised space (float64)."""
        missing = [n for n in NAMES if n not in features]
        if missing:
            raise UserError(f"features missing: {', '.join(missing)}")
        values = []
        for name in NAMES:
            value = features[name]
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
                raise UserError(f"feature {name} must be a finite number, not {value!r}")
            values.append(float(value))
        return (np.array(values) - self.mean) / self.std

    def _blocks(self, genres: Sequence[str] | None) -> list[_Block]:
        """What a query scans: the whole matrix, or one block per requested genre."""
        if not genres:
            return [self._all]
        unknown = [g for g in genres if _key(g) not in self._genre_lookup]
        if unknown:
            known = ", ".join(self.genres) or "none (this catalog has no genres)"
            raise UserError(
                f"genre {', '.join(map(repr, unknown))} is not in the catalog; its genres: {known}"
            )
        return [self._block(code) for code in {self._genre_lookup[_key(g)] for g in genres}]

    def _block(self, code: int) -> _Block:
        """A genre's tracks as their own contiguous matrix, built on first use: scanning a
        sixth of the catalog beats masking all of it."""
        if code not in self._genre_blocks:
            owners = np.repeat(np.arange(len(self)), np.diff(self._genre_offsets))
            rows = owners[self._genre_codes == code]
            self._genre_blocks[code] = _Block(rows, self.matrix[rows], self._norms[rows])
        return self._genre_blocks[code]

    # --- queries ------------------------------------------------------------------------
    def search(
        self,
        features: Mapping[str, float],
        *,
        n: int = 20,
        genres: Sequence[str] | None = None,
        max_per_artist: int = 2,
        exclude: Sequence[str] = (),
    ) -> list[Hit]:
        """The `n` nearest tracks, nearest first, at most `max_per_artist` per artist.

        A song listed under several ids (single, album, compilation) counts once: the
        nearest listing stands for it. With `genres`, only tracks listed under one of them
        qualify. Fewer than `n` qualifying tracks: all of them.
        """
        if n < 1:
            raise UserError(f"the number of tracks must be at least 1, not {n}")
        if max_per_artist < 1:
            raise UserError(f"tracks per artist must be at least 1, not {max_per_artist}")
        query = self.standardise(features)
        blocks = self._blocks(genres)
        q32 = query.astype(np.float32)
        # |x - q|^2 without the constant |q|^2: one matrix-vector product per block.
        scores = [block.norms - 2.0 * (block.matrix @ q32) for block in blocks]
        largest = max(len(block.rows) for block in blocks)
        skip = set(exclude)
        k = 4 * n + 64
        while True:
            rows = self._nearest(blocks, scores, query, k)
            hits = self._pick(rows, query, n, max_per_artist, skip)
            if len(hits) == n or k >= largest:
                return hits
            k *= 4  # many neighbours were capped or excluded: look further

    def _nearest(
        self, blocks: list[_Block], scores: list[np.ndarray], query: np.ndarray, k: int
    ) -> list[int]:
        """The k best rows of each block, merged and ordered by exact float64 distance,
        then row (deterministic)."""
        best = [
            block.rows[np.argpartition(score, k - 1)[:k] if k < len(score) else slice(None)]
            for block, score in zip(blocks, scores, strict=True)
        ]
        rows = np.unique(np.concatenate(best))  # a track in two requested genres once
        exact = self.distances(rows, query)
        return rows[np.lexsort((rows, exact))].tolist()

    def distances(self, rows: np.ndarray | list[int], query: np.ndarray) -> np.ndarray:
        """Euclidean distances of rows to a standardised query (float64 over the float32
        matrix, so rankings are exact)."""
        diff = self.matrix[rows].astype(np.float64) - query
        return np.sqrt(np.einsum("ij,ij->i", diff, diff))

    def _pick(
        self, rows: list[int], query: np.ndarray, n: int, max_per_artist: int, skip: set[str]
    ) -> list[Hit]:
        per_artist: Counter[int] = Counter()
        songs: set[tuple[int, str]] = set()
        chosen: list[int] = []
        for row in rows:
            artist = int(self._artist_codes[row])
            song = (artist, self.names[row].casefold())
            if self.ids[row] in skip or song in songs or per_artist[artist] >= max_per_artist:
                continue
            songs.add(song)
            per_artist[artist] += 1
            chosen.append(row)
            if len(chosen) == n:
                break
        distances = self.distances(chosen, query) if chosen else []
        return [
            Hit(
                id=self.ids[row],
                name=self.names[row],
                artist=self.artists[row],
                genres=self.track_genres(row),
                distance=float(d),
                url=TRACK_URL + self.ids[row],
            )
            for row, d in zip(chosen, distances, strict=True)
        ]
