"""Top-N recommendations for batches of seed playlists: no sampling, seeds excluded.

The model reads `<start>` (with the playlist's title when it has one) and the seeds, and
every track is scored against the tied embedding table (plus its bias) by a readout of
the hidden states. `last`: the state at the last seed, the model reading the most recent
`context` tokens. `mean` (the default): the mean state over every position; seed lists
longer than the context are read in consecutive windows so that all seeds count, as
co-occurrence counts them: the challenge scores a set of held-out tracks, which every
prefix of the seeds predicts. <eop>, <start>, <unk> and the seeds are never recommended.
Used by evaluation and by the two-stage ranker as its candidate generator.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trecs.config import EOP, NUM_SPECIAL, START
from trecs.data import title_tokens
from trecs.model import PlaylistTransformer


def _windows(
    seeds: Sequence[Sequence[int]], context: int, every: bool, rows: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The windows the model reads: right-padded tokens (rows, context), their lengths and
    the seed list each belongs to. `every`: consecutive windows over all of [<start>,
    *seeds]; else its last `context` tokens. Rows past the windows are padding, owned by
    len(seeds) (dropped)."""
    windows, owners = [], []
    for owner, seed in enumerate(seeds):
        tokens = [START, *seed]
        if every:
            parts = [tokens[i : i + context] for i in range(0, len(tokens), context)]
        else:
            parts = [tokens[-context:]]
        windows += parts
        owners += [owner] * len(parts)
    rows = max(rows, -(-len(windows) // rows) * rows)  # a few shapes, a few compilations
    tokens = np.full((rows, context), EOP, np.int32)
    lengths = np.ones(rows, np.int32)
    owner = np.full(rows, len(seeds), np.int32)
    for row, window in enumerate(windows):
        tokens[row, : len(window)] = window
        lengths[row] = len(window)
        owner[row] = owners[row]
    return tokens, lengths, owner


class Recommender:
    """Compiles the batch scoring once per model; `recommend` as a method."""

    def __init__(
        self,
        model: PlaylistTransformer,
        table: jax.Array,
        vocab_size: int | None = None,
        bias: jax.Array | None = None,
    ) -> None:
        """`vocab_size`: tokens that are tracks; table rows beyond it (padding) are never
        recommended. `bias`: the run's per-track logit bias, if it has one."""
        config = model.config
        self.context = config.context
        self.title_buckets = config.title_buckets
        self.mean = config.readout == "mean"
        vocab_size = vocab_size or table.shape[0]
        self.table = table
        self.bias = jnp.zeros(table.shape[0]) if bias is None else bias
        graphdef, self.params = nnx.split(model)

        def top_n(params, table, bias, tokens, lengths, owner, titles, exclude, n: int):
            model = nnx.merge(graphdef, params)
            hidden = model(table[tokens], titles, deterministic=True)  # (rows, time, features)
            lists = exclude.shape[0]
            if self.mean:
                valid = jnp.arange(tokens.shape[1])[None, :, None] < lengths[:, None, None]
                total = jax.ops.segment_sum(jnp.sum(hidden * valid, 1), owner, lists)
                count = jax.ops.segment_sum(lengths, owner, lists)
                state = total / jnp.maximum(count, 1)[:, None]
            else:
                last = hidden[jnp.arange(tokens.shape[0]), lengths - 1]
                state = jax.ops.segment_sum(last, owner, lists)  # one window per list
            scores = state @ table.T + bias
            scores = scores.at[:, :NUM_SPECIAL].set(-jnp.inf)
            scores = jnp.where(jnp.arange(scores.shape[1]) < vocab_size, scores, -jnp.inf)
            rows = jnp.arange(lists)[:, None]
            scores = scores.at[rows, exclude].set(-jnp.inf, mode="drop")
            return jax.lax.top_k(scores, n)[1]

        self._top_n = jax.jit(top_n, static_argnums=8)

    def recommend(
        self,
        seeds: Sequence[Sequence[int]],
        n: int = 500,
        batch_size: int = 64,
        titles: Sequence[str | None] | None = None,
    ) -> np.ndarray:
        """(len(seeds), n) track tokens, best first, for seed lists of tokens and, if
        given, each list's playlist title (None: untitled)."""
        if titles is not None and len(titles) != len(seeds):
            raise ValueError(f"{len(titles)} titles for {len(seeds)} seed lists")
        titles = [None] * len(seeds) if titles is None else titles
        out = np.empty((len(seeds), n), np.int64)
        num_rows = self.table.shape[0]
        for start in range(0, len(seeds), batch_size):
            chunk = list(seeds[start : start + batch_size])
            tokens, lengths, owner = _windows(chunk, self.context, self.mean, batch_size)
            # The title goes with the window that holds <start>, as in training.
            hashed = np.stack(
                [
                    title_tokens(titles[start + o] if token == START else None, self.title_buckets)
                    for o, token in zip(owner, tokens[:, 0], strict=True)
                ]
            )
            width = max(1, max(len(s) for s in chunk))
            exclude = np.full((len(chunk), width), num_rows, np.int32)  # out of range: dropped
            for row, seed in enumerate(chunk):
                exclude[row, : len(seed)] = seed
            best = self._top_n(
                self.params, self.table, self.bias, tokens, lengths, owner, hashed, exclude, n
            )
            out[start : start + len(chunk)] = np.asarray(best)
        return out
