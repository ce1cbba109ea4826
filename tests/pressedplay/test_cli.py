"""The pressedplay CLI: features listing and the shared CLI conventions."""

from __future__ import annotations

import json

from pressedplay.features import NAMES


def test_features_in_model_order(cli):
    result = cli("features", "--json")
    assert result.code == 0
    rows = json.loads(result.out)
    assert [r["name"] for r in rows] == list(NAMES)
    assert NAMES == (
        "acousticness",
        "danceability",
        "energy",
        "instrumentalness",
        "liveness",
        "loudness",
        "speechiness",
        "valence",
    )
    loudness = rows[NAMES.index("loudness")]
    assert (loudness["low"], loudness["high"], loudness["unit"]) == (-60.0, 0.0, "dB")
    table = cli("features").out
    assert "valence" in table and "-60 to 0 dB" in table


def test_help_version_and_errors(cli):
    assert cli("--help").code == 0
    assert "features" in cli().out
    assert cli("--version").out.strip().startswith("pressedplay ")
    bad = cli("features", "--bogus")
    assert bad.code == 2
    assert bad.err.strip().splitlines() == ["error: No such option: --bogus"]
