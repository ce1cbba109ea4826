"""Synthetic covers: deterministic, valid, resumable, with a matching catalog and a
relation between image and features that a simple model can learn."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing

import numpy as np
import pytest
from PIL import Image

from pressedplay import dataset
from pressedplay.catalog import Catalog, resolve_catalog
from pressedplay.errors import UserError
from pressedplay.features import FEATURES, NAMES
from pressedplay.synth_covers import cover_tracks, render, synth_covers


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _rows(db, query):
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(query).fetchall()


def test_writes_a_dataset_of_valid_covers_and_tracks(tmp_path):
    report = synth_covers(
        tmp_path / "s.db", covers=12, tracks_per_cover=4, seed=3, catalog_name=None
    )
    assert (report["covers"], report["tracks"], report["pairs"]) == (12, 48, 48)
    assert report["skipped"] == {}
    assert sum(split["covers"] for split in report["splits"].values()) == 12
    assert set(report["feature_stats"]) == set(NAMES)
    for data, width, height in _rows(tmp_path / "s.db", "SELECT image, width, height FROM covers"):
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.size, (width, height)) == ("JPEG", (256, 256), (256, 256))
    features = np.array(_rows(tmp_path / "s.db", f"SELECT {', '.join(NAMES)} FROM tracks"))
    for column, feature in enumerate(FEATURES):
        assert features[:, column].min() >= feature.low
        assert features[:, column].max() <= feature.high
    loudness = features[:, NAMES.index("loudness")]
    assert -20 < np.median(loudness) < -2
    # Tracks scatter around their cover's mood: not all the same within a cover.
    assert features[:4, NAMES.index("valence")].std() > 0


def test_same_seed_same_dataset_other_seed_other(tmp_path):
    query = "SELECT sha256, split FROM covers ORDER BY origin"
    tracks = "SELECT * FROM tracks ORDER BY id"
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        synth_covers(
            tmp_path / f"{name}.db", covers=8, tracks_per_cover=2, seed=seed, catalog_name=None
        )
    assert _rows(tmp_path / "a.db", query) == _rows(tmp_path / "b.db", query)
    assert _rows(tmp_path / "a.db", tracks) == _rows(tmp_path / "b.db", tracks)
    assert _rows(tmp_path / "a.db", query) != _rows(tmp_path / "c.db", query)


def test_writes_a_matching_catalog(tmp_path, home):
    report = synth_covers(tmp_path / "s.db", covers=6, tracks_per_cover=3, catalog_name="synth")
    assert report["catalog"]["tracks"] == 18
    stored = {
        row[0]: row[1:]
        for row in _rows(tmp_path / "s.db", f"SELECT id, {', '.join(NAMES)} FROM tracks")
    }
    with Catalog(resolve_catalog("synth")) as catalog:
        found = catalog.lookup(stored)
    assert set(found) == set(stored)
    for track_id, track in found.items():
        assert track.features == pytest.approx(stored[track_id])


def test_refuses_an_existing_catalog_before_building(tmp_path, home):
    synth_covers(tmp_path / "a.db", covers=3, tracks_per_cover=1)
    with pytest.raises(UserError, match="already exists"):
        synth_covers(tmp_path / "b.db", covers=3, tracks_per_cover=1)
    assert not (tmp_path / "b.db").exists()
    assert not dataset.partial_path(tmp_path / "b.db").exists()
    synth_covers(tmp_path / "b.db", covers=3, tracks_per_cover=1, force=True)


@pytest.mark.parametrize("option", [{"covers": 0}, {"tracks_per_cover": 0}])
def test_refuses_empty_sizes(tmp_path, option):
    with pytest.raises(UserError):
        synth_covers(tmp_path / "s.db", catalog_name=None, **option)
    assert not (tmp_path / "s.db").exists()


def test_an_interrupted_run_resumes_to_the_same_dataset(tmp_path):
    seen = []

    def interrupt(n):
        seen.append(n)
        if len(seen) == 4:
            raise KeyboardInterrupt

    out = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        synth_covers(out, covers=9, tracks_per_cover=2, catalog_name=None, progress=interrupt)
    assert not out.exists()
    assert dataset.partial_path(out).exists()
    synth_covers(out, covers=9, tracks_per_cover=2, catalog_name=None)
    synth_covers(tmp_path / "whole.db", covers=9, tracks_per_cover=2, catalog_name=None)
    query = "SELECT sha256, origin, split FROM covers ORDER BY origin"
    assert _rows(out, query) == _rows(tmp_path / "whole.db", query)
    assert not dataset.partial_path(out).exists()


def _colour_statistics(data: bytes) -> np.ndarray:
    """What a very simple model sees: colour means and spreads, and edge density."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    rgb = np.asarray(image, dtype=np.float64) / 255
    hsv = np.asarray(image.convert("HSV"), dtype=np.float64) / 255
    grey = rgb.mean(axis=2)
    edges = np.abs(np.diff(grey, axis=0)).mean() + np.abs(np.diff(grey, axis=1)).mean()
    return np.concatenate(
        [rgb.mean((0, 1)), rgb.std((0, 1)), hsv.mean((0, 1)), hsv.std((0, 1)), [edges]]
    )


def test_features_are_learnable_from_the_image():
    """Ridge regression on colour statistics beats the mean on held-out covers."""
    x, y = [], []
    for index in range(160):
        rng = np.random.default_rng([7, index])
        features = cover_tracks(rng, 10).mean(axis=0)
        x.append(_colour_statistics(render(features, rng, size=96)))
        y.append(features)
    x, y = np.array(x), np.array(y)
    train, test = slice(0, 120), slice(120, None)
    mean, std = x[train].mean(axis=0), x[train].std(axis=0) + 1e-9
    design = np.c_[(x - mean) / std, np.ones(len(x))]
    weights = np.linalg.solve(
        design[train].T @ design[train] + np.eye(design.shape[1]), design[train].T @ y[train]
    )
    error = ((design[test] @ weights - y[test]) ** 2).sum(axis=0)
    baseline = ((y[train].mean(axis=0) - y[test]) ** 2).sum(axis=0)
    r2 = dict(zip(NAMES, 1 - error / baseline, strict=True))
    for name in ("valence", "energy", "acousticness", "danceability"):
        assert r2[name] > 0.3, (name, r2)
