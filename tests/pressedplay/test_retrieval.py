"""Nearest-track search over a real catalog file and over arrays, against brute force."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pressedplay import catalog as catalog_mod
from pressedplay import catalog_csv
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.retrieval import TRACK_URL, CatalogIndex

SAMPLE = Path(__file__).parent / "fixtures" / "spotify_songs_sample.csv"


@pytest.fixture
def sample_path(tmp_path, monkeypatch) -> Path:
    """The 300-row TidyTuesday sample imported as a real catalog file."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    return Path(catalog_csv.import_csv(SAMPLE, "sample")["path"])


@pytest.fixture
def sample(sample_path) -> CatalogIndex:
    return CatalogIndex.load(sample_path)


def features_of(index: CatalogIndex, row: int) -> dict[str, float]:
    return dict(zip(NAMES, index.features[row].astype(float).tolist(), strict=True))


def brute_force(index: CatalogIndex, features: dict, n: int, cap: int, genres=()) -> list[str]:
    """The reference: every track's float64 distance, sorted, capped and de-duplicated."""
    raw = np.array([features[name] for name in NAMES])
    std = np.asarray(index.features, np.float64).std(axis=0)
    std = np.where(std > 0, std, 1.0)
    mean = np.asarray(index.features, np.float64).mean(axis=0)
    z = (np.asarray(index.features, np.float64) - mean) / std
    distances = np.sqrt((((raw - mean) / std - z) ** 2).sum(axis=1))
    picked, per_artist, songs = [], Counter(), set()
    for row in sorted(range(len(index)), key=lambda r: (distances[r], r)):
        artist = index.artists[row].casefold()
        song = (artist, index.names[row].casefold())
        if genres and not set(genres) & set(index.track_genres(row)):
            continue
        if song in songs or per_artist[artist] >= cap:
            continue
        songs.add(song)
        per_artist[artist] += 1
        picked.append(index.ids[row])
    return picked[:n]


def test_load_reads_every_track_with_its_genres(sample, sample_path) -> None:
    info = catalog_mod.info(sample_path)
    assert len(sample) == info["tracks"]
    assert sample.genre_counts == info["genres"]
    assert sample.genres[0] == max(info["genres"], key=lambda g: (info["genres"][g], g))
    assert sample.features.shape == (len(sample), 8)
    np.testing.assert_allclose(
        sample.features.mean(axis=0), [info["features"][n]["mean"] for n in NAMES], rtol=1e-5
    )
    # The standardised matrix has mean 0 and unit spread per feature.
    np.testing.assert_allclose(sample.matrix.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(sample.matrix.std(axis=0), 1, atol=1e-4)


def test_a_tracks_own_features_find_it_first(sample) -> None:
    row = 17
    hits = sample.search(features_of(sample, row), n=5)
    assert hits[0].id == sample.ids[row]
    assert hits[0].distance == pytest.approx(0, abs=1e-5)
    assert hits[0].url == TRACK_URL + sample.ids[row]
    assert hits[0].genres == sample.track_genres(row) and hits[0].genres
    assert [h.distance for h in hits] == sorted(h.distance for h in hits)


@pytest.mark.parametrize("cap", [1, 2, 1000])
def test_search_equals_brute_force(sample, cap) -> None:
    rng = np.random.default_rng(cap)
    for _ in range(5):
        query = dict(zip(NAMES, rng.uniform(0, 1, 8).tolist(), strict=True))
        query["loudness"] = float(rng.uniform(-15, -2))
        hits = sample.search(query, n=20, max_per_artist=cap)
        assert [h.id for h in hits] == brute_force(sample, query, 20, cap)
        raw = np.array([query[n] for n in NAMES])
        for hit in hits:  # the reported distance is the standardised Euclidean one
            row = sample.ids.index(hit.id)
            expected = np.linalg.norm((raw - sample.mean) / sample.std - sample.matrix[row])
            assert hit.distance == pytest.approx(expected, rel=1e-5)


def test_at_most_n_per_artist(sample) -> None:
    artist = Counter(sample.artists).most_common(1)[0][0]
    rows = [i for i, a in enumerate(sample.artists) if a == artist]
    assert len(rows) >= 3  # the sample has an artist with several tracks
    hits = sample.search(features_of(sample, rows[0]), n=30, max_per_artist=2)
    counts = Counter(h.artist.casefold() for h in hits)
    assert max(counts.values()) <= 2 and counts[artist.casefold()] == 2
    one = sample.search(features_of(sample, rows[0]), n=30, max_per_artist=1)
    assert max(Counter(h.artist for h in one).values()) == 1


def test_genre_filter_is_case_insensitive_and_exact(sample) -> None:
    query = features_of(sample, 0)
    hits = sample.search(query, n=15, genres=["R&B"])
    assert hits and all("r&b" in h.genres for h in hits)
    assert [h.id for h in hits] == brute_force(sample, query, 15, 2, genres=["r&b"])
    both = sample.search(query, n=40, genres=["rock", "latin"], max_per_artist=100)
    assert {"rock", "latin"} <= {g for h in both for g in h.genres}
    assert [h.id for h in both] == brute_force(sample, query, 40, 100, genres=["rock", "latin"])


def test_a_track_in_two_requested_genres_comes_once() -> None:
    ids, names, artists, features = arrays(400, seed=4)
    genres = [
        ("pop", "rock") if i % 3 == 0 else (("pop",), ("rock",), ("edm",))[i % 3]
        for i in range(400)
    ]
    index = CatalogIndex.from_arrays(ids, names, artists, features, genres)
    query = dict(zip(NAMES, features[9].tolist(), strict=True))
    hits = index.search(query, n=300, genres=["pop", "rock"], max_per_artist=400)
    assert len({h.id for h in hits}) == len(hits) == sum(1 for g in genres if g != ("edm",))
    assert hits[0].id == ids[9] and hits[0].genres == ("pop", "rock")
    assert [h.id for h in hits] == brute_force(index, query, 300, 400, genres=["pop", "rock"])


def test_unknown_genre_lists_the_catalogs_genres(sample) -> None:
    with pytest.raises(UserError, match="'jazz' is not in the catalog") as info:
        sample.search(features_of(sample, 0), genres=["jazz", "pop"])
    assert str(info.value).endswith(", ".join(sample.genres))


def test_fewer_matches_than_asked_returns_all_of_them(sample) -> None:
    genre = sample.genres[-1]
    members = sample.genre_counts[genre]
    hits = sample.search(features_of(sample, 0), n=10_000, genres=[genre], max_per_artist=10_000)
    distinct = {
        (sample.artists[r].casefold(), sample.names[r].casefold())
        for r in range(len(sample))
        if genre in sample.track_genres(r)
    }
    assert len(hits) == len(distinct) <= members


def test_exclude_skips_tracks(sample) -> None:
    query = features_of(sample, 3)
    first = sample.search(query, n=5)
    again = sample.search(query, n=5, exclude=[first[0].id, first[1].id])
    assert {first[0].id, first[1].id}.isdisjoint(h.id for h in again)
    assert [h.id for h in again[:3]] == [h.id for h in first[2:5]]


def arrays(n: int, seed: int = 0) -> tuple[list, list, list, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.uniform(0, 1, (n, 8))
    features[:, NAMES.index("loudness")] = rng.uniform(-20, 0, n)
    ids = [f"{i:022d}" for i in range(n)]
    return ids, [f"song {i}" for i in range(n)], [f"artist {i % 50}" for i in range(n)], features


def test_from_arrays_looks_further_when_neighbours_are_capped() -> None:
    ids, names, artists, features = arrays(3000)
    # The 600 tracks nearest to the query all belong to one artist.
    artists[:600] = ["crowded"] * 600
    features[:600] = 0.5 + np.random.default_rng(1).normal(0, 1e-3, (600, 8))
    features[:600, NAMES.index("loudness")] = -10
    index = CatalogIndex.from_arrays(ids, names, artists, features)
    query = dict(zip(NAMES, [0.5] * 8, strict=True)) | {"loudness": -10.0}
    hits = index.search(query, n=20, max_per_artist=2)
    assert len(hits) == 20
    assert sum(h.artist == "crowded" for h in hits) == 2
    assert [h.id for h in hits] == brute_force(index, query, 20, 2)


def test_same_song_under_two_ids_counts_once() -> None:
    ids, names, artists, features = arrays(10)
    names[1], artists[1], features[1] = names[0].upper(), artists[0], features[0] + 1e-6
    index = CatalogIndex.from_arrays(ids, names, artists, features)
    hits = index.search(dict(zip(NAMES, features[0].tolist(), strict=True)), n=10)
    assert hits[0].id == ids[0] and ids[1] not in {h.id for h in hits}
    assert len(hits) == 9


def test_constant_feature_and_genreless_tracks() -> None:
    ids, names, artists, features = arrays(50)
    features[:, NAMES.index("liveness")] = 0.1  # no spread: must not divide by zero
    index = CatalogIndex.from_arrays(ids, names, artists, features)
    assert index.genres == [] and index.track_genres(0) == ()
    hits = index.search(dict(zip(NAMES, features[7].tolist(), strict=True)), n=3)
    assert hits[0].id == ids[7] and all(math.isfinite(h.distance) for h in hits)
    with pytest.raises(UserError, match="its genres: none"):
        index.search(dict(zip(NAMES, features[7].tolist(), strict=True)), genres=["pop"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"valence": None}, "valence must be a finite number"),
        ({"energy": float("nan")}, "energy must be a finite number"),
        ({"energy": True}, "energy must be a finite number"),
        ({"loudness": "loud"}, "loudness must be a finite number"),
    ],
)
def test_bad_features_are_user_errors(sample, change, message) -> None:
    with pytest.raises(UserError, match=message):
        sample.search(features_of(sample, 0) | change)


def test_missing_features_and_bad_counts_are_user_errors(sample) -> None:
    partial = {k: v for k, v in features_of(sample, 0).items() if k != "tempo" and k != "energy"}
    with pytest.raises(UserError, match="features missing: energy"):
        sample.search(partial)
    with pytest.raises(UserError, match="at least 1"):
        sample.search(features_of(sample, 0), n=0)
    with pytest.raises(UserError, match="per artist must be at least 1"):
        sample.search(features_of(sample, 0), max_per_artist=0)


def test_numpy_scalars_are_numbers(sample) -> None:
    query = {name: np.float32(value) for name, value in features_of(sample, 5).items()}
    assert sample.search(query, n=1)[0].id == sample.ids[5]


def test_not_a_catalog_is_a_user_error(tmp_path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(UserError, match="not a sqlite database"):
        CatalogIndex.load(junk)
