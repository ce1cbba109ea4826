"""The colour prior: Palmer et al.'s directions, catalog-centred, in range, as documented."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image

from pressedplay import prior
from pressedplay.colour_stats import PRIOR_INPUTS, stats
from pressedplay.features import FEATURES, NAMES

TYPICAL = {name: prior.REFERENCE[name][0] for name in PRIOR_INPUTS}


def _image_stats(rgb: tuple[int, int, int], noise: float = 0.0) -> dict[str, float]:
    rng = np.random.default_rng(0)
    pixels = np.array(rgb, dtype=np.float64) + rng.normal(0, noise, (128, 128, 3))
    return stats(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def test_a_typical_cover_gets_the_catalogs_typical_music():
    assert prior.predict(TYPICAL) == pytest.approx(prior.CENTRE, abs=1e-9)


def test_light_saturated_warm_is_happier_and_more_energetic_than_dark_muted_blue():
    # Palmer et al. 2013: faster, major-mode music <-> lighter, more saturated, yellower.
    bright = prior.predict(_image_stats((255, 180, 40), noise=30))
    gloomy = prior.predict(_image_stats((45, 55, 85), noise=4))
    for name in ("valence", "energy", "danceability", "loudness"):
        assert bright[name] > gloomy[name], name
    # What calibration dropped stays at the catalog's mean for any picture.
    for name in ("instrumentalness", "liveness", "speechiness"):
        assert bright[name] == gloomy[name] == pytest.approx(prior.CENTRE[name])


def test_every_weight_keeps_the_sign_of_its_direction():
    assert np.all(prior.WEIGHT_MATRIX * prior.DIRECTIONS >= 0)
    assert np.all(prior.WEIGHT_MATRIX[prior.DIRECTIONS == 0] == 0)


def test_each_input_moves_each_feature_the_documented_way():
    for i, name in enumerate(PRIOR_INPUTS):
        low, high = dict(TYPICAL), dict(TYPICAL)
        step = prior.REFERENCE[name][1]
        low[name] -= step
        high[name] += step
        below, above = prior.predict(low), prior.predict(high)
        for feature in NAMES:
            weight = prior.WEIGHTS[feature][i]
            change = above[feature] - below[feature]
            if weight == 0:
                assert change == 0, (name, feature)
            else:
                assert np.sign(change) == np.sign(weight), (name, feature)


def test_outputs_stay_in_range_and_plausible_for_any_input():
    extremes = [-5.0, 0.0, 0.5, 1.0, 5.0]
    grid = np.array(list(itertools.product(extremes, repeat=len(PRIOR_INPUTS))))
    features = prior.predict_matrix(grid)
    assert features.shape == (len(grid), len(NAMES))
    for column, feature in enumerate(FEATURES):
        assert features[:, column].min() >= feature.low
        assert features[:, column].max() <= feature.high
    columns = dict(zip(NAMES, features.T, strict=True))
    assert columns["valence"].min() > 0.1 and columns["valence"].max() < 0.9
    assert columns["loudness"].min() > -11 and columns["loudness"].max() < -3
    assert columns["acousticness"].max() < 0.6 and columns["instrumentalness"].max() < 0.25


def test_predict_and_predict_matrix_agree():
    rows = np.random.default_rng(3).uniform(0, 1, (5, len(PRIOR_INPUTS)))
    batched = prior.predict_matrix(rows)
    for row, expected in zip(rows, batched, strict=True):
        single = prior.predict(dict(zip(PRIOR_INPUTS, row, strict=True)))
        assert [single[name] for name in NAMES] == pytest.approx(expected.tolist())


def test_missing_inputs_are_named():
    with pytest.raises(ValueError, match="warmth, contrast"):
        prior.predict({"lightness": 0.5, "saturation": 0.2, "edge_density": 0.1})


def _doc_table() -> dict[str, list[str]]:
    rows = {}
    for line in prior.__doc__.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].split(" ")[0] in NAMES:
            rows[cells[0].split(" ")[0]] = cells[1:]
    return rows


def test_the_docstring_table_is_the_mapping():
    table = _doc_table()
    assert sorted(table) == sorted(NAMES)
    for feature, cells in table.items():
        weights = [float(cell) if cell else 0.0 for cell in cells[: len(PRIOR_INPUTS)]]
        assert weights == list(prior.WEIGHTS[feature]), feature
        assert float(cells[len(PRIOR_INPUTS)].split()[0]) == prior.CENTRE[feature], feature
    header = next(line for line in prior.__doc__.splitlines() if line.startswith("| input"))
    for name in PRIOR_INPUTS:
        reference, scale = prior.REFERENCE[name]
        assert f"{name.replace('_', ' ')} ({reference:g}, {scale:g})" in header, name
