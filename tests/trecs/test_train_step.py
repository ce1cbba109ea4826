"""The training step: row-sparse updates, learning, skipped non-finite steps, causality."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from trecs.config import EOP, START, LossConfig, ModelConfig, OptimizerConfig
from trecs.model import PlaylistTransformer
from trecs.optim import dense_optimizer, schedule
from trecs.train_step import init_state, make_train_step, popularity

TINY = ModelConfig(num_layers=2, num_heads=2, features=16, hidden=32, context=8, dropout=0.0)
NUM_ROWS = 64


def setup(loss: str, optimizer: OptimizerConfig | None = None, num_negatives: int = 16):
    optimizer = optimizer or OptimizerConfig(lr=1e-2, warmup_steps=0, cosine_decay=False)
    dense = dense_optimizer(optimizer, schedule(optimizer, 100))
    graphdef, state = init_state(jax.random.key(0), TINY, dense, NUM_ROWS)
    step = make_train_step(
        graphdef, LossConfig(name=loss, num_negatives=num_negatives), optimizer, NUM_ROWS, 100
    )
    counts = np.ones(NUM_ROWS)
    counts[[START, 2]] = 0
    return graphdef, state, step, popularity(counts, 0.75)


def batch():
    """Two playlists that always continue the same way: 3,4,5,... and 40,41,..."""
    a = [START, *range(3, 11)]
    b = [START, *range(40, 45), EOP, EOP, EOP]
    tokens = jnp.array([a, b], jnp.int32)
    return tokens[:, :-1], tokens[:, 1:]


@pytest.mark.parametrize("loss", ["uniform", "label-in-denominator", "logq", "full"])
def test_learns_a_deterministic_sequence(loss):
    _, state, step, pop = setup(loss)
    inputs, targets = batch()
    first = None
    for i in range(60):
        state, metrics = step(state, inputs, targets, jax.random.key(i), pop)
        first = float(metrics["loss"]) if first is None else first
    assert float(metrics["loss"]) < 0.3 * first
    assert int(state.step) == 60


def test_only_used_rows_change():
    _, state, step, pop = setup("uniform", num_negatives=4)
    before = jax.tree.map(np.array, state.table)
    inputs, targets = batch()
    state, _ = step(state, inputs, targets, jax.random.key(3), pop)
    changed = np.flatnonzero(np.any(np.asarray(state.table.table) != before.table, axis=1))
    used = set(np.asarray(inputs).ravel()) | set(np.asarray(targets).ravel())
    assert used <= set(changed.tolist())
    untouched = sorted(set(range(NUM_ROWS)) - set(changed.tolist()))
    assert len(untouched) > 10  # 4 negatives per position cannot reach every row
    np.testing.assert_array_equal(np.asarray(state.table.mu)[untouched], 0.0)
    np.testing.assert_array_equal(np.asarray(state.table.table)[untouched], before.table[untouched])


def test_non_finite_loss_skips_the_update():
    _, state, step, pop = setup("uniform")
    poisoned = state._replace(
        table=state.table._replace(table=state.table.table.at[5].set(jnp.nan))
    )
    before = jax.tree.map(np.array, (poisoned.params, poisoned.table))
    inputs, targets = batch()
    state, metrics = step(poisoned, inputs, targets, jax.random.key(0), pop)
    assert not bool(metrics["finite"])
    assert int(state.step) == 0
    after = jax.tree.map(np.array, (state.params, state.table))
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), after, before)


def test_clipped_training_still_learns():
    clipped = OptimizerConfig(lr=1e-2, clip_norm=0.5, warmup_steps=0, cosine_decay=False)
    _, state, step, pop = setup("logq", clipped)
    inputs, targets = batch()
    losses = []
    for i in range(40):
        state, metrics = step(state, inputs, targets, jax.random.key(i), pop)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_model_is_causal():
    model = PlaylistTransformer(TINY, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (1, 8, 16))
    y = x.at[:, 5:].set(3.0)
    np.testing.assert_allclose(model(x)[:, :5], model(y)[:, :5], atol=1e-6)
    assert not np.allclose(model(x)[:, 5:], model(y)[:, 5:])


def test_warmup_and_cosine_schedule():
    lr = schedule(OptimizerConfig(lr=1e-3, warmup_steps=10, cosine_decay=True), 110)
    assert float(lr(0)) == 0.0
    assert float(lr(10)) == pytest.approx(1e-3)
    assert float(lr(60)) == pytest.approx(5e-4, rel=1e-3)
    assert float(lr(110)) == pytest.approx(0.0, abs=1e-9)
    warm = schedule(OptimizerConfig(lr=1e-3, warmup_steps=4, cosine_decay=False), 100)
    assert [round(float(warm(s)), 6) for s in (0, 2, 4, 50)] == [0.0, 5e-4, 1e-3, 1e-3]
    constant = OptimizerConfig(lr=1e-3, warmup_steps=0, cosine_decay=False)
    assert float(schedule(constant, 100)(77)) == pytest.approx(1e-3)
    relative = schedule(OptimizerConfig(lr=1e-3), 2000)  # the default: 5% warm-up, cosine
    assert float(relative(50)) == pytest.approx(5e-4)
    assert float(relative(100)) == pytest.approx(1e-3)
    assert float(relative(1050)) == pytest.approx(5e-4, rel=1e-3)
