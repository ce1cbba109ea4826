"""Benchmark `trecs evaluate`: 10,000 test playlists x 500 recommendations.

Synthesises 100,000 playlists (so the test split holds 10,000), builds the database, and
times the evaluation of a model with the MPD's 2,262,295 embedding rows (untrained: speed
does not depend on the weights) over 10,000 test playlists (the challenge's ten categories), plus the baselines.

    uv run python benchmarks/evaluate.py [--playlists 100000] [--cases 10000]

Target (issue 5): under 3 minutes for the model on this 2-core machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

NUM_ROWS = 2_262_295


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--playlists", type=int, default=100_000)
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()

    import jax
    import numpy as np
    from flax import nnx

    from trecs import evaluate as ev
    from trecs.build_db import build_database
    from trecs.challenge import make_cases
    from trecs.config import ModelConfig
    from trecs.model import PlaylistTransformer, init_table
    from trecs.recommend import Recommender
    from trecs.recommenders import BASELINES, TokenRecommender, load
    from trecs.synth import synth_mpd
    from trecs.vocab import build_vocabulary

    with tempfile.TemporaryDirectory() as tmp:
        print(f"synthesising {args.playlists:,} playlists ...", flush=True)
        synth_mpd(Path(tmp) / "mpd", playlists=args.playlists, tracks=200_000, seed=0)
        db = Path(tmp) / "mpd.db"
        build_database(db, [Path(tmp) / "mpd"])
        start = time.perf_counter()
        cases = make_cases(db, "test", args.cases // 10)
        case_s = time.perf_counter() - start
        print(f"{len(cases):,} test cases in {case_s:.1f} s", flush=True)

        vocab = build_vocabulary(db)
        model = PlaylistTransformer(ModelConfig(num_tracks=NUM_ROWS), rngs=nnx.Rngs(0))
        table = init_table(jax.random.key(0), NUM_ROWS, 128)
        scorer = Recommender(model, table)  # every row is a candidate, as on the MPD
        # Rows beyond the synthetic vocabulary stand for tracks no database holds.
        first = int(vocab.track_ids.max()) + 1
        padding = np.arange(first, first + NUM_ROWS - len(vocab))
        track_ids = np.concatenate([vocab.track_ids, padding])
        recommender = TokenRecommender(
            "model", db, track_ids, lambda seeds, titles, n: scorer.recommend(seeds, n)
        )
        artist_of = ev.artists(db)
        rows = []
        for name in ("model", *BASELINES):
            start = time.perf_counter()
            ev.evaluate(recommender if name == "model" else load(name, db), cases, artist_of)
            seconds = time.perf_counter() - start
            rows.append((name, seconds))
            print(f"{name}: {seconds:.0f} s", flush=True)
    print(f"\n{len(cases):,} playlists x 500 recommendations ({NUM_ROWS:,} rows for the model)")
    for name, seconds in rows:
        print(f"  {name:<14}{seconds:>7.0f} s  {seconds / len(cases) * 1000:6.1f} ms/playlist")
    model_s = rows[0][1]
    print(f"target < 180 s for the model: {'met' if model_s < 180 else 'NOT met'}")


if __name__ == "__main__":
    main()
