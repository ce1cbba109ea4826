"""Benchmark playlist continuation at the MPD's vocabulary size.

A 50-track continuation of a 5-track seed with the default model and an embedding table
of 2,262,295 rows, after loading and compiling (median of 5), and what one step costs:
the cached transformer step and the scoring of every track (matrix product + top k).

    uv run python benchmarks/generate.py

Target (issue 5): under 0.5 s on CPU.
"""

from __future__ import annotations

import statistics
import time

NUM_ROWS = 2_262_295


def main() -> None:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from trecs.config import ModelConfig
    from trecs.generate import Generator, Settings, empty_cache
    from trecs.model import PlaylistTransformer, init_table

    config = ModelConfig(num_tracks=NUM_ROWS)
    model = PlaylistTransformer(config, rngs=nnx.Rngs(0))
    generator = Generator(model, init_table(jax.random.key(1), NUM_ROWS, config.features))
    seeds = list(range(100, 105))
    generator.continue_playlist(seeds, Settings(length=60))  # compile, window restart included
    times = []
    for seed in range(5):
        start = time.perf_counter()
        generator.continue_playlist(seeds, Settings(length=50, seed=seed))
        times.append(time.perf_counter() - start)
    hidden = jnp.ones(config.features)
    banned = jnp.zeros(NUM_ROWS, bool).at[jnp.array([1, 2])].set(True)
    start = time.perf_counter()
    for _ in range(20):
        values, _ = generator.best(hidden, banned, 20)
        values.block_until_ready()
    score_ms = (time.perf_counter() - start) / 20 * 1000
    cache, title = empty_cache(model), jnp.zeros(config.features)
    start = time.perf_counter()
    for _ in range(20):
        cache, h = generator.step(cache, 5, 3, title)
        h.block_until_ready()
    step_ms = (time.perf_counter() - start) / 20 * 1000
    median = statistics.median(times)
    print(
        f"50-track continuation, {NUM_ROWS:,} rows: median {median:.2f} s (runs {', '.join(f'{t:.2f}' for t in times)})"
    )
    print(
        f"per track: scoring every track {score_ms:.1f} ms, cached transformer step {step_ms:.2f} ms"
    )
    table_gb = generator.table.nbytes / 1e9
    print(
        f"scoring reads the {table_gb:.2f} GB table for every track ({table_gb / score_ms * 1000:.0f} GB/s"
        f" here); 50 tracks in 0.5 s would need {table_gb * 50 / 0.5:.0f} GB/s"
    )
    print(f"target < 0.5 s: {'met' if median < 0.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
