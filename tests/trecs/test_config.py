"""Training settings assembled as `trecs train` assembles them, called from Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from trecs.config import TrainConfig, train_config
from trecs.errors import UserError


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_defaults_with_the_options_given(tmp_path):
    config = train_config(tmp_path / "run", num_steps=7, lr=1e-3, loss="full", batch_size=None)
    assert config == TrainConfig(num_steps=7, optimizer={"lr": 1e-3}, loss={"name": "full"})


def test_options_override_the_file(tmp_path):
    path = _toml(tmp_path, "batch_size = 4\nnum_steps = 9\n[model]\nnum_layers = 1\n")
    config = train_config(tmp_path / "run", path, num_steps=3, num_tracks=100, seed=None)
    assert (config.batch_size, config.num_steps, config.seed) == (4, 3, 0)
    assert (config.model.num_layers, config.model.num_tracks) == (1, 100)


def test_resume_starts_from_the_saved_config_not_the_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(TrainConfig(batch_size=5).model_dump_json())
    path = _toml(tmp_path, "batch_size = 4\n")
    resumed = train_config(run, path, resume=True, num_steps=2)
    assert (resumed.batch_size, resumed.num_steps) == (5, 2)
    assert train_config(run, path).batch_size == 4  # a new run reads the file
    assert train_config(tmp_path / "new", path, resume=True).batch_size == 4  # nothing saved


@pytest.mark.parametrize(
    ("text", "overrides", "fragment"),
    [
        (None, {}, "no such config file"),
        ("batch_size = [", {}, "invalid TOML"),
        ("batch_size = 0", {}, "settings.toml: batch_size: "),
        ("unknown = 1", {}, "settings.toml: unknown: "),
        ("", {"loss": "softest"}, "options: loss.name: "),
        ("", {"batch_size": 0}, "options: batch_size: "),
    ],
)
def test_bad_settings_are_one_line_user_errors(tmp_path, text, overrides, fragment):
    path = tmp_path / "settings.toml" if text is None else _toml(tmp_path, text)
    with pytest.raises(UserError, match=fragment) as caught:
        train_config(tmp_path / "run", path, **overrides)
    assert "\n" not in str(caught.value)


def test_the_command_reports_the_same_error(cli, tmp_path):
    path = _toml(tmp_path, "")
    with pytest.raises(UserError) as caught:
        train_config(tmp_path / "run", path, loss="softest")
    result = cli("train", tmp_path / "run", "--config", path, "--loss", "softest")
    result.assert_error(str(caught.value))
