"""Synthetic playlists in the exact MPD format, with structure a model can learn.

The real MPD can no longer be downloaded, so demos, tests and benchmarks run on this.
Planted structure, from coarse to fine:
- every artist belongs to one of 24 genres (TidyTuesday's genre/subgenre pairs) and has
  albums of consecutive tracks; audio features cluster by genre;
- track popularity is Zipf within each genre, so a global popularity ranking is a weak
  recommender for a playlist of a minority genre;
- a playlist draws mostly from one genre, often mixed with a second related one;
- album runs (the next track of the same album) and artist repeats give the order of
  tracks information a sequence model can use and a bag-of-tracks model cannot.
Everything is drawn from one seeded generator, so the output is byte-identical per seed.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from trecs.errors import UserError
from trecs.mpd import Playlist, Slice, SliceInfo, Track

GENRES = {
    "edm": ("electro house", "big room", "pop edm", "progressive electro house"),
    "latin": ("latin pop", "reggaeton", "tropical", "latin hip hop"),
    "pop": ("dance pop", "post-teen pop", "electropop", "indie poptimism"),
    "r&b": ("urban contemporary", "hip pop", "new jack swing", "neo soul"),
    "rap": ("hip hop", "southern hip hop", "gangster rap", "trap"),
    "rock": ("album rock", "classic rock", "permanent wave", "hard rock"),
}
SUBGENRES = [(genre, sub) for genre, subs in GENRES.items() for sub in subs]
# Per-genre means of danceability, energy, loudness, speechiness, acousticness,
# instrumentalness, liveness, valence, tempo: roughly those of the real catalog.
FEATURE_MEANS = {
    "edm": (0.65, 0.80, -5.4, 0.09, 0.08, 0.22, 0.21, 0.40, 125.0),
    "latin": (0.71, 0.71, -6.3, 0.10, 0.21, 0.04, 0.18, 0.60, 118.0),
    "pop": (0.64, 0.70, -6.3, 0.07, 0.17, 0.06, 0.18, 0.50, 120.0),
    "r&b": (0.67, 0.59, -7.9, 0.12, 0.26, 0.03, 0.18, 0.53, 114.0),
    "rap": (0.72, 0.65, -7.0, 0.20, 0.19, 0.08, 0.19, 0.51, 120.0),
    "rock": (0.52, 0.73, -7.6, 0.06, 0.15, 0.06, 0.20, 0.54, 125.0),
}
CATALOG_COLUMNS = (
    "track_id track_name track_artist track_popularity track_album_id track_album_name "
    "track_album_release_date playlist_name playlist_id playlist_genre playlist_subgenre "
    "danceability energy key loudness mode speechiness acousticness instrumentalness "
    "liveness valence tempo duration_ms"
).split()
WORDS = (
    "love night heart summer fire dream light rain city gold wild blue midnight ocean "
    "electric golden broken sweet lonely forever young neon velvet river shadow stars "
    "dance paradise thunder silver crazy falling higher home road sky storm sugar "
    "honey echo ghost diamond wave slow fast free lost found alive burning cold "
    "fever magic mirror motion money moon morning rhythm rose secret soul sunset tiger"
).split()
PLAYLIST_WORDS = {
    "edm": ("edm", "EDM", "house", "festival", "bangers", "rave", "drops"),
    "latin": ("latin", "Latin", "reggaeton", "fiesta", "salsa", "latino"),
    "pop": ("pop", "Pop", "hits", "top hits", "sing along", "throwbacks"),
    "r&b": ("r&b", "R&B", "slow jams", "soul", "smooth", "vibes"),
    "rap": ("rap", "Rap", "hip hop", "Hip Hop", "trap", "bars"),
    "rock": ("rock", "Rock", "classic rock", "guitar", "rock n roll", "old school"),
}
GENERIC_NAMES = ("chill", "summer", "workout", "road trip", "party", "car", "gym", "mix")
ALPHABET = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "S1")
SLICE_SIZE = 1000
GENERATED_ON = "2017-12-03 08:41:42.057563"  # fixed: output depends on the seed only


@dataclass
class Catalog:
    """The synthetic tracks, as parallel arrays indexed by track."""

    uri_ids: list[str]
    names: list[str]
    album: np.ndarray
    artist: np.ndarray
    subgenre: np.ndarray
    duration_ms: np.ndarray
    weight: np.ndarray  # popularity within the track's subgenre
    album_uri_ids: list[str]
    album_names: list[str]
    album_tracks: list[np.ndarray]
    artist_uri_ids: list[str]
    artist_names: list[str]


def _spotify_ids(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct 22-character base-62 ids, like Spotify's."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        raw = ALPHABET[rng.integers(0, 62, size=(n - len(ids), 22))]
        for row in raw.view("S22").ravel():
            text = row.decode()
            if text not in seen:
                seen.add(text)
                ids.append(text)
    return ids


def _title(rng: np.random.Generator, words: int) -> str:
    return " ".join(WORDS[i].capitalize() for i in rng.integers(0, len(WORDS), words))


def make_catalog(rng: np.random.Generator, num_tracks: int) -> Catalog:
    """Artists with genres, albums of 1-20 tracks, Zipf popularity within each subgenre."""
    genre_weight = 1.0 / np.arange(1, len(SUBGENRES) + 1) ** 0.6
    genre_weight = rng.permutation(genre_weight / genre_weight.sum())
    album_sizes: list[int] = []
    album_artist: list[int] = []
    artist_genre: list[int] = []
    total = 0
    while total < num_tracks:
        if not artist_genre or rng.random() < 0.4:
            artist_genre.append(int(rng.choice(len(SUBGENRES), p=genre_weight)))
        size = int(min(20, 1 + rng.poisson(7), num_tracks - total))
        album_sizes.append(size)
        album_artist.append(len(artist_genre) - 1)
        total += size
    album = np.repeat(np.arange(len(album_sizes)), album_sizes)
    artist = np.asarray(album_artist)[album]
    subgenre = np.asarray(artist_genre)[artist]
    # Zipf over the tracks of each subgenre (random ranks), with popular albums lifting
    # all of their tracks a little.
    album_boost = rng.lognormal(0.0, 0.7, len(album_sizes))
    weight = np.empty(num_tracks)
    for g in range(len(SUBGENRES)):
        members = np.flatnonzero(subgenre == g)
        if len(members) == 0:
            continue
        zipf = 1.0 / (1 + rng.permutation(len(members))) ** 1.0
        weight[members] = zipf * album_boost[album[members]]
        weight[members] /= weight[members].sum()
    starts = np.cumsum(album_sizes) - album_sizes
    return Catalog(
        uri_ids=_spotify_ids(rng, num_tracks),
        names=[_title(rng, int(rng.integers(1, 4))) for _ in range(num_tracks)],
        album=album,
        artist=artist,
        subgenre=subgenre,
        duration_ms=rng.normal(215_000, 45_000, num_tracks).clip(60_000, 600_000).astype(int),
        weight=weight,
        album_uri_ids=_spotify_ids(rng, len(album_sizes)),
        album_names=[_title(rng, int(rng.integers(1, 3))) for _ in album_sizes],
        album_tracks=[np.arange(s, s + n) for s, n in zip(starts, album_sizes, strict=True)],
        artist_uri_ids=_spotify_ids(rng, len(artist_genre)),
        artist_names=[_title(rng, int(rng.integers(1, 3))) for _ in artist_genre],
    )


class _Sampler:
    """Draws tracks of a subgenre by popularity, from pre-computed cumulative weights."""

    def __init__(self, catalog: Catalog) -> None:
        self.members = [np.flatnonzero(catalog.subgenre == g) for g in range(len(SUBGENRES))]
        self.cdf = [np.cumsum(catalog.weight[m]) for m in self.members]

    def draw(self, rng: np.random.Generator, genre: int, n: int) -> np.ndarray:
        cdf = self.cdf[genre]
        index = np.searchsorted(cdf, rng.random(n) * cdf[-1])
        return self.members[genre][np.minimum(index, len(cdf) - 1)]


def _playlist_tracks(
    rng: np.random.Generator, catalog: Catalog, sampler: _Sampler, genres: list[int], length: int
) -> list[int]:
    mix = rng.uniform(0.6, 0.9) if len(genres) > 1 else 1.0
    picks: list[int] = []
    chosen: set[int] = set()
    candidates = iter(())
    attempts = 0
    while len(picks) < length and attempts < 20 * length:
        attempts += 1
        roll = rng.random()
        if picks and roll < 0.25:
            # Album run: the next track of the last track's album.
            last = picks[-1]
            following = last + 1
            track = (
                following
                if following < len(catalog.album)
                and catalog.album[following] == catalog.album[last]
                else -1
            )
        elif picks and roll < 0.35:
            # Another track from an album already in the playlist.
            pool = catalog.album_tracks[catalog.album[picks[int(rng.integers(len(picks)))]]]
            track = int(pool[rng.integers(len(pool))])
        else:
            track = next(candidates, -1)
            if track < 0:
                genre = genres[0] if rng.random() < mix else genres[-1]
                candidates = iter(sampler.draw(rng, genre, 64).tolist())
                track = next(candidates)
        if track >= 0 and track not in chosen:
            chosen.add(track)
            picks.append(track)
    return picks


def _playlist_length(rng: np.random.Generator) -> int:
    """5-250 tracks, right-skewed like the MPD's, mean about 66."""
    return int(np.clip(round(rng.lognormal(np.log(50), 0.8)), 5, 250))


def make_playlist(
    rng: np.random.Generator,
    catalog: Catalog,
    sampler: _Sampler,
    pid: int,
    genre_weight: np.ndarray,
) -> Playlist:
    genres = [int(rng.choice(len(SUBGENRES), p=genre_weight))]
    if rng.random() < 0.6:
        # A second genre, usually a sibling subgenre of the same top-level genre.
        family = 4 * (genres[0] // 4)
        siblings = [g for g in range(family, family + 4) if genre_weight[g] > 0]
        if rng.random() < 0.6:
            genres.append(siblings[int(rng.integers(len(siblings)))])
        else:
            genres.append(int(rng.choice(len(SUBGENRES), p=genre_weight)))
    picks = _playlist_tracks(rng, catalog, sampler, genres, _playlist_length(rng))
    tracks = [
        Track(
            pos=pos,
            artist_name=catalog.artist_names[catalog.artist[t]],
            track_uri=f"spotify:track:{catalog.uri_ids[t]}",
            artist_uri=f"spotify:artist:{catalog.artist_uri_ids[catalog.artist[t]]}",
            track_name=catalog.names[t],
            album_uri=f"spotify:album:{catalog.album_uri_ids[catalog.album[t]]}",
            duration_ms=int(catalog.duration_ms[t]),
            album_name=catalog.album_names[catalog.album[t]],
        )
        for pos, t in enumerate(picks)
    ]
    top_genre = SUBGENRES[genres[0]][0]
    if rng.random() < 0.7:
        words = PLAYLIST_WORDS[top_genre]
        name = words[int(rng.integers(len(words)))]
    else:
        name = GENERIC_NAMES[int(rng.integers(len(GENERIC_NAMES)))]
    return Playlist(
        name=name,
        collaborative="true" if rng.random() < 0.02 else "false",
        pid=pid,
        modified_at=int(rng.integers(1_262_304_000, 1_509_494_400)) // 86400 * 86400,
        num_tracks=len(tracks),
        num_albums=len({t.album_uri for t in tracks}),
        num_followers=int(rng.geometric(0.7)),
        tracks=tracks,
        num_edits=int(1 + rng.poisson(len(tracks) / 8)),
        duration_ms=sum(t.duration_ms for t in tracks),
        num_artists=len({t.artist_uri for t in tracks}),
        description=f"my {SUBGENRES[genres[0]][1]} favourites" if rng.random() < 0.02 else None,
    )


def _catalog_rows(rng: np.random.Generator, catalog: Catalog) -> list[list]:
    """One TidyTuesday-layout row per track; audio features cluster by subgenre."""
    offsets = rng.normal(0.0, 0.06, size=(len(SUBGENRES), 9))
    playlist_ids = _spotify_ids(rng, len(SUBGENRES))
    popularity = np.log(catalog.weight)
    popularity = (100 * (popularity - popularity.min()) / np.ptp(popularity)).round().astype(int)
    years = rng.integers(1970, 2020, size=len(catalog.album_names))
    rows = []
    for t in range(len(catalog.uri_ids)):
        g = int(catalog.subgenre[t])
        genre, sub = SUBGENRES[g]
        mean = np.asarray(FEATURE_MEANS[genre])
        noise = rng.normal(0.0, 0.1, 9)
        dance, energy, _, speech, acoustic, instrumental, live, valence, _ = (
            mean + offsets[g] + noise
        ).clip(0.0, 1.0)
        loudness = min(0.0, mean[2] + 20 * offsets[g][2] + rng.normal(0.0, 2.0))
        tempo = max(40.0, mean[8] + 100 * offsets[g][8] + rng.normal(0.0, 15.0))
        album = int(catalog.album[t])
        rows.append(
            [
                catalog.uri_ids[t],
                catalog.names[t],
                catalog.artist_names[catalog.artist[t]],
                int(popularity[t]),
                catalog.album_uri_ids[album],
                catalog.album_names[album],
                f"{years[album]}-01-01",
                f"synthetic {sub}",
                playlist_ids[g],
                genre,
                sub,
                round(float(dance), 4),
                round(float(energy), 4),
                int(rng.integers(0, 12)),
                round(float(loudness), 3),
                int(rng.random() < 0.6),
                round(float(speech), 4),
                round(float(acoustic), 4),
                round(float(instrumental), 4),
                round(float(live), 4),
                round(float(valence), 4),
                round(float(tempo), 3),
                int(catalog.duration_ms[t]),
            ]
        )
    return rows


@dataclass
class SynthReport:
    out_dir: str
    playlists: int
    tracks: int
    entries: int
    slices: int
    zip: str | None


def synth_mpd(
    out_dir: Path,
    *,
    playlists: int = 10_000,
    tracks: int = 50_000,
    seed: int = 0,
    make_zip: bool = False,
    force: bool = False,
    on_slice: Callable[[int, int], None] | None = None,
) -> SynthReport:
    """Write `out_dir/data/mpd.slice.*.json`, `md5sums`, `catalog.csv` and optionally a zip.

    Everything is written into a temporary folder beside `out_dir` and renamed at the
    end, so an interrupted run leaves nothing half-written.
    """
    if playlists < 1 or tracks < 250:
        raise UserError("need at least 1 playlist and 250 tracks (playlists hold up to 250)")
    if out_dir.exists() and not force:
        raise UserError(f"{out_dir}: already exists (use --force to replace it)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    catalog = make_catalog(rng, tracks)
    sampler = _Sampler(catalog)
    genre_weight = np.bincount(catalog.subgenre, minlength=len(SUBGENRES)) / tracks
    # Named before it exists, so that an interrupt at any point finds it in `finally`.
    tmp = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.tmp"
    try:
        (tmp / "data").mkdir(parents=True)
        md5_lines = []
        entries = 0
        num_slices = -(-playlists // SLICE_SIZE)
        for index, start in enumerate(range(0, playlists, SLICE_SIZE)):
            end = min(start + SLICE_SIZE, playlists) - 1
            items = [
                make_playlist(rng, catalog, sampler, pid, genre_weight)
                for pid in range(start, end + 1)
            ]
            entries += sum(p.num_tracks for p in items)
            info = SliceInfo(generated_on=GENERATED_ON, slice=f"{start}-{end}", version="v1")
            data = msgspec.json.format(msgspec.json.encode(Slice(info, items)), indent=2) + b"\n"
            name = f"data/mpd.slice.{start}-{end}.json"
            (tmp / name).write_bytes(data)
            md5_lines.append(f"{hashlib.md5(data).hexdigest()}  {name}\n")
            if on_slice is not None:
                on_slice(index + 1, num_slices)
        (tmp / "md5sums").write_text("".join(md5_lines))
        (tmp / "README.md").write_text(
            f"Synthetic playlists in the Million Playlist Dataset format, written by\n"
            f"`trecs synth-mpd --playlists {playlists} --tracks {tracks} --seed {seed}`.\n"
            "Not real data: genres, artists and tracks are invented.\n"
        )
        with (tmp / "catalog.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CATALOG_COLUMNS)
            writer.writerows(_catalog_rows(rng, catalog))
        zip_path = out_dir.with_name(out_dir.name + ".zip") if make_zip else None
        if zip_path is not None:
            _write_zip(
                tmp,
                zip_path,
                ["README.md", "md5sums", *[line.split("  ", 1)[1].strip() for line in md5_lines]],
            )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SynthReport(
        str(out_dir), playlists, tracks, entries, num_slices, str(zip_path) if zip_path else None
    )


def _write_zip(folder: Path, zip_path: Path, names: list[str]) -> None:
    """The MPD zip layout (README.md, md5sums, data/...), byte-identical per seed."""
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for name in names:
                info = zipfile.ZipInfo(name, date_time=(2017, 12, 3, 8, 41, 42))
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, (folder / name).read_bytes())
        os.replace(tmp, zip_path)
    finally:
        tmp.unlink(missing_ok=True)
