"""DistributedDataParallel on the CPU: two gloo processes under torchrun, through the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing

import pytest
import torch

from pressedplay import checkpoints
from pressedplay.loader import make_loader
from pressedplay.synth_covers import synth_covers


def test_two_processes_train_one_model_on_all_the_data(tmp_path):
    db = tmp_path / "covers.db"
    synth_covers(db, covers=40, tracks_per_cover=2, seed=4, catalog_name=None)
    run_dir = tmp_path / "run"
    env = {**os.environ, "PRESSEDPLAY_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "pressedplay.cli", "train", str(run_dir), "--db", str(db), "--epochs", "2",
        "--batch-size", "8", "--workers", "0", "--device", "cpu", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    with closing(sqlite3.connect(db)) as conn:
        (covers,) = conn.execute("SELECT COUNT(*) FROM covers WHERE split = 'train'").fetchone()
    assert [row["epoch"] for row in rows] == [1, 2]  # written once, by rank 0 only
    assert all(row["world_size"] == 2 for row in rows)
    # Every train cover once per epoch (but an odd one out, so both ranks step together).
    assert all(row["examples"] == covers - covers % 2 for row in rows)
    assert rows[-1]["step"] == 2 * -(-(covers // 2) // 4)  # 4 covers per process per step
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert summaries and all(s["world_size"] == 2 for s in summaries)
    model = checkpoints.load_model(run_dir / "best.pt")
    assert model.meta["epoch"] == summaries[0]["best_epoch"]
    assert not any(name.endswith(".tmp") for name in os.listdir(run_dir))
    # Validation was split 3 + 2 covers over the processes and summed: the same as one.
    last = checkpoints.load_model(run_dir / "last.pt").model
    loader = make_loader(db, "valid", batch_size=1, workers=0, augment=False)
    with torch.no_grad():
        errors = torch.cat([last(images).features - targets for images, targets, _ in loader])
    assert rows[-1]["val_mse"] == pytest.approx(errors.pow(2).mean().item(), rel=1e-5)
