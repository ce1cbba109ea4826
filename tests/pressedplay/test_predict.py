"""predict: which model answers, the training squash, batches, bad files one by one, the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pressedplay import checkpoints, colour_stats, images, prior
from pressedplay.augment import eval_transform
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import load_image
from pressedplay.model import VAEAttention
from pressedplay.predict import (
    load_predictor,
    predict_bytes,
    predict_files,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MEAN = np.array([0.2, 0.6, 0.7, 0.1, 0.2, -7.0, 0.1, 0.5])
STD = np.array([0.2, 0.15, 0.2, 0.2, 0.15, 3.0, 0.1, 0.25])


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """An empty data folder: no trained run unless a test makes one."""
    monkeypatch.setenv("PRESSEDPLAY_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _checkpoint(path: Path, seed: int = 0, **architecture) -> Path:
    torch.manual_seed(seed)
    model = VAEAttention(**architecture)
    with torch.no_grad():  # a wide latent, so that sampling visibly differs from the mean
        model.fc_logvar.bias.fill_(1.0)
    checkpoints.save(path, checkpoints.payload(model, MEAN, STD, epoch=1, step=1))
    return path


def _jpeg(rgb: tuple[int, int, int], size=(200, 150), seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(rgb) + rng.normal(0, 25, (size[1], size[0], 3)), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _png_rgba() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (90, 120), (20, 200, 90, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def covers(tmp_path) -> list[Path]:
    return [
        _write(tmp_path / "warm.jpg", _jpeg((240, 150, 40), seed=1)),
        _write(tmp_path / "cold.jpg", _jpeg((30, 60, 140), seed=2)),
        _write(tmp_path / "leaf.png", _png_rgba()),
    ]


def _by_hand(predictor, data: bytes) -> np.ndarray:
    """The model applied to the training pipeline's undistorted input, in original units."""
    loaded = predictor.loaded
    batch = eval_transform()(load_image(data, loaded.model.image_size))[None]
    with torch.no_grad():
        standardised = loaded.model(batch).features.double().numpy()
    return loaded.to_original(standardised)[0]


def test_the_prior_answers_when_asked_or_when_nothing_was_trained(covers):
    for spec in ("prior", None):
        predictor = load_predictor(spec)
        assert predictor.name == "colour prior"
        (result,) = predict_files(covers[:1], predictor)
        squashed = load_image(covers[0].read_bytes())
        assert result == {
            "image": str(covers[0]),
            "model": "colour prior",
            "features": prior.predict(colour_stats.stats(squashed)),
        }


def test_the_latest_run_answers_by_default(home, covers):
    _checkpoint(checkpoints.runs_root() / "first" / "best.pt")
    predictor = load_predictor(None)
    assert predictor.name == f"vae {checkpoints.runs_root() / 'first' / 'best.pt'}"
    (result,) = predict_files(covers[:1], predictor)
    assert result["model"] == predictor.name
    assert list(result["features"]) == list(NAMES)


def test_a_run_dir_or_file_is_the_training_pipeline_then_original_units(tmp_path, covers):
    path = _checkpoint(tmp_path / "run" / "best.pt")
    for spec in (tmp_path / "run", path, str(path)):
        predictor = load_predictor(spec)
        assert predictor.name == f"vae {path}"
        results = predict_files(covers, predictor)
        for cover, result in zip(covers, results, strict=True):
            expected = _by_hand(predictor, cover.read_bytes())
            got = np.array([result["features"][name] for name in NAMES])
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_batches_give_the_same_answers_as_one_image_at_a_time(tmp_path, covers):
    predictor = load_predictor(_checkpoint(tmp_path / "m.pt"))
    many = covers * 3
    together = predict_files(many, predictor, batch_size=4)
    alone = [predict_files([path], predictor)[0] for path in many]
    assert [r["image"] for r in together] == [str(p) for p in many]
    for a, b in zip(together, alone, strict=True):
        assert a["features"] == pytest.approx(b["features"], rel=1e-5, abs=1e-5)


def test_each_bad_file_is_its_own_error_and_the_others_are_answered(tmp_path, covers):
    jpeg = covers[0].read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (6400, 6400)).save(bomb, "PNG")  # 41M pixels in a few KB
    big = tmp_path / "huge.jpg"
    with open(big, "wb") as handle:
        handle.truncate(images.MAX_BYTES + 1)
    inputs = [
        covers[0],
        tmp_path / "missing.jpg",
        _write(tmp_path / "truncated.jpg", jpeg[: len(jpeg) // 2]),
        _write(tmp_path / "notes.jpg", b"these are not pixels\n"),
        big,
        _write(tmp_path / "bomb.png", bomb.getvalue()),
        _write(tmp_path / "empty.png", b""),
        tmp_path,
        covers[2],
    ]
    results = predict_files(inputs, load_predictor("prior"))
    assert [r["image"] for r in results] == [str(p) for p in inputs]
    errors = [r.get("error", "") for r in results]
    assert errors[0] == "" and errors[-1] == ""
    assert errors[1] == "no such file"
    assert errors[2].startswith("corrupt image")
    assert errors[3] == "not an image"
    assert errors[4] == "too large file: over 20,971,520 bytes"
    assert errors[5].startswith("too many pixels")
    assert errors[6] == "empty file"
    assert errors[7] == "is a folder"
    assert all(set(r) == {"image", "error"} for r in results[1:-1])
    assert set(results[0]["features"]) == set(NAMES)


def test_bytes_in_memory_answer_in_the_same_shape(tmp_path, covers):
    predictor = load_predictor(_checkpoint(tmp_path / "m.pt"))
    items = [("upload-1", covers[1].read_bytes()), ("upload-2", b"GIF89a broken")]
    got = predict_bytes(items, predictor)
    from_files = predict_files([covers[1]], predictor)[0]
    assert got[0] == {**from_files, "image": "upload-1"}
    assert got[1]["image"] == "upload-2" and "error" in got[1]


def test_sample_draws_from_the_latent_with_the_seed(tmp_path, covers):
    path = _checkpoint(tmp_path / "m.pt")

    def run(**options):
        results = predict_files(covers, load_predictor(path, **options))
        return np.array([[r["features"][n] for n in NAMES] for r in results])

    mean = run()
    first, again = run(sample=True, seed=5), run(sample=True, seed=5)
    other = run(sample=True, seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, mean) and not np.allclose(first, other)
    sampler = load_predictor(path, sample=True, seed=7)
    state = torch.get_rng_state()
    predict_files(covers, sampler)
    assert torch.equal(state, torch.get_rng_state())  # draws leave the global RNG alone
    with pytest.raises(UserError, match="--sample needs a trained model"):
        load_predictor("prior", sample=True)


def test_models_that_do_not_fit_are_refused(tmp_path):
    path = _checkpoint(tmp_path / "m.pt", latent_dim=16)
    data = torch.load(path, weights_only=True)
    data["architecture"]["latent_dim"] = 32
    torch.save(data, path)
    with pytest.raises(UserError, match="does not match the VAEAttention architecture"):
        load_predictor(path)
    with pytest.raises(UserError, match="no model at"):
        load_predictor(tmp_path / "nothing.pt")
    with pytest.raises(UserError, match="batch size"):
        predict_files([], load_predictor("prior"), batch_size=0)


def test_cli_json_table_plot_and_exit_status(cli, tmp_path, covers):
    missing = tmp_path / "missing.jpg"
    result = cli("predict", covers[0], missing, covers[1], "--model", "prior", "--json")
    assert result.code == 2
    answers = json.loads(result.out)
    assert [a["image"] for a in answers] == [str(covers[0]), str(missing), str(covers[1])]
    assert answers[1] == {"image": str(missing), "error": "no such file"}
    assert answers[0]["model"] == "colour prior"
    assert f"error: {missing}: no such file" in result.err

    plot = tmp_path / "radar.png"
    _checkpoint(tmp_path / "run" / "best.pt")
    result = cli("predict", *covers, "--model", tmp_path / "run", "--plot", plot)
    assert result.code == 0, result.err
    assert f"model: vae {tmp_path / 'run' / 'best.pt'}" in result.out
    assert "valence" in result.out and "warm.jpg" in result.out
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 300


def test_cli_a_corrupt_image_alone_is_one_line_and_exit_2(cli, tmp_path):
    bad = _write(tmp_path / "bad.jpg", b"\xff\xd8\xff\xe0 truncated")
    result = cli("predict", bad, "--model", "prior")
    assert result.code == 2
    (line,) = result.err.strip().splitlines()
    assert line.startswith(f"error: {bad}: corrupt image")
