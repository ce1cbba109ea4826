"""The playlist transformer (Flax NNX): causal pre-layer-norm blocks over track embeddings.

The track embedding table is not part of this module. It is the model's input and,
tied, its output head, but with millions of rows it is updated row-sparsely
(`trecs.optim`), so the training step gathers the rows it needs and passes them in.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
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

    def __call__(
        self,
        embedded: jax.Array,
        *,
        deterministic: bool = True,
        rngs: nnx.Rngs | None = None,
    ) -> jax.Array:
        length = embedded.shape[-2]
        x = embedded + self.position[...][:length]
        x = self.dropout(x, deterministic=deterministic, rngs=rngs)
        mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
        for block in self.blocks:
            x = block(x, mask, deterministic=deterministic, rngs=rngs)
        return self.final_norm(x)


def init_table(key: jax.Array, num_rows: int, features: int) -> jax.Array:
    """The track embedding table, initialised like the other embeddings."""
    return 0.02 * jax.random.normal(key, (num_rows, features), jnp.float32)
