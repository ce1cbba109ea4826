"""Data parallelism with jax.sharding: one mesh axis over every device of every host.

The batch is split across devices along that axis; the model, the embedding table and
the optimizer state are replicated. Across hosts, `initialize` joins the processes with
`jax.distributed` and each process feeds its own shard of the data.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from trecs.errors import UserError


def initialize(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-host run (all three given) or stay single-process (none given)."""
    given = [coordinator_address is not None, num_processes is not None, process_id is not None]
    if any(given) and not all(given):
        raise UserError("--coordinator-address, --num-processes and --process-id go together")
    if all(given):
        jax.distributed.initialize(coordinator_address, num_processes, process_id)


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

    def global_batch(self, local: np.ndarray) -> jax.Array:
        """This process's rows of the batch -> one array sharded over all devices."""
        return jax.make_array_from_process_local_data(self.batch, local)
