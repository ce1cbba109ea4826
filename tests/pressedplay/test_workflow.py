"""The README's pressedplay path through the CLI: covers -> train -> evaluate -> predict ->
generate -> feedback -> fine-tune, with defaults resolved as a user meets them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pressedplay.features import NAMES

EXAMPLE = Path(__file__).parents[2] / "examples" / "sunset.jpg"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_from_covers_to_a_fine_tuned_model(cli, home, tmp_path, one_torch_thread):
    db = tmp_path / "covers.db"
    assert cli("synth-covers", db, "--covers", 60, "--tracks-per-cover", 3).code == 0

    # Before any training, predict falls back to the colour prior and says so.
    before = cli("predict", EXAMPLE, "--json")
    assert before.code == 0, before.err
    assert json.loads(before.out)[0]["model"] == "colour prior"

    train = cli("train", "--db", db, "--epochs", 2, "--image-size", 32, "--workers", 0, "--json")
    assert train.code == 0, train.err
    run_dir = Path(json.loads(train.out)["run_dir"])
    assert run_dir.parent == home / "runs"  # no RUN_DIR: a new run in the data folder
    assert (run_dir / "best.pt").is_file()

    evaluated = cli("evaluate", run_dir, "--db", db, "--workers", 0, "--json")
    assert evaluated.code == 0, evaluated.err
    report = json.loads(evaluated.out)
    chosen = json.loads(train.out)["chosen"]
    models = {"vae", "mean", "ridge", "prior", "catalog"} | ({"run"} if chosen != "vae" else set())
    assert set(report["models"]) == models

    # Now the latest run answers by default.
    predicted = cli("predict", EXAMPLE, "--json")
    assert predicted.code == 0, predicted.err
    (answer,) = json.loads(predicted.out)
    if chosen == "vae":
        assert answer["model"] == f"vae {run_dir / 'best.pt'}"
    else:  # on 2 epochs at 32 px ridge, the blend or the mean may beat the VAE on valid
        assert answer["model"] == f"{chosen} (chosen on valid) {run_dir}"
    assert list(answer["features"]) == list(NAMES)

    playlist = tmp_path / "playlist.json"
    generated = cli("generate", EXAMPLE, "--catalog", "synth", "--n", 5, "--format", "json")
    assert generated.code == 0, generated.err
    result = json.loads(generated.out)
    assert len(result["tracks"]) == 5 and result["model"] == answer["model"]
    assert result["features"] == answer["features"]
    playlist.write_text(generated.out)

    liked = cli("feedback", EXAMPLE, "--like", "--playlist", playlist, "--catalog", "synth")
    assert liked.code == 0, liked.err
    assert "stored like #1" in liked.out and "(5 tracks)" in liked.out

    tuned = cli("train", run_dir, "--db", db, "--feedback", "--epochs", 1, "--json")
    assert tuned.code == 0, tuned.err
    assert (run_dir / "before-feedback.pt").is_file()
    assert json.loads(tuned.out)["chosen"] == "vae"  # only the VAE learns from verdicts
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["phase"] == "feedback"
