"""The challenge metrics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from trecs.metrics import NO_HIT_CLICKS, clicks, ndcg, r_precision, summarise

ARTIST = {"a1": "x", "a2": "x", "b1": "y", "b2": "y", "c1": "z", "d1": "w", "e1": "v"}


def test_r_precision_counts_tracks_and_artists_once():
    held_out = ["a1", "b1", "c1", "d1"]
    assert r_precision(["a1", "b1", "c1", "d1", "e1"], held_out, ARTIST) == 1.0
    # Only the first |G| = 4 count (c1 at rank 5 does not): a1 is a hit; the non-hits
    # b2 and a2 earn 0.25 each for artists y and x of G; e1 earns nothing.
    assert r_precision(["a1", "b2", "e1", "a2", "c1"], held_out, ARTIST) == pytest.approx(
        (1 + 0.5) / 4
    )
    # An artist is credited once, however many non-hits share it.
    assert r_precision(["a2", "a2", "e1", "e1"], held_out, ARTIST) == pytest.approx(0.25 / 4)
    assert r_precision(["e1"] * 4, held_out, ARTIST) == 0.0


def test_ndcg_follows_the_challenge_definition():
    held_out = ["a1", "b1", "c1"]
    assert ndcg(["a1", "b1", "c1"], held_out) == pytest.approx(1.0)
    # Hits at ranks 2 and 3: DCG = 1/log2(2) + 1/log2(3); IDCG = 1 + 1/log2(2).
    expected = (1 + 1 / math.log2(3)) / (1 + 1)
    assert ndcg(["e1", "a1", "b1", "d1"], held_out) == pytest.approx(expected)
    assert ndcg(["e1", "d1"], held_out) == 0.0


def test_clicks():
    held_out = ["a1"]
    assert clicks(["a1"], held_out) == 0
    assert clicks(["e1"] * 10 + ["a1"], held_out) == 1
    assert clicks(["e1"] * 9 + ["a1"], held_out) == 0
    assert clicks(["e1"] * 500, held_out) == NO_HIT_CLICKS


def test_summary_has_a_95_percent_interval():
    s = summarise([0.0, 1.0] * 50)
    assert s.mean == 0.5 and s.count == 100
    assert s.ci95 == pytest.approx(1.96 * math.sqrt(0.25 * 100 / 99 / 100))
    assert summarise([]).count == 0
