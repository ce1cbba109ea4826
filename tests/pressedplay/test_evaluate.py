"""evaluate: errors over a split's pairs in the dataset's units, against fair baselines."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import numpy as np
import pytest
import torch

from pressedplay import checkpoints, colour_stats, prior
from pressedplay.dataset import info
from pressedplay.errors import UserError
from pressedplay.evaluate import evaluate
from pressedplay.features import NAMES
from pressedplay.loader import load_image
from pressedplay.model import VAEAttention
from pressedplay.predict import load_predictor
from pressedplay.ridge import ALPHAS, Ridge
from pressedplay.synth_covers import synth_covers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("evaluate") / "covers.db"
    report = synth_covers(path, covers=150, tracks_per_cover=3, seed=4, catalog_name=None)
    assert min(report["splits"][s]["covers"] for s in ("train", "valid", "test")) >= 10
    return path


def _dataset_units(db) -> tuple[np.ndarray, np.ndarray]:
    stats = info(db)["feature_stats"]
    return (
        np.array([stats[n]["mean"] for n in NAMES]),
        np.array([stats[n]["std"] for n in NAMES]),
    )


def _pairs(db, split: str) -> list[tuple[int, bytes, np.ndarray]]:
    """(cover id, image, original features) per pair of the split, straight from sqlite."""
    columns = ", ".join(f"t.{n}" for n in NAMES)
    with closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            f"SELECT c.id, c.image, {columns} FROM pairs p JOIN covers c ON c.id = p.cover_id "
            "JOIN tracks t ON t.id = p.track_id WHERE c.split = ?",
            (split,),
        ).fetchall()
    return [(row[0], row[1], np.array(row[2:], dtype=np.float64)) for row in rows]


def _errors(predicted: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    return float(((predicted - targets) ** 2).mean()), float(np.abs(predicted - targets).mean())


def _flat(models: dict) -> dict[str, float]:
    """Every number of a report's models by path, e.g. "vae/per_feature/energy/mse"."""
    flat = {}
    for key, value in models.items():
        if isinstance(value, dict):
            flat.update({f"{key}/{k}": v for k, v in _flat(value).items()})
        elif isinstance(value, list):  # an interval
            flat.update({f"{key}/{i}": v for i, v in enumerate(value)})
        else:
            flat[key] = value
    return flat


def _same_scores(a: dict, b: dict) -> bool:
    """Equal up to float32 rounding, which depends on batch size and thread count."""
    return _flat(a) == pytest.approx(_flat(b), rel=1e-6, abs=1e-9)


def _checkpoint(path, mean, std, seed=0, **architecture):
    torch.manual_seed(seed)
    model = VAEAttention(**architecture)
    checkpoints.save(path, checkpoints.payload(model, mean, std, epoch=1, step=10))
    return model


@pytest.fixture(scope="module")
def report(db, tmp_path_factory):
    mean, std = _dataset_units(db)
    run = tmp_path_factory.mktemp("run")
    _checkpoint(run / "best.pt", mean, std)
    return evaluate(run, db)


def test_counts_and_shape(db, report):
    splits = info(db)["splits"]
    assert report["split"] == "test"
    assert report["covers"] == splits["test"]["covers"]
    assert report["pairs"] == splits["test"]["pairs"]
    assert report["db"] == str(db) and report["model"].endswith("best.pt")
    assert list(report["models"]) == ["vae", "mean", "ridge", "prior", "catalog"]
    for scores in report["models"].values():
        assert list(scores["per_feature"]) == list(NAMES)
        per_feature = [scores["per_feature"][n]["mse"] for n in NAMES]
        assert scores["mse"] == pytest.approx(np.mean(per_feature))
    assert set(report["models"]["ridge"]["alpha"].values()) <= set(ALPHAS.tolist())


def test_the_mean_baseline_by_hand(db, report):
    mean, std = _dataset_units(db)
    train = np.array([(f - mean) / std for _, _, f in _pairs(db, "train")])
    test = np.array([(f - mean) / std for _, _, f in _pairs(db, "test")])
    mse, mae = _errors(train.mean(0), test)
    assert report["models"]["mean"]["mse"] == pytest.approx(mse)
    assert report["models"]["mean"]["mae"] == pytest.approx(mae)
    valence = NAMES.index("valence")
    assert report["models"]["mean"]["per_feature"]["valence"]["mse"] == pytest.approx(
        float(((train.mean(0)[valence] - test[:, valence]) ** 2).mean())
    )


def test_the_vae_and_prior_by_hand_from_each_pair(db, report, tmp_path):
    mean, std = _dataset_units(db)
    vae = load_predictor(report["model"])
    pairs = _pairs(db, "test")
    targets = np.array([(f - mean) / std for _, _, f in pairs])
    pixels = np.stack([np.asarray(load_image(image)) for _, image, _ in pairs])
    vae_units = (vae.predict_pixels(pixels) - mean) / std
    inputs = colour_stats.matrix(pixels)[:, : len(colour_stats.PRIOR_INPUTS)]
    prior_units = (prior.predict_matrix(inputs) - mean) / std
    for name, predicted in (("vae", vae_units), ("prior", prior_units)):
        mse, mae = _errors(predicted, targets)
        assert report["models"][name]["mse"] == pytest.approx(mse, rel=1e-5), name
        assert report["models"][name]["mae"] == pytest.approx(mae, rel=1e-5), name


def test_a_model_from_another_dataset_is_scored_in_this_datasets_units(db, tmp_path):
    """A constant model trained elsewhere (other mean/std): its answer, converted to this
    dataset's units, must score exactly as that constant does by hand."""
    mean, std = _dataset_units(db)
    other_mean, other_std = mean + 0.3 * std, std * 1.7
    model = _checkpoint(tmp_path / "other.pt", other_mean, other_std, image_size=64)
    bias = torch.linspace(-1, 1, len(NAMES))
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.copy_(bias)
    checkpoints.save(
        tmp_path / "other.pt", checkpoints.payload(model, other_mean, other_std, epoch=1, step=1)
    )
    report = evaluate(tmp_path / "other.pt", db, split="valid", batch_size=7)
    answer = (bias.numpy() * other_std + other_mean - mean) / std
    valid = np.array([(f - mean) / std for _, _, f in _pairs(db, "valid")])
    mse, mae = _errors(answer, valid)
    assert report["models"]["vae"]["mse"] == pytest.approx(mse, rel=1e-5)
    assert report["models"]["vae"]["mae"] == pytest.approx(mae, rel=1e-5)
    assert report["split"] == "valid"


def test_intervals_hold_the_estimates_and_the_catalog_constant_by_hand(db, report):
    models = report["models"]
    reference = models["mean"]["mse"]
    for name, scores in models.items():
        low, high = scores["mse_ci"]
        assert low <= scores["mse"] <= high, name
        low, high = scores["minus_mean_ci"]
        assert low - 1e-12 <= scores["mse"] - reference <= high + 1e-12, name
    assert models["mean"]["minus_mean_ci"] == [0.0, 0.0]
    mean, std = _dataset_units(db)
    test = np.array([(f - mean) / std for _, _, f in _pairs(db, "test")])
    constant = (np.array([prior.CENTRE[n] for n in NAMES]) - mean) / std
    assert models["catalog"]["mse"] == pytest.approx(_errors(constant, test)[0])


def test_split_all_of_another_dataset_fits_the_baselines_on_the_runs_own(db, tmp_path):
    other = tmp_path / "other.db"
    synth_covers(other, covers=40, tracks_per_cover=2, seed=9, catalog_name=None)
    mean, std = _dataset_units(db)
    model = VAEAttention()
    payload = checkpoints.payload(model, mean, std, epoch=1, step=1, config={"db": str(db)})
    checkpoints.save(tmp_path / "run" / "best.pt", payload)
    report = evaluate(tmp_path / "run", other, split="all")
    assert report["covers"] == info(other)["covers"] and report["split"] == "all"
    assert report["baselines_from"] == str(db)
    # The mean baseline is the run's training mean, scored in the other dataset's units.
    other_mean, other_std = _dataset_units(other)
    train = np.array([f for _, _, f in _pairs(db, "train")]).mean(0)
    every = np.array(
        [
            (f - other_mean) / other_std
            for split in ("train", "valid", "test")
            for _, _, f in _pairs(other, split)
        ]
    )
    expected = _errors((train - other_mean) / other_std, every)[0]
    assert report["models"]["mean"]["mse"] == pytest.approx(expected)
    (tmp_path / "moved.db").write_bytes(db.read_bytes())
    payload["config"] = {"db": str(tmp_path / "gone.db")}
    checkpoints.save(tmp_path / "run" / "best.pt", payload)
    with pytest.raises(UserError, match="--split all needs it"):
        evaluate(tmp_path / "run", other, split="all")


def test_ridge_finds_the_colour_signal_of_synthetic_covers(report):
    models = report["models"]
    assert models["ridge"]["mse"] < 0.8 * models["mean"]["mse"]
    # Synthetic valence is painted as hue and lightness: colour statistics see it.
    assert models["ridge"]["per_feature"]["valence"]["mse"] < 0.5
    assert (
        models["prior"]["per_feature"]["valence"]["mse"]
        < models["mean"]["per_feature"]["valence"]["mse"]
    )


def test_ridge_on_cover_means_with_weights_is_ridge_on_every_pair():
    rng = np.random.default_rng(0)
    covers, k = 30, 5
    x = rng.normal(size=(covers, k)) * [1, 10, 0.1, 3, 1] + [0, 5, 0, -2, 1]
    counts = rng.integers(1, 6, covers).astype(np.float64)
    # Each cover's tracks scatter around a linear function of its statistics.
    y_pairs = [x[i, :2] + rng.normal(size=(int(n), 2)) for i, n in enumerate(counts)]
    cover_means = np.array([pairs.mean(0) for pairs in y_pairs])
    ridge = Ridge(x, cover_means, counts)
    # The same fit by hand on every pair: standardise with the pair-level statistics,
    # centre, and solve the penalised least squares of the mean loss.
    rows = np.repeat(x, counts.astype(int), axis=0)
    targets = np.concatenate(y_pairs)
    z = (rows - rows.mean(0)) / rows.std(0)
    alpha = 0.3
    coef = np.linalg.solve(
        z.T @ z / len(z) + alpha * np.eye(k), z.T @ (targets - targets.mean(0)) / len(z)
    )
    np.testing.assert_allclose(ridge.solve(alpha), coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(
        ridge.predict(x, coef), targets.mean(0) + (x - rows.mean(0)) / rows.std(0) @ coef, atol=1e-9
    )


def test_each_feature_keeps_the_penalty_best_on_held_out_data():
    rng = np.random.default_rng(1)
    x, held_out = rng.normal(size=(40, 6)), rng.normal(size=(25, 6))
    true = np.zeros((6, 2))
    true[:, 0] = rng.normal(size=6)  # output 0 has signal, output 1 is pure noise
    y, y_held = x @ true + rng.normal(size=(40, 2)), held_out @ true + rng.normal(size=(25, 2))
    weights = np.ones(40)
    ridge = Ridge(x, y, weights)
    ridge.choose(held_out, y_held, np.ones(25))
    for output in range(2):
        errors = [
            ((ridge.predict(held_out, ridge.solve(a)) - y_held)[:, output] ** 2).sum()
            for a in ALPHAS
        ]
        assert ridge.alpha[output] == ALPHAS[int(np.argmin(errors))]
        np.testing.assert_allclose(
            ridge.coef[:, output], ridge.solve(ridge.alpha[output])[:, output]
        )
    assert ridge.alpha[1] > ridge.alpha[0]  # noise is shrunk harder


def test_workers_read_the_same_covers(db, report):
    again = evaluate(report["model"], db, workers=2, batch_size=16)
    assert _same_scores(again["models"], report["models"])


def test_bad_inputs_are_user_errors(db, report, tmp_path):
    with pytest.raises(UserError, match="unknown split"):
        evaluate(report["model"], db, split="holdout")
    with pytest.raises(UserError, match="no model at"):
        evaluate(tmp_path / "nothing.pt", db)
    with pytest.raises(UserError, match="no such dataset"):
        evaluate(report["model"], tmp_path / "nothing.db")
    with pytest.raises(UserError, match="batch size"):
        evaluate(report["model"], db, batch_size=0)
    empty = tmp_path / "one.db"
    synth_covers(empty, covers=2, tracks_per_cover=1, seed=0, catalog_name=None)
    with pytest.raises(UserError, match="no covers in the"):
        evaluate(
            report["model"],
            empty,
            split="test" if not info(empty)["splits"]["test"]["covers"] else "valid",
        )


def test_cli_json_and_table(cli, db, report):
    result = cli(
        "evaluate", report["model"], "--db", db, "--workers", 0, "--device", "cpu", "--json"
    )
    assert result.code == 0, result.err
    assert _same_scores(json.loads(result.out)["models"], report["models"])
    result = cli("evaluate", report["model"], "--db", db, "--workers", 0, "--split", "valid")
    assert result.code == 0, result.err
    assert "valid split" in result.out and "ridge" in result.out and "prior" in result.out
