"""Top-N recommendations for batches of seed playlists: no sampling, seeds excluded.

For each seed list the model reads `<start>` and the seeds (the most recent `context`
tokens when there are more), and every track is scored by the hidden state at the last
seed against the tied embedding table; <eop>, <start>, <unk> and the seeds are never
recommended. Used by evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trecs.config import EOP, NUM_SPECIAL, START
from trecs.model import PlaylistTransformer


def _windows(seeds: Sequence[Sequence[int]], context: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded token windows (batch, context) and the index of each last token."""
    tokens = np.full((len(seeds), context), EOP, np.int32)
    last = np.zeros(len(seeds), np.int32)
    for row, seed in enumerate(seeds):
        window = [START, *seed][-context:]
        tokens[row, : len(window)] = window
        last[row] = len(window) - 1
    return tokens, last


class Recommender:
    """Compiles the batch scoring once per model; `recommend` as a method."""

    def __init__(
        self, model: PlaylistTransformer, table: jax.Array, vocab_size: int | None = None
    ) -> None:
        """`vocab_size`: tokens that are tracks; table rows beyond it (padding) are never
        recommended."""
        self.context = model.config.context
        vocab_size = vocab_size or table.shape[0]
        self.table = table
        graphdef, self.params = nnx.split(model)

        def top_n(params, table, tokens, last, exclude, n: int):
            model = nnx.merge(graphdef, params)
            hidden = model(table[tokens], deterministic=True)
            hidden = hidden[jnp.arange(tokens.shape[0]), last]  # (batch, features)
            scores = hidden @ table.T
            scores = scores.at[:, :NUM_SPECIAL].set(-jnp.inf)
            scores = jnp.where(jnp.arange(scores.shape[1]) < vocab_size, scores, -jnp.inf)
            rows = jnp.arange(tokens.shape[0])[:, None]
            scores = scores.at[rows, exclude].set(-jnp.inf, mode="drop")
            return jax.lax.top_k(scores, n)[1]

        self._top_n = jax.jit(top_n, static_argnums=5)

    def recommend(
        self, seeds: Sequence[Sequence[int]], n: int = 500, batch_size: int = 64
    ) -> np.ndarray:
        """(len(seeds), n) track tokens, best first, for seed lists of tokens."""
        out = np.empty((len(seeds), n), np.int64)
        num_rows = self.table.shape[0]
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds[start : start + batch_size])
            tokens, last = _windows(chunk, self.context)
            width = max(1, max(len(s) for s in chunk))
            exclude = np.full((len(chunk), width), num_rows, np.int32)  # out of range: dropped
            for row, seed in enumerate(chunk):
                exclude[row, : len(seed)] = seed
            best = self._top_n(self.params, self.table, tokens, last, exclude, n)
            out[start : start + len(chunk)] = np.asarray(best)
        return out
