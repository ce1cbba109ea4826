"""Checkpoints: round trip, atomic writes, and clear refusals of foreign or mismatched files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pressedplay import checkpoints
from pressedplay.errors import UserError
from pressedplay.model import VAEAttention


def _save(path: Path, model: VAEAttention | None = None, **changes) -> dict:
    model = model or VAEAttention(image_size=32, latent_dim=4)
    data = checkpoints.payload(
        model, np.arange(8.0), np.full(8, 2.0), epoch=3, step=30, val_mse=0.5
    )
    data.update(changes)
    checkpoints.save(path, data)
    return data


def test_round_trip_gives_the_same_model_and_units(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = VAEAttention(image_size=32, latent_dim=4, attention="height")
    _save(tmp_path / checkpoints.BEST, model)
    loaded = checkpoints.load_model(tmp_path)  # a run directory means its best.pt
    assert loaded.path == tmp_path / checkpoints.BEST
    assert loaded.model.architecture() == model.architecture()
    assert not loaded.model.training
    images = torch.rand(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(loaded.model(images).features, model(images).features)
    assert loaded.meta["epoch"] == 3 and loaded.meta["val_mse"] == 0.5
    np.testing.assert_allclose(loaded.to_original(np.ones((1, 8))), [np.arange(8.0) + 2.0])
    assert [p.name for p in tmp_path.iterdir()] == [checkpoints.BEST]  # no temporary left


def test_run_directory_falls_back_to_last(tmp_path: Path) -> None:
    _save(tmp_path / checkpoints.LAST)
    assert checkpoints.resolve(tmp_path) == tmp_path / checkpoints.LAST
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no checkpoint"):
        checkpoints.resolve(tmp_path / "empty")


def test_mismatched_architecture_is_a_clear_error(tmp_path: Path) -> None:
    data = _save(tmp_path / "model.pt")
    data["architecture"]["latent_dim"] = 16
    checkpoints.save(tmp_path / "model.pt", data)
    with pytest.raises(UserError, match=r"does not match the VAEAttention architecture: size"):
        checkpoints.load_model(tmp_path / "model.pt")
    data["architecture"]["attention"] = "sideways"
    checkpoints.save(tmp_path / "model.pt", data)
    with pytest.raises(UserError, match="does not match"):
        checkpoints.load_model(tmp_path / "model.pt")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not a pressedplay model"),
        (b"not a checkpoint at all", "is not a pressedplay model"),
    ],
)
def test_foreign_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        checkpoints.load_model(path)


def test_other_formats_versions_and_features_are_refused(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="is not a pressedplay model"):
        checkpoints.load_model(tmp_path / "plain.pt")
    _save(tmp_path / "v2.pt", version=2)
    with pytest.raises(UserError, match="version 2 model"):
        checkpoints.load_model(tmp_path / "v2.pt")
    _save(tmp_path / "names.pt", feature_names=["tempo"])
    with pytest.raises(UserError, match="predicts other features"):
        checkpoints.load_model(tmp_path / "names.pt")
    with pytest.raises(UserError, match="no model at"):
        checkpoints.load_model(tmp_path / "missing.pt")


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    exploit = _Exploit()
    exploit.target = str(tmp_path / "pwned")
    torch.save({"format": checkpoints.FORMAT, "payload": exploit}, tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(UserError, match="is not a pressedplay model: UnpicklingError"):
        checkpoints.load_model(tmp_path / "evil.pt")
    assert not (tmp_path / "pwned").exists()
    # The same file loaded the unsafe way would have run it: the test can fail.
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert (tmp_path / "pwned").exists()


def test_latest_run_prefers_the_remembered_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    assert checkpoints.latest_run() is None
    first = checkpoints.new_run_dir()
    _save(first / checkpoints.BEST)
    assert checkpoints.latest_run() == first
    elsewhere = tmp_path / "elsewhere"
    _save(elsewhere / checkpoints.BEST)
    checkpoints.remember_run(elsewhere)
    assert checkpoints.latest_run() == elsewhere.resolve()
    (elsewhere / checkpoints.BEST).unlink()  # a remembered run that lost its model
    assert checkpoints.latest_run() == first
    second = checkpoints.new_run_dir()
    assert second != first and second.parent == first.parent
