"""Training in two processes on one machine, as on two hosts: `trecs train` started twice
with jax.distributed's options (one CPU device each, gloo collectives between them) on
one run directory, against the same run in one process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from trecs.checkpoints import load_run
from trecs.data import TitledSource, Windows, loader
from trecs.vocab import build_vocabulary

STEPS = 6
CONFIG = f"""
batch_size = 8
num_steps = {STEPS}
log_every = 1
eval_every = 3
eval_batches = 2
checkpoint_every = 3
data_workers = 0
[model]
num_layers = 1
num_heads = 2
features = 16
hidden = 32
context = 10
title_buckets = 64
[loss]
name = "logq"
num_negatives = 64
"""
# A hang (a process waiting forever at a collective) fails the test instead of blocking.
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The processes' environment: CPU devices, compiled as cheaply as possible."""
    return {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        # The CPU compiler's optimisations cost more time than they save on tiny steps.
        "XLA_FLAGS": "--xla_backend_optimization_level=0",
        # Later runs reuse what earlier ones compiled (jax caches process 0's programs).
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("jax-cache")),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(
    run: Path, db: Path, env: dict[str, str], processes: int, *options: str
) -> list[subprocess.Popen]:
    """`trecs train RUN` in `processes` processes, as the README launches it on hosts;
    each one's output goes to RUN.out{i} and RUN.err{i}."""
    trecs = Path(sys.executable).with_name("trecs")
    config = run.with_name("tiny.toml")
    config.write_text(CONFIG)
    command = [trecs, "train", run, "--db", db, "--config", config, "--json", *options]
    if processes > 1:
        address = f"127.0.0.1:{_free_port()}"
        command += ["--coordinator-address", address, "--num-processes", str(processes)]
    started = []
    for i in range(processes):
        ids = ["--process-id", str(i)] if processes > 1 else []
        with open(f"{run}.out{i}", "w") as out, open(f"{run}.err{i}", "w") as err:
            started.append(
                subprocess.Popen([*map(str, command), *ids], stdout=out, stderr=err, env=env)
            )
    return started


def _finish(started: list[subprocess.Popen]) -> None:
    """Wait for every process; kill them all if one hangs, fail if one failed."""
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for process in started:
            process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        for process in started:
            process.kill()
        pytest.fail(f"trecs train did not finish in {TIMEOUT_S} s")
    for i, process in enumerate(started):
        assert process.returncode == 0, Path(f"{process.args[2]}.err{i}").read_text()


def _weights(run: Path, step: int) -> list[np.ndarray]:
    """Every array of the checkpoint at `step`, restored onto this process's one device
    (it was saved sharded over two)."""
    path = (run / f"checkpoints/{step}/state").resolve()
    checkpointer = ocp.StandardCheckpointer()
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
        checkpointer.metadata(path).item_metadata,
    )
    return jax.tree.leaves(checkpointer.restore(path, target))


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(db, env, tmp_path_factory) -> dict[str, Path]:
    """The same run in two processes and in one, side by side (the data of a step does not
    depend on the number of processes, so the global batches are the same)."""
    root = tmp_path_factory.mktemp("runs")
    two, one = root / "two", root / "one"
    started = _start(two, db, env, 2) + _start(one, db, env, 1)
    _finish(started)
    return {"two": two, "one": one}


def test_two_processes_give_the_loss_curve_of_one(runs):
    """Not bit-identical: two devices each reduce their half of the batch (loss, gradients)
    and an all-reduce adds the halves, a different order of float additions than one
    device's; the curves agree to float32 rounding (about 1e-7 relative per step)."""
    two, one = _records(runs["two"]), _records(runs["one"])
    assert [r["step"] for r in two] == [r["step"] for r in one] == list(range(1, STEPS + 1))
    for name in ("loss", "valid_loss", "lr"):
        got = np.array([r[name] for r in two if r[name] is not None])
        expected = np.array([r[name] for r in one if r[name] is not None])
        np.testing.assert_allclose(got, expected, rtol=1e-5, err_msg=name)


def test_one_process_writes_the_run_and_every_process_saves_its_data_position(runs):
    run = runs["two"]
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoints",
        "config.json",
        "metrics.jsonl",
        "tensorboard",
        "vocab.npz",
    ]
    # One complete directory per saved step: no duplicate or partial one from process 1.
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["3", "6"]
    for step in ("3", "6"):
        saved = run / "checkpoints" / step
        assert (saved / "_CHECKPOINT_METADATA").is_file()
        assert sorted(p.name for p in (saved / "data").glob("process_*")) == [
            "process_0-of-2.json",
            "process_1-of-2.json",
        ]
    assert load_run(run).step == STEPS  # a single process reads it back
    assert len(list((run / "tensorboard").iterdir())) == 1
    # Process 0 reports, its stdout nothing but JSON records (gloo's connection lines go
    # to stderr); process 1 prints nothing.
    records = [json.loads(line) for line in Path(f"{run}.out0").read_text().splitlines()]
    assert records[-1]["step"] == STEPS
    assert Path(f"{run}.out1").read_text() == ""
    assert "Traceback" not in Path(f"{run}.err1").read_text()


def test_two_processes_resume_exactly(runs, db, env, tmp_path):
    """A two-process run stopped after step 3's checkpoint (what a run killed before
    step 6's checkpoint leaves), resumed by two processes: the weights at step 6 are
    bit-identical to the uninterrupted two-process run's, and so is the loss curve."""
    stopped = tmp_path / "resumed"
    shutil.copytree(runs["two"], stopped, ignore=shutil.ignore_patterns("6"))
    assert sorted(p.name for p in (stopped / "checkpoints").iterdir()) == ["3"]
    _finish(_start(stopped, db, env, 2, "--resume"))
    for a, b in zip(_weights(runs["two"], STEPS), _weights(stopped, STEPS), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_records(runs["two"]), _records(stopped), strict=True):
        assert (a["step"], a["loss"], a["valid_loss"]) == (b["step"], b["loss"], b["valid_loss"])


def test_processes_read_disjoint_shares_of_the_global_batch(db):
    """What `train` does in process i of n (`loader(..., shard_index=i, shard_count=n)`):
    the two processes' rows of a step make up the batch one process reads, and over an
    epoch they read disjoint halves of the playlists, each playlist once."""
    vocab = build_vocabulary(db)
    source = TitledSource(db, "train")
    training = Windows(vocab.token_of(), 10, 0.01, 0.5, 0.8, title_buckets=64, title_dropout=0.5)
    one = iter(loader(source, training, 8, seed=3))
    halves = [
        iter(loader(source, training, 4, seed=3, shard_index=i, shard_count=2)) for i in (0, 1)
    ]
    for _ in range(5):
        batch, parts = next(one), [next(half) for half in halves]
        for name in ("inputs", "targets", "titles"):
            np.testing.assert_array_equal(batch[name], np.concatenate([p[name] for p in parts]))

    # Whole playlists in the window (no randomness) tell which playlist each row is.
    whole = Windows(vocab.token_of(), 300, 0.0)
    rng = np.random.default_rng(0)
    playlist_of = {
        tuple(whole.random_map(source[i], rng)["inputs"]): int(source.playlist_ids[i])
        for i in range(len(source))
    }
    assert len(playlist_of) == len(source)
    steps = len(source) // 8  # full global batches in the first epoch
    read = []
    for i in (0, 1):
        batches = iter(loader(source, whole, 4, seed=3, shard_index=i, shard_count=2))
        read.append(
            [playlist_of[tuple(row)] for _ in range(steps) for row in next(batches)["inputs"]]
        )
    assert len(set(read[0])) == len(read[0]) == len(set(read[1])) == len(read[1]) == 4 * steps
    assert not set(read[0]) & set(read[1])
    assert len(source) - len(set(read[0]) | set(read[1])) < 8
