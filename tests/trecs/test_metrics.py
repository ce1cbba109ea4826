"""The challenge metrics on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
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
    # Hits at ranks 2 and 3: DCG = 1/log2(3) + 1/log2(4); IDCG = 1 + 1/log2(3) + 1/log2(4).
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    expected = (1 / math.log2(3) + 1 / math.log2(4)) / ideal
    assert ndcg(["e1", "a1", "b1", "d1"], held_out) == pytest.approx(expected, abs=1e-12)
    assert ndcg(["e1", "d1"], held_out) == 0.0


def test_ndcg_ideal_counts_every_held_out_track_not_only_those_found():
    # One hit, ranked first, out of four held-out tracks. Counting only the found tracks
    # in the ideal (|G & R| = 1) would give a perfect 1.0; the challenge gives 1 / IDCG(4).
    held_out = ["a1", "b1", "c1", "d1"]
    ideal = sum(1 / math.log2(i + 1) for i in range(1, 5))
    assert ndcg(["a1", "e1"], held_out) == pytest.approx(1 / ideal, abs=1e-12)
    assert ndcg(["a1", "e1"], held_out) < 0.5


def test_ndcg_scores_the_unique_top_500():
    held_out = ["a1"]
    # Repeats collapse: a1 is the second unique track, DCG = 1 / log2(3).
    assert ndcg(["e1"] * 499 + ["a1"], held_out) == pytest.approx(1 / math.log2(3), abs=1e-12)
    assert ndcg([f"x{i}" for i in range(500)] + ["a1"], held_out) == 0.0
    assert clicks([f"x{i}" for i in range(500)] + ["a1"], held_out) == NO_HIT_CLICKS


def _official_ndcg(relevant: list[str], retrieved: list[str], k: int = 500) -> float:
    """A transcription of the RecSys Challenge 2018 metric code (numpy, as published)."""

    def unique(items):
        return list(dict.fromkeys(items))

    def dcg(elements, truth):
        score = np.array([float(e in truth) for e in elements])
        return float(np.sum(score / np.log2(1 + np.arange(1, len(score) + 1))))

    relevant = unique(relevant)
    retrieved = unique(retrieved[:k])
    idcg = dcg(relevant, relevant)
    return 0.0 if idcg == 0 else dcg(retrieved, relevant) / idcg


def _official_r_precision(targets: list[str], predictions: list[str], k: int = 500) -> float:
    target_set = set(targets)
    return len(set(predictions[:k][: len(target_set)]) & target_set) / len(target_set)


def _official_clicks(targets: list[str], predictions: list[str], k: int = 500) -> float:
    predictions = predictions[:k]
    found = set(predictions) & set(targets)
    for index, track in enumerate(predictions):
        if track in found:
            return float(index // 10)
    return k / 10 + 1


def test_metrics_equal_the_challenge_code_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(300):
        universe = [f"t{i}" for i in range(int(rng.integers(20, 2000)))]
        held_out = list(rng.choice(universe, int(rng.integers(1, 20)), replace=False))
        recommended = list(rng.choice(universe, min(500, len(universe)), replace=False))
        assert abs(ndcg(recommended, held_out) - _official_ndcg(held_out, recommended)) < 1e-9
        assert clicks(recommended, held_out) == _official_clicks(held_out, recommended)
        # Without artist credit (every track its own artist) R-precision is the official one.
        own = {t: t for t in universe}
        assert (
            abs(
                r_precision(recommended, held_out, own)
                - _official_r_precision(held_out, recommended)
            )
            < 1e-9
        )


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
