"""This training process's place among torchrun's processes (WORLD_SIZE > 1) and its
device: DistributedDataParallel's process group (nccl on CUDA, gloo on CPU), joined for a
run and left afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import distributed as dist

from pressedplay.devices import pick_device
from pressedplay.errors import UserError


@dataclass(frozen=True)
class Cluster:
    """This process's place among the training processes, and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over all processes (the values themselves when alone)."""
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


@contextmanager
def join_cluster(device_name: str) -> Iterator[Cluster]:
    """Join the torchrun process group when there is one (and leave it afterwards)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    joined = world > 1 and not dist.is_initialized()
    if joined:
        if device.type == "mps":
            raise UserError("DDP runs on CUDA or the CPU, not on MPS")
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        yield Cluster(rank, world, device)
    finally:
        if joined:
            dist.destroy_process_group()
