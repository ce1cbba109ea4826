"""One optimisation step: sample negatives, gather the table rows the step uses, and
update only those rows (the rest of the multi-gigabyte table is never read or written).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from trecs import loss as losses
from trecs.config import EOP, NUM_SPECIAL, LossConfig, ModelConfig, OptimizerConfig
from trecs.model import PlaylistTransformer, init_table
from trecs.optim import TableState, dense_optimizer, init_table_state, schedule, update_rows


class TrainState(NamedTuple):
    params: nnx.State
    opt_state: optax.OptState
    table: TableState
    step: jax.Array  # number of updates applied (skipped non-finite steps excluded)


class Popularity(NamedTuple):
    """The logq sampling distribution over table rows: cumulative weights and log q."""

    cdf: jax.Array
    log_q: jax.Array


def popularity(counts: np.ndarray, alpha: float) -> Popularity:
    """Sampling distribution proportional to counts ** alpha (rows with no count: never)."""
    weights = np.where(counts > 0, counts.astype(np.float64) ** alpha, 0.0)
    q = weights / weights.sum()
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    return Popularity(jnp.asarray(np.cumsum(q), jnp.float32), jnp.asarray(log_q, jnp.float32))


def init_state(
    key: jax.Array,
    model_config: ModelConfig,
    optimizer: optax.GradientTransformation,
    num_rows: int,
) -> tuple[nnx.GraphDef, TrainState]:
    model_key, table_key = jax.random.split(key)
    model = PlaylistTransformer(model_config, rngs=nnx.Rngs(params=model_key))
    graphdef, params = nnx.split(model, nnx.Param)
    table = init_table_state(init_table(table_key, num_rows, model_config.features))
    return graphdef, TrainState(params, optimizer.init(params), table, jnp.zeros((), jnp.int32))


def sample_classes(key: jax.Array, shape: tuple[int, ...], num_rows: int) -> jax.Array:
    """Uniform over the classes a position can have: <eop> and every track row."""
    r = jax.random.randint(key, shape, 0, num_rows - NUM_SPECIAL + 1)
    return jnp.where(r == 0, EOP, r + NUM_SPECIAL - 1)


def make_train_step(
    graphdef: nnx.GraphDef,
    loss_config: LossConfig,
    optimizer_config: OptimizerConfig,
    num_rows: int,
    num_steps: int,
) -> Callable[..., tuple[TrainState, dict]]:
    """A jitted `step(state, inputs, targets, key, popularity) -> (state, metrics)`.

    The state is donated: the table and its moments are updated in place.
    """
    lr_schedule = schedule(optimizer_config, num_steps)
    optimizer = dense_optimizer(optimizer_config, lr_schedule)
    num_negatives = loss_config.negatives()
    num_classes = num_rows - NUM_SPECIAL + 1

    def negatives_for(key: jax.Array, n: int, pop: Popularity | None) -> jax.Array:
        if loss_config.name == "full":
            return jnp.concatenate([jnp.array([EOP]), jnp.arange(NUM_SPECIAL, num_rows)])
        if loss_config.name == "logq":
            u = jax.random.uniform(key, (num_negatives,)) * pop.cdf[-1]
            return jnp.minimum(jnp.searchsorted(pop.cdf, u), num_rows - 1)
        return sample_classes(key, (n, num_negatives), num_rows)

    def step(state: TrainState, inputs, targets, key, pop: Popularity | None = None):
        batch, length = inputs.shape
        n = batch * length
        negative_key, dropout_key = jax.random.split(key)
        flat_targets = targets.reshape(n)
        negatives = negatives_for(negative_key, n, pop)
        ids = jnp.concatenate([inputs.reshape(n), flat_targets, negatives.reshape(-1)])
        unique, inverse = jnp.unique(ids, size=ids.size, fill_value=num_rows, return_inverse=True)
        inverse = inverse.reshape(-1)
        local_inputs = inverse[:n].reshape(batch, length)
        local_targets = inverse[n : 2 * n]
        local_negatives = inverse[2 * n :].reshape(negatives.shape)
        rows = state.table.table.at[unique].get(mode="fill", fill_value=0.0)
        mask = losses.loss_mask(targets).reshape(n)

        def loss_fn(params, rows):
            model = nnx.merge(graphdef, params)
            hidden = model(
                rows[local_inputs], deterministic=False, rngs=nnx.Rngs(dropout=dropout_key)
            ).reshape(n, -1)
            target_vectors = rows[local_targets]
            if loss_config.name == "full":
                per = losses.full(hidden, rows, local_targets, local_negatives)
            elif loss_config.name == "logq":
                per = losses.logq(
                    hidden,
                    target_vectors,
                    rows[local_negatives],
                    flat_targets,
                    negatives,
                    pop.log_q[negatives],
                )
            else:
                per = losses.uniform(
                    hidden,
                    target_vectors,
                    rows[local_negatives],
                    flat_targets,
                    negatives,
                    num_classes,
                    remove_hits=loss_config.name == "label-in-denominator",
                )
            return jnp.sum(per * mask) / jnp.maximum(mask.sum(), 1)

        loss, (param_grads, row_grads) = jax.value_and_grad(loss_fn, argnums=(0, 1))(
            state.params, rows
        )
        grad_norm = optax.tree.norm((param_grads, row_grads))
        if optimizer_config.clip_norm is not None:
            clip = optax.clip_by_global_norm(optimizer_config.clip_norm)
            (param_grads, row_grads), _ = clip.update((param_grads, row_grads), clip.init(None))
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        lr = lr_schedule(state.step)
        updates, opt_state = optimizer.update(param_grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        keep = lambda new, old: jnp.where(finite, new, old)  # noqa: E731
        params = jax.tree.map(keep, params, state.params)
        opt_state = jax.tree.map(keep, opt_state, state.opt_state)
        # A non-finite step updates no row: every id becomes padding and is dropped.
        row_ids = jnp.where(finite, unique, num_rows)
        table = update_rows(state.table, row_ids, row_grads, state.step + 1, lr, optimizer_config)
        new_state = TrainState(params, opt_state, table, state.step + finite.astype(jnp.int32))
        return new_state, {"loss": loss, "lr": lr, "grad_norm": grad_norm, "finite": finite}

    return jax.jit(step, donate_argnums=0)
