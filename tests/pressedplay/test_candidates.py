"""After training, the candidate with the lowest valid MSE answers for the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pressedplay import colour_stats
from pressedplay.config import TrainConfig
from pressedplay.errors import UserError
from pressedplay.evaluate import Split, evaluate
from pressedplay.predict import (
    ChosenPredictor,
    VAEPredictor,
    _at_stats_size,
    load_predictor,
    predict_bytes,
)
from pressedplay.ridge import Ridge
from pressedplay.synth_covers import synth_covers
from pressedplay.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("candidates")
    db = root / "covers.db"
    synth_covers(db, covers=120, tracks_per_cover=3, seed=5, catalog_name=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PRESSEDPLAY_HOME", str(root / "home"))
        config = TrainConfig(epochs=1, batch_size=16, image_size=32, workers=0, device="cpu")
        summary = train(config, root / "run", db)
    return root / "run", db, summary


def _copy(run_dir, tmp_path, chosen: str):
    """The run's best.pt and candidates.json in a new run folder, with another choice."""
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "best.pt").write_bytes((run_dir / "best.pt").read_bytes())
    record = json.loads((run_dir / "candidates.json").read_text())
    (copy / "candidates.json").write_text(json.dumps({**record, "chosen": chosen}))
    return copy, record


def _pixels(split: Split, size: int) -> np.ndarray:
    return split.per_cover(size, [lambda pixels: pixels], batch_size=32, workers=0)[0]


def test_the_lowest_valid_mse_is_chosen_and_recorded(run):
    run_dir, db, summary = run
    record = json.loads((run_dir / "candidates.json").read_text())
    assert record["chosen"] == summary["chosen"]
    assert record["valid_mse"] == summary["valid_mse"]
    assert list(record["valid_mse"]) == ["vae", "ridge", "blend", "mean"]
    assert summary["chosen"] == min(summary["valid_mse"], key=summary["valid_mse"].get)
    valid = Split(db, "valid")
    mean_mse = float(((valid.targets - np.array(record["mean"])) ** 2).mean())
    assert summary["valid_mse"]["mean"] == pytest.approx(mean_mse)


@pytest.mark.parametrize("chosen", ["ridge", "mean", "blend"])
def test_predict_answers_with_the_chosen_candidate(run, chosen, tmp_path):
    run_dir, db, _ = run
    copy, record = _copy(run_dir, tmp_path, chosen)
    predictor = load_predictor(copy)
    assert isinstance(predictor, ChosenPredictor) and chosen in predictor.name
    valid = Split(db, "valid")
    stats = colour_stats.matrix(_pixels(valid, 128))
    answers = predictor.predict_pixels(_pixels(valid, predictor.image_size))
    units = np.array(record["feature_mean"]), np.array(record["feature_std"])
    ridge = Ridge.from_dict(record["ridge"]).predict(stats) * units[1] + units[0]
    expected = {
        "ridge": ridge,
        "mean": np.tile(np.array(record["mean"]) * units[1] + units[0], (len(stats), 1)),
        # At the VAE's 32 px, ridge reads the statistics of the covers resized to 128.
        "blend": (
            Ridge.from_dict(record["ridge"]).predict(
                colour_stats.matrix(_at_stats_size(_pixels(valid, 32)))
            )
            * units[1]
            + units[0]
            + predictor.vae.predict_pixels(_pixels(valid, 32))
        )
        / 2,
    }[chosen]
    np.testing.assert_allclose(answers, expected, rtol=1e-5, atol=1e-6)
    # The valid MSE recorded for it is what these answers score.
    score = float(((valid.standardise(answers)[valid.pair_cover] - valid.targets) ** 2).mean())
    assert score == pytest.approx(record["valid_mse"][chosen], rel=1e-5)
    report = evaluate(copy, db, split="valid")
    assert report["chosen"] == chosen
    assert report["models"]["run"]["mse"] == pytest.approx(score, rel=1e-5)


def test_a_checkpoint_file_or_sampling_answers_with_the_vae(run):
    run_dir, _, _ = run
    assert isinstance(load_predictor(run_dir / "best.pt"), VAEPredictor)
    assert isinstance(load_predictor(run_dir, sample=True), VAEPredictor)


def test_a_damaged_candidates_file_is_one_error(run, tmp_path):
    copy, record = _copy(run[0], tmp_path, "vae")
    for broken in ({**record, "chosen": "magic"}, {**record, "mean": [1.0]}, [1, 2]):
        (copy / "candidates.json").write_text(json.dumps(broken))
        with pytest.raises(UserError, match="not a pressedplay candidates file"):
            load_predictor(copy)
    (copy / "candidates.json").write_text("{")
    with pytest.raises(UserError):
        load_predictor(copy)


def test_pictures_are_answered_through_the_chosen_candidate(run, tmp_path, picture):
    copy, record = _copy(run[0], tmp_path, "mean")
    (result,) = predict_bytes([("p", picture.read_bytes())], load_predictor(copy))
    expected = np.array(record["mean"]) * record["feature_std"] + np.array(record["feature_mean"])
    assert list(result["features"].values()) == pytest.approx(expected.tolist())
