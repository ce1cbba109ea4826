"""The playlist transformer (Flax NNX): causal pre-layer-norm blocks over track embeddings.

The track embedding table is not part of this module. It is the model's input and,
tied, its output head, but with millions of rows it is updated row-sparsely
(`trecs.optim`), so the training step gathers the rows it needs and passes them in. With
`output_bias` the table has one more column, each track's logit bias: `embedding(rows)`
is what the model reads, `logits(hidden, rows)` what it predicts.

A playlist's title enters as hashed words (`trecs.data.title_tokens`) whose mean
embedding is added to the first position, the <start> token's: later positions read it
through attention, so the title guides the first tracks and the seeds take over as they
accrue. A window that does not begin with <start> is given no title.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from flax import nnx

from trecs.config import ModelConfig


class Block(nnx.Module):
    """Pre-layer-norm: x + attention(norm(x)), then x + feed_forward(norm(x))."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        d = config.features
        self.attention_norm = nnx.LayerNorm(d, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            config.num_heads, d, decode=False, deterministic=True, rngs=rngs
        )
        self.feed_forward_norm = nnx.LayerNorm(d, rngs=rngs)
        self.expand = nnx.Linear(d, config.hidden, rngs=rngs)
        self.contract = nnx.Linear(config.hidden, d, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout)

    def __call__(
        self, x: jax.Array, mask: jax.Array, *, deterministic: bool, rngs: nnx.Rngs | None
    ) -> jax.Array:
        h = self.attention(self.attention_norm(x), mask=mask)
        x = x + self.dropout(h, deterministic=deterministic, rngs=rngs)
        h = self.contract(nnx.relu(self.expand(self.feed_forward_norm(x))))
        return x + self.dropout(h, deterministic=deterministic, rngs=rngs)


class PlaylistTransformer(nnx.Module):
    """Maps embedded tokens (batch, time, features) to hidden states of the same shape.

    Logits for token j at a position are `hidden @ table[j]`: the output head is tied to
    the embedding table.
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs) -> None:
        self.config = config
        init = nnx.initializers.normal(0.02)
        self.position = nnx.Param(init(rngs.params(), (config.context, config.features)))
        self.blocks = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
        self.final_norm = nnx.LayerNorm(config.features, rngs=rngs)
        self.dropout = nnx.Dropout(config.dropout)
        if config.title_buckets:
            # Zero, not random: a word no training title had must add nothing, not noise
            # as large as a track's embedding.
            self.title = nnx.Embed(
                config.title_buckets,
                config.features,
                embedding_init=nnx.initializers.zeros,
                rngs=rngs,
            )

    def title_vector(self, titles: jax.Array) -> jax.Array:
        """(batch, words) hashed title words (0: padding) -> (batch, features), the mean
        of their embeddings; zero for an untitled playlist."""
        present = (titles > 0)[..., None]
        total = jnp.sum(self.title(titles) * present, axis=-2)
        return total / jnp.maximum(present.sum(axis=-2), 1)

    def __call__(
        self,
        embedded: jax.Array,
        titles: jax.Array | None = None,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        """`titles`: (batch, words) hashed title words, added at position 0 (all padding
        for an untitled playlist or a window without <start>); ignored by a model without
        a title table; None reads every playlist as untitled."""
        length = embedded.shape[-2]
        x = embedded + self.position[...][:length]
        if titles is not None and self.config.title_buckets:
            x = x.at[..., 0, :].add(self.title_vector(titles))
        x = self.dropout(x, deterministic=deterministic, rngs=rngs)
        mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
        for block in self.blocks:
            x = block(x, mask, deterministic=deterministic, rngs=rngs)
        return self.final_norm(x)


def init_table(key: jax.Array, num_rows: int, features: int, bias: bool = False) -> jax.Array:
    """The track embedding table, initialised like the other embeddings; the bias column,
    if any, starts at zero."""
    table = 0.02 * jax.random.normal(key, (num_rows, features), jnp.float32)
    if bias:
        table = jnp.concatenate([table, jnp.zeros((num_rows, 1), jnp.float32)], axis=1)
    return table


def embedding(rows: jax.Array, config: ModelConfig) -> jax.Array:
    """The vectors the model reads for table rows (the bias column left out)."""
    return rows[..., : config.features]


def logits(hidden: jax.Array, rows: jax.Array, config: ModelConfig) -> jax.Array:
    """hidden (..., features) against table rows (n, width) -> (..., n) logits."""
    scores = hidden @ embedding(rows, config).T
    if config.output_bias:
        scores = scores + rows[:, config.features]
    return scores


def with_bias_input(hidden: jax.Array, config: ModelConfig) -> jax.Array:
    """hidden with a constant 1 appended when the table has a bias column, so that any
    dot product with a full table row is the logit, bias included."""
    if not config.output_bias:
        return hidden
    return jnp.concatenate([hidden, jnp.ones((*hidden.shape[:-1], 1), hidden.dtype)], axis=-1)


def _orthonormal(block: np.ndarray) -> np.ndarray:
    """An orthonormal basis of a tall block's column space by Cholesky-QR: two matrix
    products and a small eigendecomposition, several times faster than LAPACK's QR on
    (2.26M x 138) blocks; directions below 1e-6 of the largest are dropped (zeroed)."""
    eigenvalues, vectors = np.linalg.eigh((block.T @ block).astype(np.float64))
    keep = eigenvalues > 1e-6 * max(eigenvalues.max(), 1e-30)
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, eigenvalues, 1.0)), 0.0)
    return block @ (vectors * scale).astype(np.float32)


def svd_vectors(
    matrix: sp.csr_matrix, rank: int, seed: int, power_iterations: int = 4
) -> np.ndarray:
    """(columns, rank) track vectors V S of a truncated SVD of the playlist x track
    matrix, rows and columns scaled by 1 / sqrt(count): their dot products approximate
    the cosine co-occurrence that the neighbourhood baselines rank by.

    Randomized (Halko, Martinsson & Tropp 2011): a few sparse products with
    (columns, rank + 10) dense blocks, so it scales to the MPD's 1M x 2.26M.
    """
    scaled = matrix.tocsr().astype(np.float32, copy=True)
    with np.errstate(divide="ignore"):
        rows = 1.0 / np.sqrt(np.asarray(scaled.sum(axis=1)).ravel())
        cols = 1.0 / np.sqrt(np.asarray(scaled.sum(axis=0)).ravel())
    # In place: one copy of the MPD's 66M entries, and one of its transpose.
    scaled.data *= np.repeat(rows, np.diff(scaled.indptr)).astype(np.float32)
    scaled.data *= cols[scaled.indices].astype(np.float32)
    transposed = scaled.T.tocsr()
    width = min(rank + 10, *matrix.shape)
    rng = np.random.default_rng(seed)
    y = scaled @ rng.standard_normal((matrix.shape[1], width), dtype=np.float32)
    for _ in range(power_iterations):  # sharpen the spectrum, re-orthonormalising
        y = scaled @ _orthonormal(transposed @ _orthonormal(y))
    b = transposed @ _orthonormal(y)  # (columns, width): scaled.T projected on its range
    eigenvalues, u = np.linalg.eigh(b.T.astype(np.float64) @ b)
    top = np.argsort(eigenvalues)[::-1][:rank]
    vectors = np.zeros((matrix.shape[1], rank), np.float32)
    vectors[:, : len(top)] = b @ u[:, top].astype(np.float32)  # V S, since b = V S U'
    return vectors
