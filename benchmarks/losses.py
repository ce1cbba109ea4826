"""Which sampled softmax trains best? Same model, data, steps and seed for every loss.

Trains the default model on synthetic playlists (10,000 playlists, 50,000 tracks, like
`make demo`) with each `--loss`, then scores every run with the same yardsticks on
held-out validation playlists: the exact cross-entropy over the whole vocabulary and
how often the next track is in the top 10 (hit@10).

    uv run python benchmarks/losses.py [--steps 600] [--db data/demo/mpd.db]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

LOSSES = ("uniform", "label-in-denominator", "logq", "full")


def score(run: Path, config, db: Path) -> tuple[float, float]:
    """Exact validation cross-entropy and hit@10 of the run's last checkpoint."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from trecs.checkpoints import load_run
    from trecs.config import EOP, NUM_SPECIAL
    from trecs.data import TitledSource, Windows, loader
    from trecs.loss import loss_mask

    trained = load_run(run)
    model, table, vocab = trained.model, trained.table, trained.vocab
    bias = jnp.zeros(table.shape[0]) if trained.bias is None else trained.bias
    classes = jnp.concatenate([jnp.array([EOP]), jnp.arange(NUM_SPECIAL, table.shape[0])])

    @jax.jit
    def evaluate(inputs, targets):
        hidden = model(table[inputs], deterministic=True)
        logits = hidden @ table[classes].T + bias[classes]
        index = jnp.searchsorted(classes, targets)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(logits), index[..., None], -1)[..., 0]
        top = jax.lax.top_k(logits, 10)[1]
        hit = jnp.any(top == index[..., None], axis=-1)
        mask = loss_mask(targets)
        return jnp.sum(nll * mask), jnp.sum(hit * mask), jnp.sum(mask)

    source = TitledSource(db, "valid")  # titles unused: the model reads untitled lists
    batches = loader(
        source, Windows(vocab.token_of(), config.model.context, 0.0), 16, 0, num_epochs=1
    )
    totals = np.zeros(3)
    for batch in batches:
        totals += np.array([float(x) for x in evaluate(batch["inputs"], batch["targets"])])
    return totals[0] / totals[2], totals[1] / totals[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--db", type=Path, help="an existing database (default: synthesise one)")
    args = parser.parse_args()

    from trecs.build_db import build_database
    from trecs.config import TrainConfig
    from trecs.synth import synth_mpd
    from trecs.train import train

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            db = Path(tmp) / "mpd.db"
            synth_mpd(Path(tmp) / "mpd", playlists=10_000, tracks=50_000, seed=0)
            build_database(db, [Path(tmp) / "mpd"])
        rows = []
        for name in LOSSES:
            config = TrainConfig.model_validate(
                {
                    "db": db,
                    "num_steps": args.steps,
                    "log_every": args.steps,
                    "eval_every": args.steps,
                    "checkpoint_every": args.steps,
                    "data_workers": 0,
                    "loss": {"name": name},
                }
            )
            start = time.perf_counter()
            train(Path(tmp) / name, config)
            seconds = time.perf_counter() - start
            nll, hit = score(Path(tmp) / name, config, db)
            rows.append((name, seconds, nll, hit))
            print(
                f"{name}: {seconds:.0f} s, exact valid cross-entropy {nll:.3f}, hit@10 {hit:.3f}",
                flush=True,
            )
    print(
        f"\n{args.steps} steps of batch 16 each, default model, synthetic data (lower entropy is better)"
    )
    print(f"{'loss':<22}{'train s':>9}{'exact CE':>10}{'hit@10':>8}")
    for name, seconds, nll, hit in rows:
        print(f"{name:<22}{seconds:>9.0f}{nll:>10.3f}{hit:>8.3f}")
    best = min((r for r in rows if r[0] != "full"), key=lambda r: r[2])
    print(f"best sampled estimator by exact cross-entropy: {best[0]}")


if __name__ == "__main__":
    main()
