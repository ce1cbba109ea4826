"""Batch top-N recommendation: exact ranking, seeds and special tokens excluded, titles,
output biases and both readouts."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from trecs.config import EOP, NUM_SPECIAL, START, UNK, ModelConfig
from trecs.data import title_tokens
from trecs.model import PlaylistTransformer, init_table
from trecs.recommend import Recommender


def model_of(config: ModelConfig) -> PlaylistTransformer:
    """An untrained model whose title words already mean something (they start at 0)."""
    model = PlaylistTransformer(config, rngs=nnx.Rngs(0))
    model.title.embedding[...] = jax.random.normal(jax.random.key(9), (64, 16))
    return model


CONFIG = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=6, title_buckets=64)


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_recommendations_are_the_exact_top_scores_without_seeds(readout):
    model = model_of(CONFIG.model_copy(update={"readout": readout}))
    table = 10 * init_table(jax.random.key(2), 60, 16)
    bias = jax.random.normal(jax.random.key(3), (60,))
    seeds = [[5, 9, 11], [7], [], [3, 4, 5, 6, 7, 8, 9, 10, UNK]]  # the last outgrows the context
    titles = ["Road trip", None, "sleep", None]
    recs = Recommender(model, table, bias=bias).recommend(seeds, n=20, batch_size=3, titles=titles)
    assert recs.shape == (4, 20)
    for seed, title, row in zip(seeds, titles, recs, strict=True):
        tokens, width = [START, *seed], CONFIG.context
        if readout == "last":  # the most recent context tokens
            windows = [tokens[-width:]]
        else:  # every token, in consecutive windows
            windows = [tokens[i : i + width] for i in range(0, len(tokens), width)]
        # The title goes with the window that holds <start>.
        hashed = [title_tokens(title if w[0] == START else None, 64)[None] for w in windows]
        hidden = np.concatenate(
            [model(table[np.array([w])], h)[0] for w, h in zip(windows, hashed, strict=True)]
        )
        state = hidden[-1] if readout == "last" else hidden.mean(axis=0)
        scores = np.array(table @ state + bias)
        scores[:NUM_SPECIAL] = -np.inf
        scores[list(seed)] = -np.inf
        expected = np.argsort(-scores, kind="stable")[:20]
        np.testing.assert_array_equal(np.sort(row), np.sort(expected))
        assert scores[row[0]] == scores.max()
        assert not set(row.tolist()) & {START, UNK, EOP, *seed}
        assert len(set(row.tolist())) == 20


def test_titles_change_the_recommendations():
    model = model_of(CONFIG)
    table = 10 * init_table(jax.random.key(2), 60, 16)
    recommender = Recommender(model, table)
    untitled = recommender.recommend([[5], []], n=10)
    np.testing.assert_array_equal(
        recommender.recommend([[5], []], n=10, titles=[None, None]), untitled
    )
    titled = recommender.recommend([[5], []], n=10, titles=["workout", "rainy day"])
    assert not np.array_equal(titled[0], untitled[0]) and not np.array_equal(titled[1], untitled[1])


def test_padding_rows_are_never_recommended():
    model = PlaylistTransformer(CONFIG, rngs=nnx.Rngs(0))
    table = 10 * init_table(jax.random.key(2), 60, 16)
    recs = Recommender(model, table, vocab_size=30).recommend([[5], [7, 8]], n=20)
    assert recs.max() < 30
