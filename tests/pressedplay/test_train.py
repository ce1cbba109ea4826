"""Training runs: files written, metrics, learning, exact resume, refusals, the CLI."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest
import torch

from pressedplay import checkpoints
from pressedplay.config import TrainConfig, for_run, with_overrides
from pressedplay.config import save as save_config
from pressedplay.errors import UserError
from pressedplay.synth_covers import synth_covers
from pressedplay.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROW_KEYS = {
    "epoch",
    "step",
    "train_loss",
    "train_recon",
    "train_kl",
    "train_feedback",
    "val_mse",
    "val_mae",
    "lr",
    "seconds",
    "examples",
    "world_size",
    "phase",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "covers.db"
    report = synth_covers(path, covers=150, tracks_per_cover=4, seed=3, catalog_name=None)
    assert all(report["splits"][split]["covers"] for split in ("train", "valid", "test"))
    return path


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))


def small(**options) -> TrainConfig:
    return TrainConfig(
        **{"epochs": 2, "batch_size": 8, "image_size": 32, "workers": 0, "device": "cpu"} | options
    )


def rows(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def count(db, sql):
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchone()[0]


def test_a_run_writes_checkpoints_metrics_and_tensorboard(db, tmp_path):
    run_dir = tmp_path / "run"
    events = []
    summary = train(small(epochs=3), run_dir, db, progress=events.append)
    assert summary.keys() == {
        "run_dir",
        "epochs",
        "best_epoch",
        "best_val_mse",
        "last_val_mse",
        "seconds",
        "device",
        "world_size",
        "chosen",
        "valid_mse",
    }
    assert summary["device"] == "cpu" and summary["world_size"] == 1 and summary["epochs"] == 3
    logged = rows(run_dir)
    assert [row["epoch"] for row in logged] == [1, 2, 3]
    assert all(row.keys() == ROW_KEYS and row["phase"] == "train" for row in logged)
    train_covers = count(db, "SELECT COUNT(*) FROM covers WHERE split = 'train'")
    assert all(row["examples"] == train_covers for row in logged)  # targets="cover"
    assert logged[-1]["step"] == 3 * -(-train_covers // 8)
    assert all(row["train_feedback"] is None and row["lr"] == 1e-3 for row in logged)
    best = min(logged, key=lambda row: row["val_mse"])
    assert summary["best_epoch"] == best["epoch"]
    assert summary["best_val_mse"] == pytest.approx(best["val_mse"])
    assert summary["last_val_mse"] == pytest.approx(logged[-1]["val_mse"])
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert TrainConfig.model_validate_json((run_dir / "config.json").read_text()) == small(epochs=3)

    model = checkpoints.load_model(run_dir / "best.pt")
    assert model.meta["epoch"] == best["epoch"]
    assert model.meta["val_mse"] == pytest.approx(best["val_mse"])
    assert model.meta["config"]["phase"] == "train"
    assert model.meta["config"]["train"] == small(epochs=3).model_dump(mode="json")
    last = checkpoints.load(run_dir / "last.pt")
    assert last["epoch"] == 3 and last["training"]["best_epoch"] == best["epoch"]
    assert last["training"]["optimizer"]["state"]  # Adam's moments, to resume

    batches = [e for e in events if e["kind"] == "batch"]
    assert batches[0] == {
        "kind": "batch",
        "epoch": 1,
        "epochs": 3,
        "batch": 1,
        "batches": -(-train_covers // 8),
        "loss": batches[0]["loss"],
    }
    assert [e for e in events if e["kind"] == "epoch"] == [{"kind": "epoch", **r} for r in logged]


def test_validation_is_the_mse_over_the_valid_pairs(db, tmp_path):
    """val_mse recomputed pair by pair from best.pt's predictions."""
    from pressedplay.loader import CoverPairs, make_loader

    run_dir = tmp_path / "run"
    summary = train(small(epochs=1), run_dir, db)
    model = checkpoints.load_model(run_dir / "best.pt").model
    pairs = CoverPairs(db, "valid", augment=False, size=32)
    loader = make_loader(db, "valid", batch_size=1, workers=0, augment=False, size=32)
    with torch.no_grad():
        errors = torch.cat([model(images).features - targets for images, targets, _ in loader])
    assert len(errors) == len(pairs)
    assert summary["best_val_mse"] == pytest.approx(errors.pow(2).mean().item(), rel=1e-5)
    assert summary["valid_mse"]["vae"] == pytest.approx(summary["best_val_mse"], rel=1e-5)
    assert rows(run_dir)[0]["val_mae"] == pytest.approx(errors.abs().mean().item(), rel=1e-5)


def test_it_learns_better_than_the_mean_predictor(db, tmp_path):
    summary = train(small(epochs=8, batch_size=16, lr=3e-3), tmp_path / "run", db)
    # The mean predictor's MSE on the valid pairs (targets standardised on train).
    from pressedplay.loader import CoverPairs

    mean_predictor = float((CoverPairs(db, "valid", augment=False).targets ** 2).mean())
    assert summary["best_val_mse"] < 0.85 * mean_predictor
    assert summary["valid_mse"]["mean"] == pytest.approx(mean_predictor, rel=1e-5)
    # Synthetic covers carry their features in colour and texture: a learned candidate wins.
    assert summary["chosen"] != "mean"
    assert summary["valid_mse"]["mean"] > 1.2 * min(summary["valid_mse"].values())
    first = rows(tmp_path / "run")[0]["val_mse"]
    assert summary["best_val_mse"] < first


def test_resume_gives_exactly_the_uninterrupted_run(db, tmp_path):
    straight, halves = tmp_path / "straight", tmp_path / "halves"
    train(small(epochs=2), straight, db)
    train(small(epochs=1), halves, db)
    summary = train(small(epochs=2), halves, db, resume=True)
    a, b = checkpoints.load(straight / "last.pt"), checkpoints.load(halves / "last.pt")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    moments_a, moments_b = a["training"]["optimizer"]["state"], b["training"]["optimizer"]["state"]
    assert all(
        torch.equal(moments_a[p][name], moments_b[p][name])
        for p in moments_a
        for name in moments_a[p]
    )
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows(straight)] == [
        {k: v for k, v in r.items() if k not in drop} for r in rows(halves)
    ]
    assert summary["epochs"] == 2 and summary["last_val_mse"] == a["val_mse"]
    # Resuming a finished run trains nothing and says where it stands.
    again = train(small(epochs=2), halves, db, resume=True)
    assert again["best_val_mse"] == summary["best_val_mse"] and len(rows(halves)) == 2


def test_resume_drops_the_log_of_an_epoch_whose_checkpoint_was_never_written(db, tmp_path):
    run_dir = tmp_path / "run"
    train(small(epochs=1), run_dir, db)
    killed = {**rows(run_dir)[0], "epoch": 2, "step": 999}
    with (run_dir / "metrics.jsonl").open("a") as file:
        file.write(json.dumps(killed) + "\n")
    train(small(epochs=2), run_dir, db, resume=True)
    assert [(r["epoch"], r["step"] < 999) for r in rows(run_dir)] == [(1, True), (2, True)]


def test_refusals(db, tmp_path):
    run_dir = tmp_path / "run"
    train(small(epochs=1), run_dir, db)
    with pytest.raises(UserError, match="already holds a run"):
        train(small(epochs=1), run_dir, db)
    with pytest.raises(UserError, match=r"cannot resume .*lr \(0.01 here, 0.001 saved\)"):
        train(small(epochs=2, lr=0.01), run_dir, db, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file"):
        train(small(), tmp_path / "file", db)
    with pytest.raises(UserError, match="nothing to resume"):
        train(small(), tmp_path / "empty", db, resume=True)
    with pytest.raises(UserError, match="no such dataset"):
        train(small(), tmp_path / "other", tmp_path / "missing.db")
    with pytest.raises(UserError, match=r"has no best\.pt to fine-tune"):
        train(small(), tmp_path / "empty", db, feedback_db=tmp_path / "feedback.db")
    with pytest.raises(UserError, match="no feedback at"):
        train(small(), run_dir, db, feedback_db=tmp_path / "feedback.db")
    other = tmp_path / "other.db"
    synth_covers(other, covers=30, tracks_per_cover=2, seed=5, catalog_name=None)
    with pytest.raises(UserError, match="not the dataset"):
        train(small(epochs=2), run_dir, other, resume=True)


def test_configuration_options_and_run_config(tmp_path):
    config = with_overrides(TrainConfig(), epochs=3, lr=None, kl_weight=0.5)
    assert (config.epochs, config.lr, config.kl_weight) == (3, 1e-3, 0.5)
    with pytest.raises(UserError, match=r"options: image_size: .*multiple of 8"):
        with_overrides(TrainConfig(), image_size=100)
    with pytest.raises(UserError, match="options: targets"):
        with_overrides(TrainConfig(), targets="tracks")
    with pytest.raises(UserError, match="holds no training run"):
        for_run(tmp_path, resume=True, feedback=False)
    save_config(small(lr=0.01), tmp_path)
    resumed = for_run(tmp_path, resume=True, feedback=False, epochs=9)
    assert (resumed.epochs, resumed.lr, resumed.image_size) == (9, 0.01, 32)
    assert for_run(tmp_path, resume=False, feedback=False) == TrainConfig()
    assert small().difference(small(epochs=7, workers=3)) is None  # pace, not results
    assert small().difference(small(seed=1)) == "seed (0 here, 1 saved)"


def test_pairs_targets_train_on_every_pair(db, tmp_path):
    train(small(epochs=1, targets="pairs", batch_size=32), tmp_path / "run", db)
    pairs = count(
        db, "SELECT COUNT(*) FROM pairs JOIN covers ON covers.id = cover_id WHERE split = 'train'"
    )
    assert rows(tmp_path / "run")[0]["examples"] == pairs


def test_the_train_command(cli, db, tmp_path):
    run_dir = tmp_path / "run"
    args = ("train", run_dir, "--db", db, "--epochs", 1, "--workers", 0, "--device", "cpu")
    result = cli(*args, "--batch-size", 16, "--json")
    assert result.code == 0, result.err
    summary = json.loads(result.out)
    assert summary["epochs"] == 1 and (run_dir / "best.pt").is_file()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["batch_size"] == 16 and config["image_size"] == 128
    again = cli(*args)
    assert again.code == 2 and again.err.startswith("error: ") and "--resume" in again.err
    resumed = cli("train", run_dir, "--db", db, "--resume", "--epochs", 2, "--json")
    assert resumed.code == 0, resumed.err
    assert [r["epoch"] for r in rows(run_dir)] == [1, 2]
    assert json.loads((run_dir / "config.json").read_text())["batch_size"] == 16
