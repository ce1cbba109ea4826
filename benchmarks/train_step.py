"""Benchmark the trecs training step at the MPD's vocabulary size.

The published configuration (6 layers, 8 heads, 128 features, context 50) with an
embedding table of 2,262,295 rows (the MPD's tracks plus 3 special tokens), on
synthetic batches whose tracks follow a Zipf law like playlist tracks do. Each
configuration runs in a fresh process so that its peak memory is its own.

    uv run python benchmarks/train_step.py [--steps 30]

Targets (issue 4): <= 0.13 s/step at batch 16 (15x the original's 1.9-2.7 s), >= 120
playlists/s at some batch size, under 8 GB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ORIGINAL_SECONDS_PER_STEP = 2.3  # middle of the 1.9-2.7 s measured for the original
NUM_ROWS = 2_262_295

CHILD = """
import json, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from trecs.config import EOP, START, NUM_SPECIAL, LossConfig, ModelConfig, OptimizerConfig
from trecs.optim import dense_optimizer, schedule
from trecs.train_step import init_state, make_train_step, popularity

loss, batch, steps, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model, optimizer = ModelConfig(num_tracks=rows), OptimizerConfig()
graphdef, state = init_state(jax.random.key(0), model, dense_optimizer(optimizer, schedule(optimizer, steps)), rows)
step = make_train_step(graphdef, LossConfig(name=loss), optimizer, rows, steps)
rng = np.random.default_rng(0)
counts = np.zeros(rows)
counts[NUM_SPECIAL:] = 1.0 / np.arange(1, rows - NUM_SPECIAL + 1)
pop = popularity(counts, 0.75)
p = counts / counts.sum()

def make_batch():
    tracks = rng.choice(rows, size=(batch, model.context), p=p)
    lengths = rng.integers(5, model.context + 1, batch)
    tracks[np.arange(model.context)[None, :] >= lengths[:, None]] = EOP
    tokens = np.concatenate([np.full((batch, 1), START), tracks], axis=1).astype(np.int32)
    return jnp.asarray(tokens[:, :-1]), jnp.asarray(tokens[:, 1:])

batches = [make_batch() for _ in range(8)]
start = time.perf_counter()
state, metrics = step(state, *batches[0], jax.random.key(0), pop)
metrics["loss"].block_until_ready()
compile_s = time.perf_counter() - start
times = []
for i in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, *batches[i % len(batches)], jax.random.key(i + 1), pop)
    metrics["loss"].block_until_ready()
    times.append(time.perf_counter() - start)
print(json.dumps({"times": times, "compile_s": compile_s, "loss": float(metrics["loss"]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def run(loss: str, batch: int, steps: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, loss, str(batch), str(steps), str(NUM_ROWS)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    import statistics

    print(f"train step, {NUM_ROWS:,} embedding rows, default model, median of {args.steps} steps")
    print(
        f"{'loss':<22}{'batch':>6}{'s/step':>9}{'steps/s':>9}{'playlists/s':>13}{'vs original':>13}{'peak GB':>9}"
    )
    best = 0.0
    at_16 = None
    for loss, batch in (("logq", 16), ("logq", 128), ("uniform", 16), ("uniform", 128)):
        result = run(loss, batch, args.steps)
        seconds = statistics.median(result["times"])
        rate = batch / seconds
        best = max(best, rate)
        if loss == "logq" and batch == 16:
            at_16 = seconds
        print(
            f"{loss:<22}{batch:>6}{seconds:>9.3f}{1 / seconds:>9.1f}{rate:>13.0f}"
            f"{ORIGINAL_SECONDS_PER_STEP / seconds * (batch / 16):>12.0f}x{result['peak_gb']:>9.2f}",
            flush=True,
        )
    print("(vs original: playlists/s relative to the original's 16 playlists per 2.3 s)")
    print(f"target <= 0.13 s/step at batch 16: {'met' if at_16 <= 0.13 else 'NOT met'}")
    print(f"target >= 120 playlists/s: {'met' if best >= 120 else 'NOT met'}")
    print(f"one MPD epoch (800,000 train playlists) at {best:.0f}/s: {800_000 / best / 3600:.1f} h")


if __name__ == "__main__":
    main()
