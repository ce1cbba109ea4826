"""Orbax checkpoints of a run: the training state plus the Grain iterator's position.

Orbax writes each step to a temporary directory and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grain
import jax
import orbax.checkpoint as ocp
from flax import nnx

from trecs.config import TrainConfig, load_saved
from trecs.errors import UserError
from trecs.model import PlaylistTransformer
from trecs.optim import dense_optimizer, schedule
from trecs.train_step import TrainState, init_state
from trecs.vocab import Vocabulary


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
    # Synchronous: the training step donates (overwrites) the state's buffers, so a
    # background save could read arrays that the next step is already updating.
    return ocp.CheckpointManager(
        (run_dir / "checkpoints").resolve(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False
        ),
    )


def save(checkpoints: ocp.CheckpointManager, step: int, state: TrainState, iterator) -> None:
    checkpoints.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=grain.checkpoint.CheckpointSave(iterator)
        ),
        force=True,
    )


def restore(
    checkpoints: ocp.CheckpointManager, step: int, like: TrainState, iterator
) -> TrainState:
    """The state saved at `step` (shaped like `like`); moves `iterator` to its position."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    restored = checkpoints.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract),
            data=grain.checkpoint.CheckpointRestore(iterator),
        ),
    )
    return restored.state


@dataclass
class TrainedModel:
    config: TrainConfig
    vocab: Vocabulary
    model: PlaylistTransformer
    table: jax.Array  # (rows, features): input embeddings and, tied, the output head
    step: int
    bias: jax.Array | None = None  # (rows,) per-track logit bias, if the model has one


def load_run(run_dir: Path) -> TrainedModel:
    """The model and embedding table of a run's latest checkpoint, for inference. Runs
    saved before titles, output biases and the mean readout load as they were trained:
    without them."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir}: not a trecs run (no config.json)")
    config = load_saved(config_path)
    vocab = Vocabulary.load(run_dir / "vocab.npz")
    checkpoints = ocp.CheckpointManager((run_dir / "checkpoints").resolve())
    step = checkpoints.latest_step()
    if step is None:
        raise UserError(f"{run_dir}: no complete checkpoint yet")
    optimizer = dense_optimizer(config.optimizer, schedule(config.optimizer, config.num_steps))
    graphdef, like = _abstract(config, optimizer)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    state = checkpoints.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
    ).state
    checkpoints.close()
    table = state.table.table
    features = config.model.features
    bias = table[:, features] if config.model.output_bias else None
    return TrainedModel(
        config, vocab, nnx.merge(graphdef, state.params), table[:, :features], step, bias
    )


def _abstract(config: TrainConfig, optimizer) -> tuple[nnx.GraphDef, TrainState]:
    """The training state's structure and shapes, without allocating the table."""
    graphdef = nnx.split(
        nnx.eval_shape(lambda: PlaylistTransformer(config.model, rngs=nnx.Rngs(0))), nnx.Param
    )[0]
    like = jax.eval_shape(
        lambda: init_state(jax.random.key(0), config.model, optimizer, config.model.num_tracks)[1]
    )
    return graphdef, like
