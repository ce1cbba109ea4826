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
from trecs.model import PlaylistTransformer, embedding, init_table, with_bias_input
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
    table = init_table_state(
        init_table(table_key, num_rows, model_config.features, model_config.output_bias)
    )
    return graphdef, TrainState(params, optimizer.init(params), table, jnp.zeros((), jnp.int32))


def sample_classes(key: jax.Array, shape: tuple[int, ...], num_rows: int) -> jax.Array:
    """Uniform over the classes a position can have: <eop> and every track row."""
    r = jax.random.randint(key, shape, 0, num_rows - NUM_SPECIAL + 1)
    return jnp.where(r == 0, EOP, r + NUM_SPECIAL - 1)


class _Gathered(NamedTuple):
    """A batch re-indexed into the few table rows it uses."""

    unique: jax.Array  # row ids, padded with num_rows (out of range: gathers 0, scatters drop)
    inputs: jax.Array  # (batch, time) indices into the gathered rows
    targets: jax.Array  # (n,)
    negatives: jax.Array  # (n, K), (K,) or (classes,)
    mask: jax.Array  # (n,) positions that count


def _gather(inputs, targets, negatives, num_rows: int) -> _Gathered:
    batch, length = inputs.shape
    n = batch * length
    ids = jnp.concatenate([inputs.reshape(n), targets.reshape(n), negatives.reshape(-1)])
    unique, inverse = jnp.unique(ids, size=ids.size, fill_value=num_rows, return_inverse=True)
    inverse = inverse.reshape(-1)
    return _Gathered(
        unique,
        inverse[:n].reshape(batch, length),
        inverse[n : 2 * n],
        inverse[2 * n :].reshape(negatives.shape),
        losses.loss_mask(targets).reshape(n),
    )


class _Objective:
    """Negative sampling and the masked mean loss of one batch, shared by train and eval."""

    def __init__(self, graphdef: nnx.GraphDef, loss_config: LossConfig, num_rows: int) -> None:
        self.graphdef = graphdef
        self.config = loss_config
        self.num_rows = num_rows
        self.num_negatives = loss_config.negatives()

    def negatives(self, key: jax.Array, n: int, pop: Popularity | None) -> jax.Array:
        if self.config.name == "full":
            return jnp.concatenate([jnp.array([EOP]), jnp.arange(NUM_SPECIAL, self.num_rows)])
        if self.config.name == "logq":
            u = jax.random.uniform(key, (self.num_negatives,)) * pop.cdf[-1]
            return jnp.minimum(jnp.searchsorted(pop.cdf, u), self.num_rows - 1)
        return sample_classes(key, (n, self.num_negatives), self.num_rows)

    def loss(
        self,
        params: nnx.State,
        rows: jax.Array,
        batch: _Gathered,
        targets: jax.Array,
        negatives: jax.Array,
        pop: Popularity | None,
        dropout_key: jax.Array | None,
        titles: jax.Array | None,
    ) -> jax.Array:
        model = nnx.merge(self.graphdef, params)
        n = batch.targets.shape[0]
        embedded = embedding(rows[batch.inputs], model.config)
        if dropout_key is None:
            hidden = model(embedded, titles, deterministic=True)
        else:
            hidden = model(
                embedded, titles, deterministic=False, rngs=nnx.Rngs(dropout=dropout_key)
            )
        # Dot products with whole table rows then include each track's bias.
        hidden = with_bias_input(hidden.reshape(n, -1), model.config)
        flat_targets = targets.reshape(n)
        if self.config.name == "full":
            per = losses.full(hidden, rows, batch.targets, batch.negatives)
        elif self.config.name == "logq":
            per = losses.logq(
                hidden,
                rows[batch.targets],
                rows[batch.negatives],
                flat_targets,
                negatives,
                pop.log_q[negatives],
            )
        else:
            per = losses.uniform(
                hidden,
                rows[batch.targets],
                rows[batch.negatives],
                flat_targets,
                negatives,
                self.num_rows - NUM_SPECIAL + 1,
                remove_hits=self.config.name == "label-in-denominator",
            )
        return jnp.sum(per * batch.mask) / jnp.maximum(batch.mask.sum(), 1)


def make_train_step(
    graphdef: nnx.GraphDef,
    loss_config: LossConfig,
    optimizer_config: OptimizerConfig,
    num_rows: int,
    num_steps: int,
) -> Callable[..., tuple[TrainState, dict]]:
    """A jitted `step(state, inputs, targets, key, popularity, titles) -> (state,
    metrics)`; `titles`: the batch's hashed title words (`trecs.data.title_tokens`), or
    None for untitled playlists.

    The state is donated: the table and its moments are updated in place.
    """
    lr_schedule = schedule(optimizer_config, num_steps)
    optimizer = dense_optimizer(optimizer_config, lr_schedule)
    objective = _Objective(graphdef, loss_config, num_rows)

    def step(
        state: TrainState,
        inputs,
        targets,
        key,
        pop: Popularity | None = None,
        titles: jax.Array | None = None,
    ):
        negative_key, dropout_key = jax.random.split(key)
        negatives = objective.negatives(negative_key, inputs.size, pop)
        batch = _gather(inputs, targets, negatives, num_rows)
        rows = state.table.table.at[batch.unique].get(mode="fill", fill_value=0.0)

        def loss_fn(params, rows):
            return objective.loss(params, rows, batch, targets, negatives, pop, dropout_key, titles)

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
        row_ids = jnp.where(finite, batch.unique, num_rows)
        table = update_rows(state.table, row_ids, row_grads, state.step + 1, lr, optimizer_config)
        new_state = TrainState(params, opt_state, table, state.step + finite.astype(jnp.int32))
        return new_state, {"loss": loss, "lr": lr, "grad_norm": grad_norm, "finite": finite}

    return jax.jit(step, donate_argnums=0)


def make_eval_step(
    graphdef: nnx.GraphDef, loss_config: LossConfig, num_rows: int
) -> Callable[..., jax.Array]:
    """A jitted `loss(params, table, inputs, targets, key, popularity, titles)`: no
    dropout, no update; the same estimator as training, so pass fixed keys for
    comparable values."""
    objective = _Objective(graphdef, loss_config, num_rows)

    def evaluate(params, table, inputs, targets, key, pop: Popularity | None = None, titles=None):
        negatives = objective.negatives(key, inputs.size, pop)
        batch = _gather(inputs, targets, negatives, num_rows)
        rows = table.at[batch.unique].get(mode="fill", fill_value=0.0)
        return objective.loss(params, rows, batch, targets, negatives, pop, None, titles)

    return jax.jit(evaluate)
