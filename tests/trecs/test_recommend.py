"""Batch top-N recommendation: exact ranking, seeds and special tokens excluded."""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

from trecs.config import EOP, NUM_SPECIAL, START, UNK, ModelConfig
from trecs.model import PlaylistTransformer, init_table
from trecs.recommend import Recommender

CONFIG = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=6)


def test_recommendations_are_the_exact_top_scores_without_seeds():
    model = PlaylistTransformer(CONFIG, rngs=nnx.Rngs(0))
    table = 10 * init_table(jax.random.key(2), 60, 16)
    seeds = [[5, 9, 11], [7], [], [3, 4, 5, 6, 7, 8, 9, 10, UNK]]  # the last outgrows the context
    recs = Recommender(model, table).recommend(seeds, n=20, batch_size=3)
    assert recs.shape == (4, 20)
    for seed, row in zip(seeds, recs, strict=True):
        window = [START, *seed][-CONFIG.context :]
        hidden = model(table[np.array([window])])[0, -1]
        scores = np.array(table @ hidden)
        scores[:NUM_SPECIAL] = -np.inf
        scores[list(seed)] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:20]
        np.testing.assert_array_equal(np.sort(row), np.sort(expected))
        assert scores[row[0]] == scores.max()
        assert not set(row.tolist()) & {START, UNK, EOP, *seed}
        assert len(set(row.tolist())) == 20


def test_padding_rows_are_never_recommended():
    model = PlaylistTransformer(CONFIG, rngs=nnx.Rngs(0))
    table = 10 * init_table(jax.random.key(2), 60, 16)
    recs = Recommender(model, table, vocab_size=30).recommend([[5], [7, 8]], n=20)
    assert recs.max() < 30
