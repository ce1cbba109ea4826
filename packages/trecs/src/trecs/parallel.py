"""Data parallelism with jax.sharding: one mesh axis over every device of every host.

The batch is split across devices along that axis; the model and the optimizer state
are replicated, and so is the embedding table unless it is sharded by rows. Across
processes, `initialize` joins them with `jax.distributed`; each process feeds its rows of
every global batch, every process takes part in each step and checkpoint, and only the
primary one (process 0) writes the run's files and prints.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from trecs.errors import UserError
from trecs.train_step import TrainState


def padded_rows(num_rows: int, shard_table: bool) -> int:
    """Rows rounded up to a multiple of the device count when the table is sharded."""
    devices = jax.device_count()
    return -(-num_rows // devices) * devices if shard_table else num_rows


def initialize(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-host run (all three given) or stay single-process (none given)."""
    given = [coordinator_address is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise UserError("--coordinator-address, --num-processes and --process-id go together")
    if all(given):
        jax.distributed.initialize(coordinator_address, num_processes, process_id)


def is_primary() -> bool:
    """Whether this process writes the run's files and prints: one writer per run."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait for every process to get here, so that the primary's writes and the others'
    reads of the shared run directory happen in order. A no-op in a single process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


class DataParallel:
    def __init__(self, batch_size: int) -> None:
        devices = jax.devices()
        if batch_size % len(devices):
            raise UserError(
                f"--batch-size {batch_size} does not split evenly over {len(devices)} devices"
            )
        self.mesh = Mesh(np.array(devices), ("data",))
        self.batch = NamedSharding(self.mesh, PartitionSpec("data"))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self.local_batch_size = batch_size // jax.process_count()

    def replicate(self, tree):
        return jax.device_put(tree, self.replicated)

    def place(self, state: TrainState, shard_table: bool) -> TrainState:
        """Replicate the state; with `shard_table`, split the table's rows over devices."""
        state = self.replicate(state)
        if shard_table:
            rows = NamedSharding(self.mesh, PartitionSpec("data", None))
            state = state._replace(table=jax.device_put(state.table, rows))
        return state

    def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
        """This process's rows of the batch's arrays -> arrays sharded over all devices,
        in one call (a third less host time than one call per array)."""
        return jax.make_array_from_process_local_data(self.batch, local)
