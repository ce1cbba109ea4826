"""Small, fast training runs shared by the training and checkpoint tests (loaded as module
`tiny_runs` by conftest.py: the importlib import mode puts no test folder on sys.path)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from trecs.config import ModelConfig, TrainConfig

TINY = ModelConfig(num_layers=1, num_heads=2, features=16, hidden=32, context=10)


def tiny(db: Path, **overrides) -> TrainConfig:
    """20 steps of 8 over `db`, checkpoints at 10 and 20; `overrides` as TrainConfig fields."""
    settings = {
        "db": db,
        "model": TINY,
        "batch_size": 8,
        "num_steps": 20,
        "log_every": 5,
        "eval_every": 10,
        "eval_batches": 2,
        "checkpoint_every": 10,
        "data_workers": 0,
        "loss": {"name": "logq", "num_negatives": 64},
    }
    return TrainConfig.model_validate({**settings, **overrides})


def leaves(run: Path, step: int) -> list[np.ndarray]:
    """Every array of the checkpoint at `step`, in tree order."""
    return jax.tree.leaves(
        ocp.StandardCheckpointer().restore((run / f"checkpoints/{step}/state").resolve())
    )
