"""Softmax cross-entropy over millions of tracks without computing every logit.

Each estimator returns per-position losses that estimate the exact
`logsumexp(all logits) - target logit`, from the target's embedding and a few sampled
negatives' (Bengio & Senecal 2008; Jean et al. 2015; Yi et al. 2019):
- `uniform`: negatives drawn uniformly per position; the partition function is
  estimated as exp(target) + (V - 1) / K * sum(exp(negatives)), accidental hits of the
  target counted as negatives (the original trecs estimator);
- `label_in_denominator`: the same with accidental hits removed and K reduced to the
  negatives that remain (the trecs variant);
- `logq`: K negatives shared by the whole batch, drawn from popularity ** alpha, each
  weighted by 1 / (K q) (the log-Q correction), accidental hits removed;
- `full`: the exact softmax, for small vocabularies and for testing the others.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from trecs.config import EOP


def loss_mask(targets: jax.Array) -> jax.Array:
    """Positions that count: every target up to and including the first <eop>."""
    is_eop = targets == EOP
    return (jnp.cumsum(is_eop, axis=-1) - is_eop) == 0


def uniform(
    hidden: jax.Array,
    target_vectors: jax.Array,
    negative_vectors: jax.Array,
    targets: jax.Array,
    negatives: jax.Array,
    num_classes: int,
    remove_hits: bool = False,
) -> jax.Array:
    """hidden, target_vectors (N, D); negative_vectors (N, K, D); negatives (N, K)."""
    target_logit = jnp.sum(hidden * target_vectors, axis=-1)
    logits = jnp.einsum("nd,nkd->nk", hidden, negative_vectors)
    num_negatives = jnp.full(targets.shape, negatives.shape[-1], jnp.float32)
    if remove_hits:
        hits = negatives == targets[:, None]
        logits = jnp.where(hits, -jnp.inf, logits)
        num_negatives = num_negatives - hits.sum(axis=-1)
    weight = jnp.log(num_classes - 1) - jnp.log(jnp.maximum(num_negatives, 1.0))
    negative_term = jnp.where(
        num_negatives > 0, weight + jax.nn.logsumexp(logits, axis=-1), -jnp.inf
    )
    return jnp.logaddexp(target_logit, negative_term) - target_logit


def logq(
    hidden: jax.Array,
    target_vectors: jax.Array,
    negative_vectors: jax.Array,
    targets: jax.Array,
    negatives: jax.Array,
    negative_log_q: jax.Array,
) -> jax.Array:
    """hidden, target_vectors (N, D); negative_vectors (K, D); negatives, log q (K,)."""
    target_logit = jnp.sum(hidden * target_vectors, axis=-1)
    num = negatives.shape[0]
    logits = hidden @ negative_vectors.T - (jnp.log(num) + negative_log_q)[None, :]
    logits = jnp.where(negatives[None, :] == targets[:, None], -jnp.inf, logits)
    negative_term = jax.nn.logsumexp(logits, axis=-1)
    return jnp.logaddexp(target_logit, negative_term) - target_logit


def full(hidden: jax.Array, table: jax.Array, targets: jax.Array, classes: jax.Array) -> jax.Array:
    """The exact loss over `classes` (the token ids that can be predicted)."""
    logits = hidden @ table[classes].T
    target_logit = jnp.sum(hidden * table[targets], axis=-1)
    return jax.nn.logsumexp(logits, axis=-1) - target_logit
