"""Orbax checkpoints of a run: the training state plus the Grain iterator's position.

Orbax writes each step to a temporary directory and renames it when complete, so a
process killed mid-save leaves the previous checkpoint as the latest one. A complete
checkpoint can still be damaged later (a truncated or garbled file): every load tries the
newest first and falls back to older ones, telling its caller which one it used.
"""

from __future__ import annotations

import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import grain
import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from trecs.config import TrainConfig, load_saved
from trecs.errors import UserError
from trecs.model import PlaylistTransformer
from trecs.optim import dense_optimizer, schedule
from trecs.parallel import barrier, is_primary
from trecs.train_step import TrainState, init_state
from trecs.vocab import Vocabulary

T = TypeVar("T")
Notice = Callable[[str], None]


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
    # Synchronous: the training step donates (overwrites) the state's buffers, so a
    # background save could read arrays that the next step is already updating.
    return ocp.CheckpointManager(
        (run_dir / "checkpoints").resolve(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, enable_async_checkpointing=False
        ),
    )


# Arrays are stored in chunks of at most this size. Orbax's default keeps an array in
# one chunk, which tensorstore compresses and decompresses on one thread: the MPD's table
# (2,262,295 x 129 float32) alone took 5.4 s to save and 4-5.7 s to restore here, and
# about 2 s each in chunks of 32-128 MiB (whole runs: `make bench-checkpoints`). Smaller
# chunks gained nothing more on 2 cores; they leave parallelism for larger machines.
CHUNK_BYTES = 64 << 20


def save(checkpoints: ocp.CheckpointManager, step: int, state: TrainState, iterator) -> None:
    chunked = jax.tree.map(lambda _: ocp.SaveArgs(chunk_byte_size=CHUNK_BYTES), state)
    checkpoints.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state, save_args=chunked),
            data=grain.checkpoint.CheckpointSave(iterator),
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


def restore_newest(
    run_dir: Path,
    checkpoints: ocp.CheckpointManager,
    restore_step: Callable[[int], T],
    on_notice: Notice | None = None,
) -> tuple[int, T, list[int]]:
    """The newest checkpoint that `restore_step` restores: (its step, what it returned,
    the newer steps that did not). A damaged checkpoint costs the steps since the one
    before it, not the run. No checkpoint that restores is a UserError."""
    _drop_abandoned_reads()
    damaged: list[tuple[int, str]] = []
    for step in sorted(checkpoints.all_steps(), reverse=True):
        try:
            restored = restore_step(step)
        except Exception as exc:  # Orbax and TensorStore raise bare Exception on bad files
            damaged.append((step, _reason(exc)))
            continue
        if damaged and on_notice is not None:
            newer = ", ".join(f"{s} ({reason})" for s, reason in damaged)
            on_notice(f"{run_dir}: checkpoint {newer} does not restore; using step {step}")
        return step, restored, [s for s, _ in damaged]
    if not damaged:
        raise UserError(f"{run_dir}: no complete checkpoint yet")
    step, reason = damaged[0]
    raise UserError(f"{run_dir}: no checkpoint restores (step {step}: {reason})")


# Orbax's coroutine reading one shard of an array.
_ORBAX_SHARD_READ = "_read_array_index_and_device_put"


def _drop_abandoned_reads() -> None:
    """Orbax stops restoring a damaged checkpoint at its first bad shard and abandons the
    reads of the others. Each abandoned read then reports a traceback: the coroutine when
    it is collected ("Exception ignored in: <coroutine object
    _read_array_index_and_device_put>"), TensorStore's callback when it finds Orbax's event
    loop closed ("RuntimeError: Event loop is closed" from `call_soon_threadsafe`). Often
    hundreds of lines, at random times around the one-line notice. Those reports, and
    only those, are dropped; every other one reaches the hook that was in place. A read
    abandoned before it started warns instead ("RuntimeWarning: coroutine ... was never
    awaited", more often since arrays are read in chunks): that warning is ignored too."""
    warnings.filterwarnings(  # every time: test runners restore the filters they found
        "ignore",
        message=rf"coroutine '(.*\.)?{_ORBAX_SHARD_READ}' was never awaited",
        category=RuntimeWarning,
    )
    previous = sys.unraisablehook
    if getattr(previous, "drops_abandoned_reads", False):
        return

    def hook(unraisable: sys.UnraisableHookArgs) -> None:
        if not _is_abandoned_read(unraisable):
            previous(unraisable)

    hook.drops_abandoned_reads = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _is_abandoned_read(unraisable: sys.UnraisableHookArgs) -> bool:
    if getattr(unraisable.object, "__name__", None) == _ORBAX_SHARD_READ:
        return True
    error = unraisable.exc_value
    if not isinstance(error, RuntimeError) or str(error) != "Event loop is closed":
        return False
    frames = traceback.extract_tb(unraisable.exc_traceback)
    return any(frame.name == "call_soon_threadsafe" for frame in frames)


def _reason(exc: Exception) -> str:
    """An exception as a short single line (TensorStore's messages run over lines and
    end in a method's repr)."""
    text = " ".join(str(exc).split(" See full TensorStore details")[0].split())
    text = text or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def set_aside(
    run_dir: Path,
    checkpoints: ocp.CheckpointManager,
    steps: list[int],
    on_notice: Notice | None = None,
) -> None:
    """Move damaged checkpoints out of the way of the steps that will be saved again,
    into RUN_DIR/damaged-checkpoints: kept, not deleted. The primary process moves them;
    the others wait for it before they look at the checkpoints again."""
    if not steps:
        return
    if is_primary():
        aside = run_dir / "damaged-checkpoints"
        aside.mkdir(exist_ok=True)
        for step in steps:
            moved = aside / f"{step}.{time.time_ns()}"
            (run_dir / "checkpoints" / str(step)).rename(moved)
            if on_notice is not None:
                on_notice(f"{run_dir}: damaged checkpoint {step} moved to {moved}")
    barrier("trecs: damaged checkpoints set aside")
    checkpoints.reload()


@dataclass
class TrainedModel:
    config: TrainConfig
    vocab: Vocabulary
    model: PlaylistTransformer
    table: jax.Array  # (rows, features): input embeddings and, tied, the output head
    step: int  # the checkpoint it came from: the newest that restores
    bias: jax.Array | None = None  # (rows,) per-track logit bias, if the model has one


def load_run(run_dir: Path, on_notice: Notice | None = None) -> TrainedModel:
    """The model and embedding table of a run's newest checkpoint that restores, for
    inference; `on_notice` hears of damaged newer ones passed over. Runs saved before
    titles, output biases and the mean readout load as they were trained: without them."""
    config, vocab = _run_files(run_dir)
    optimizer = dense_optimizer(config.optimizer, schedule(config.optimizer, config.num_steps))
    graphdef, like = _abstract(config, optimizer)
    # On this process's first device, whatever devices and processes the run trained on.
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), like)
    # Inference needs the weights alone: the optimizer's state, the table's two AdamW
    # moments above all (each as large as the table: 2.3 GB at the MPD's size), is left
    # on disk.
    skip = partial(jax.tree.map, lambda _: ocp.PLACEHOLDER)
    abstract = abstract._replace(
        opt_state=skip(abstract.opt_state),
        table=abstract.table._replace(mu=skip(abstract.table.mu), nu=skip(abstract.table.nu)),
    )
    restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
    # The table comes to host memory, where its bias column is cut off without a device
    # copy of the whole: one copy of the table fewer at the peak.
    restore_args = restore_args._replace(
        table=restore_args.table._replace(table=ocp.RestoreArgs(restore_type=np.ndarray))
    )
    weights = ocp.args.PyTreeRestore(abstract, restore_args)
    checkpoints = ocp.CheckpointManager((run_dir / "checkpoints").resolve())
    try:
        step, state, _ = restore_newest(
            run_dir,
            checkpoints,
            lambda step: checkpoints.restore(step, args=ocp.args.Composite(state=weights)).state,
            on_notice,
        )
    finally:
        checkpoints.close()
    table = state.table.table  # in host memory
    features = config.model.features
    bias = jax.device_put(table[:, features], device) if config.model.output_bias else None
    rows = jax.device_put(table[:, :features], device)
    return TrainedModel(config, vocab, nnx.merge(graphdef, state.params), rows, step, bias)


def _run_files(run_dir: Path) -> tuple[TrainConfig, Vocabulary]:
    """A run's config.json and vocab.npz, checked against each other."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir}: not a trecs run (no config.json)")
    config = load_saved(config_path)
    vocab = Vocabulary.load(run_dir / "vocab.npz")
    rows = config.model.num_tracks
    if rows is None or rows < len(vocab):
        raise UserError(f"{run_dir}: vocab.npz has more tokens than config.json's num_tracks")
    if not (run_dir / "checkpoints").is_dir():
        raise UserError(f"{run_dir}: no complete checkpoint yet")
    return config, vocab


def _abstract(config: TrainConfig, optimizer) -> tuple[nnx.GraphDef, TrainState]:
    """The training state's structure and shapes, without allocating the table."""
    graphdef = nnx.split(
        nnx.eval_shape(lambda: PlaylistTransformer(config.model, rngs=nnx.Rngs(0))), nnx.Param
    )[0]
    like = jax.eval_shape(
        lambda: init_state(jax.random.key(0), config.model, optimizer, config.model.num_tracks)[1]
    )
    return graphdef, like
