"""Every sampled estimator against the exact softmax loss on a small vocabulary."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trecs import loss as losses
from trecs.config import EOP, NUM_SPECIAL
from trecs.train_step import popularity, sample_classes

NUM_ROWS = 43  # 3 special tokens + 40 tracks; 41 classes (<eop> and the tracks)
FEATURES = 8


@pytest.fixture(scope="module")
def problem():
    key = jax.random.key(0)
    k1, k2, k3 = jax.random.split(key, 3)
    table = jax.random.normal(k1, (NUM_ROWS, FEATURES))
    hidden = jax.random.normal(k2, (64, FEATURES))
    targets = sample_classes(k3, (64,), NUM_ROWS)
    classes = jnp.concatenate([jnp.array([EOP]), jnp.arange(NUM_SPECIAL, NUM_ROWS)])
    exact = losses.full(hidden, table, targets, classes)
    return table, hidden, targets, classes, exact


def test_full_is_the_exact_cross_entropy(problem):
    table, hidden, targets, classes, exact = problem
    logits = hidden @ table[classes].T
    index = jnp.searchsorted(classes, targets)
    expected = -jax.nn.log_softmax(logits)[jnp.arange(64), index]
    np.testing.assert_allclose(exact, expected, rtol=1e-5)


@pytest.mark.parametrize(("remove_hits", "tolerance"), [(False, 0.05), (True, 0.02)])
def test_uniform_estimators_approach_the_exact_loss(problem, remove_hits, tolerance):
    table, hidden, targets, _, exact = problem
    estimates = []
    for seed in range(8):
        negatives = sample_classes(jax.random.key(seed), (64, 2000), NUM_ROWS)
        estimates.append(
            losses.uniform(
                hidden,
                table[targets],
                table[negatives],
                targets,
                negatives,
                NUM_ROWS - NUM_SPECIAL + 1,
                remove_hits=remove_hits,
            )
        )
    mean = jnp.mean(jnp.stack(estimates), axis=0)
    assert float(jnp.mean(jnp.abs(mean - exact) / exact)) < tolerance


def test_logq_approaches_the_exact_loss(problem):
    table, hidden, targets, _, exact = problem
    counts = np.zeros(NUM_ROWS)
    counts[EOP] = 5
    counts[NUM_SPECIAL:] = 100.0 / np.arange(1, NUM_ROWS - NUM_SPECIAL + 1)
    pop = popularity(counts, alpha=0.75)
    estimates = []
    for seed in range(8):
        u = jax.random.uniform(jax.random.key(seed), (4000,)) * pop.cdf[-1]
        negatives = jnp.searchsorted(pop.cdf, u)
        estimates.append(
            losses.logq(
                hidden, table[targets], table[negatives], targets, negatives, pop.log_q[negatives]
            )
        )
    mean = jnp.mean(jnp.stack(estimates), axis=0)
    assert float(jnp.mean(jnp.abs(mean - exact) / exact)) < 0.02
    assert pop.log_q[1] == -jnp.inf and pop.log_q[2] == -jnp.inf  # <start>, <unk> never drawn


def test_hits_removed_when_every_negative_is_the_target(problem):
    table, hidden, targets, *_ = problem
    negatives = jnp.repeat(targets[:, None], 5, axis=1)
    per = losses.uniform(
        hidden, table[targets], table[negatives], targets, negatives, 41, remove_hits=True
    )
    np.testing.assert_allclose(per, 0.0, atol=1e-6)


def test_loss_mask_counts_up_to_the_first_eop():
    targets = jnp.array([[5, 6, EOP, EOP, EOP], [5, 6, 7, 8, 9], [EOP, EOP, 4, EOP, EOP]])
    expected = [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]]
    np.testing.assert_array_equal(losses.loss_mask(targets), np.array(expected, bool))


def test_uniform_sampling_covers_exactly_the_classes():
    drawn = np.asarray(sample_classes(jax.random.key(1), (20000,), NUM_ROWS))
    assert set(drawn.tolist()) == {EOP, *range(NUM_SPECIAL, NUM_ROWS)}
