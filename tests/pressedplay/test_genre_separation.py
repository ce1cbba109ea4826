"""Genre labels: stored by build-db, scored by evaluate against the catalog's genre centroids."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pressedplay import checkpoints, genre_separation
from pressedplay.catalog_csv import import_csv
from pressedplay.errors import UserError
from pressedplay.evaluate import evaluate
from pressedplay.folder import build_from_folder
from pressedplay.model import VAEAttention
from pressedplay.synth_covers import synth_covers

from .test_folder import FIXTURE, save, write_csv

pytestmark = pytest.mark.usefixtures("one_torch_thread")
LABELS = ["Hip-Hop", "Rock", "EDM", "Dance", "Pop", "Korea", ""]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A PRESSEDPLAY_HOME with the sample catalog (rap, rock, edm, pop, latin, r&b)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRESSEDPLAY_HOME", str(home))
        import_csv(FIXTURE, "sample")
    return home


@pytest.fixture
def genre_db(home, tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(home))
    folder = tmp_path / "covers"
    rows = []
    for i in range(42):
        save(folder / f"{i}.jpg", i, size=24)
        rows.append([f"{i}.jpg", LABELS[i % len(LABELS)], f"track {i}"])
    labels = write_csv(tmp_path / "labels.csv", ["image", "playlist", "track_name"], rows)
    report = build_from_folder(tmp_path / "genres.db", folder, labels, genre_column="playlist")
    return tmp_path / "genres.db", report


def test_a_genre_column_alone_stores_covers_with_genres_and_no_tracks(genre_db):
    _, report = genre_db
    assert (report["covers"], report["tracks"], report["pairs"]) == (36, 0, 0)
    assert report["genres"] == {label: 6 for label in LABELS if label}
    assert report["skipped"] == {"image without labels": 6}  # the empty genre
    assert report["feature_stats"] == {}


@pytest.fixture
def run(tmp_path_factory):
    """A VAE checkpoint with untrained weights (its answers still vary with the image)."""
    path = tmp_path_factory.mktemp("run") / "best.pt"
    torch.manual_seed(0)
    model = VAEAttention(image_size=32)
    checkpoints.save(path, checkpoints.payload(model, np.zeros(8), np.ones(8), epoch=1, step=1))
    return path


def _trained_on_synthetic_covers(run, tmp_path) -> None:
    """Record a dataset with features as the run's training data. A genre dataset has no
    pairs to fit the baselines on, so a run must say where it was trained."""
    train = tmp_path / "train.db"
    synth_covers(train, covers=60, tracks_per_cover=2, seed=1, catalog_name=None)
    payload = checkpoints.load(run)
    payload["config"] = {"db": str(train)}
    checkpoints.save(run, payload)


def test_evaluate_scores_genre_separation_on_a_genre_dataset(genre_db, run, tmp_path):
    db, _ = genre_db
    _trained_on_synthetic_covers(run, tmp_path)
    report = evaluate(run, db, split="all", catalog="sample")
    assert "models" not in report  # no features to score errors on
    genres = report["genres"]
    # Hip-Hop -> rap, Rock -> rock, EDM and Dance -> edm, Pop -> pop; Korea maps to none.
    assert genres["genres"] == {"edm": 12, "pop": 6, "rap": 6, "rock": 6}
    assert genres["covers"] == 30 and genres["left_out"] == 6
    assert genres["mapping"]["Korea"] == [] and genres["mapping"]["Dance"] == ["edm"]
    for constant in ("mean", "catalog"):
        scores = genres["models"][constant]
        assert scores["auc"] == 0.5 and scores["auc_ci"] == [0.5, 0.5]
        assert scores["accuracy"] == pytest.approx(scores["chance"])
    for name, scores in genres["models"].items():
        low, high = scores["auc_ci"]
        assert low <= scores["auc"] <= high, name
    assert evaluate(run, db, split="all", catalog="sample") == report  # seeded bootstrap


def test_split_all_needs_the_runs_training_data(genre_db, run):
    db, _ = genre_db
    with pytest.raises(UserError, match="--split all needs it"):
        evaluate(run, db, split="all", catalog="sample")


def test_predictions_at_their_genres_centroid_separate_perfectly(home, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(home))
    centroids = genre_separation.Centroids("sample")
    genres = ["rap", "rock", "edm", "rap", "rock", "edm", "pop"]
    at_centre = np.stack(
        [
            centroids.centres[centroids.genres.index(g)] * centroids.std + centroids.mean
            for g in genres
        ]
    )
    auc, accuracy, chance = genre_separation.scores(at_centre, genres, centroids)
    assert (auc, accuracy) == (1.0, 1.0)
    assert chance == pytest.approx(sum((genres.count(g) / 7) ** 2 for g in set(genres)))
    # Swapping every prediction with another genre's makes the AUC fall below chance.
    swapped = at_centre[[1, 2, 0, 4, 5, 3, 6]]
    assert genre_separation.scores(swapped, genres, centroids)[0] < 0.5


def test_pairwise_auc_counts_ties_as_half():
    assert genre_separation._auc(np.array([1.0, 2.0]), np.array([1.0, 0.0])) == (3.5, 4.0)


def test_a_cli_table(cli, genre_db, run, tmp_path):
    db, _ = genre_db
    _trained_on_synthetic_covers(run, tmp_path)
    args = ("evaluate", run, "--db", db, "--split", "all", "--catalog", "sample", "--workers", 0)
    result = cli(*args)
    assert result.code == 0, result.err
    assert "genre separation: 30 covers" in result.out and "pairwise AUC" in result.out
    assert json.loads(cli(*args, "--json").out)["genres"]["covers"] == 30
