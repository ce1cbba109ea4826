"""Radar charts: axes scaled by the feature ranges, real image files, written atomically."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.plots import radar, scaled

CALM = dict(zip(NAMES, [0.9, 0.3, 0.2, 0.6, 0.1, -14.0, 0.04, 0.3], strict=True))
LOUD = dict(zip(NAMES, [0.05, 0.8, 0.9, 0.0, 0.3, -4.0, 0.2, 0.8], strict=True))


def _result(name: str, features: dict) -> dict:
    return {"image": f"/covers/{name}", "model": "colour prior", "features": features}


def test_axes_are_the_feature_ranges_loudness_linear_in_db():
    values = scaled(CALM)
    assert values[NAMES.index("acousticness")] == pytest.approx(0.9)
    loudness = NAMES.index("loudness")
    assert values[loudness] == pytest.approx(46 / 60)  # -14 dB on -60..0 dB
    assert scaled({**CALM, "loudness": -60.0})[loudness] == 0
    assert scaled({**CALM, "loudness": 2.5, "energy": -0.1})[[loudness, 2]] == pytest.approx(
        [1, 0]
    )  # clipped


def _pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def test_draws_one_polygon_per_answered_image(tmp_path):
    one = radar([_result("calm.jpg", CALM)], tmp_path / "one.png")
    two = radar(
        [
            _result("calm.jpg", CALM),
            {"image": "x.jpg", "error": "no such file"},
            _result("loud.jpg", LOUD),
        ],
        tmp_path / "two.png",
    )
    assert one == tmp_path / "one.png"
    first, second = _pixels(one), _pixels(two)
    assert first.shape[0] > 400 and first.std() > 10  # a drawing, not a blank page
    assert first.shape != second.shape or np.abs(first - second).sum() > 0
    # The second polygon is drawn in matplotlib's second colour (orange, #ff7f0e).
    orange = np.all(np.abs(second - [255, 127, 14]) < 40, axis=2).sum()
    assert orange > 100 and np.all(np.abs(first - [255, 127, 14]) < 40, axis=2).sum() < orange / 10


def test_other_formats_and_replacing_a_file_atomically(tmp_path):
    out = tmp_path / "radar.svg"
    out.write_text("old")
    radar([_result("calm.jpg", CALM)], out)
    assert out.read_text().lstrip().startswith("<?xml") and "<svg" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["radar.svg"]  # no temporary left
    radar([_result("calm.jpg", CALM)], tmp_path / "radar.pdf")
    assert (tmp_path / "radar.pdf").read_bytes().startswith(b"%PDF")


def test_bad_outputs_and_nothing_to_draw_are_user_errors(tmp_path):
    results = [_result("calm.jpg", CALM)]
    with pytest.raises(UserError, match="does not exist"):
        radar(results, tmp_path / "no" / "such" / "radar.png")
    with pytest.raises(UserError, match=r"ending in \.png"):
        radar(results, tmp_path / "radar.txt")
    folder = tmp_path / "dir.png"
    folder.mkdir()
    with pytest.raises(UserError, match="is a folder"):
        radar(results, folder)
    with pytest.raises(UserError, match="nothing to plot"):
        radar([{"image": "x.jpg", "error": "not an image"}], tmp_path / "radar.png")
    assert not (tmp_path / "radar.png").exists()
