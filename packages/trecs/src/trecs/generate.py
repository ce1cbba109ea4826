"""Playlist continuation: incremental decoding with a key/value cache and top-k sampling.

Each new track costs one transformer step over one token (earlier keys and values are
cached) and one matrix product of the hidden state with the embedding table (the tied
output head, plus the per-track bias), followed by a partial sort. Tracks are scored as
`trecs.recommend` scores them: by the last hidden state or the mean over the window's.
Positions are learned and window-relative, so when a playlist outgrows the context the
cache restarts on its most recent half. A title, if given, is added to the <start>
position, as in training; a restarted window (no <start>) has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from trecs.config import EOP, NUM_SPECIAL, START, UNK
from trecs.data import title_tokens
from trecs.display import printable
from trecs.model import Block, PlaylistTransformer


class Cache(NamedTuple):
    keys: jax.Array  # (layers, context, heads, head_dim)
    values: jax.Array


def _attend(block: Block, x: jax.Array, cache_k: jax.Array, cache_v: jax.Array, pos: jax.Array):
    """One block on one position `pos`, reading and extending that block's cache."""
    attention = block.attention
    h = block.attention_norm(x)
    q, k, v = attention.query(h), attention.key(h), attention.value(h)  # (1, heads, dim)
    cache_k = jax.lax.dynamic_update_slice(cache_k, k, (pos, 0, 0))
    cache_v = jax.lax.dynamic_update_slice(cache_v, v, (pos, 0, 0))
    mask = (jnp.arange(cache_k.shape[0]) <= pos)[None, None, :]  # (heads=1, q=1, keys)
    out = nnx.dot_product_attention(q[None], cache_k[None], cache_v[None], mask=mask[None])[0]
    x = x + attention.out(out)
    x = x + block.contract(nnx.relu(block.expand(block.feed_forward_norm(x))))
    return x, cache_k, cache_v


def decode_step(
    model: PlaylistTransformer,
    table: jax.Array,
    cache: Cache,
    token: jax.Array,
    pos: jax.Array,
    title: jax.Array | None = None,
) -> tuple[Cache, jax.Array]:
    """Feed `token` at window position `pos`; returns the cache and the hidden state.
    `title`: the playlist's title vector (`PlaylistTransformer.title_vector`), added at
    position 0 only."""
    x = table[token][None] + model.position[...][pos][None]  # (1, features)
    if title is not None:
        x = x + jnp.where(pos == 0, title, 0.0)[None]
    keys, values = [], []
    for layer, block in enumerate(model.blocks):
        x, k, v = _attend(block, x, cache.keys[layer], cache.values[layer], pos)
        keys.append(k)
        values.append(v)
    return Cache(jnp.stack(keys), jnp.stack(values)), model.final_norm(x)[0]


def empty_cache(model: PlaylistTransformer) -> Cache:
    config = model.config
    head_dim = config.features // config.num_heads
    shape = (config.num_layers, config.context, config.num_heads, head_dim)
    return Cache(np.zeros(shape, np.float32), np.zeros(shape, np.float32))


def top_k(scores: jax.Array, k: int, block: int = 4096) -> tuple[jax.Array, jax.Array]:
    """Exact top k of a long vector, ties to the lowest row as `jax.lax.top_k`: the k
    largest must lie in the k blocks with the largest maxima, so one max per block and
    two small sorts replace a full sort."""
    n = scores.shape[0]
    padded = -(-n // block) * block
    blocks = jnp.pad(scores, (0, padded - n), constant_values=-jnp.inf).reshape(-1, block)
    # In row order, so that ties go to the lowest row, as in a sort of the whole vector.
    best_blocks = jnp.sort(jax.lax.top_k(blocks.max(axis=1), min(k, blocks.shape[0]))[1])
    candidates = blocks[best_blocks].reshape(-1)
    values, index = jax.lax.top_k(candidates, k)
    rows = best_blocks[index // block] * block + index % block
    return values, rows


@dataclass
class Settings:
    length: int = 50
    top_k: int = 20
    temperature: float = 1.0
    greedy: bool = False
    allow_eop: bool = False
    seed: int = 0


@jax.jit
def _score(table, bias, hidden, banned, temperature):
    """Logits of every row, -inf where `banned` (a mask: one shape for the whole
    playlist, so one compilation however many tracks are picked)."""
    logits = (table @ hidden + bias) / temperature
    return jnp.where(banned, -jnp.inf, logits)


@jax.jit
def _ban(banned: jax.Array, token: jax.Array) -> jax.Array:
    return banned.at[token].set(True)


_top_k = jax.jit(top_k, static_argnums=1)


# Rows are pooled and bounded by blocks of BLOCK consecutive rows.
BLOCK = 4
# Drifts, as fractions of |at|, at which a pool knows how far its outside can rise: the
# rows that come close to its ceiling are rarely the longest (on a trained table few rows
# are long), so one radius for all rows overstates the rise many times.
DRIFTS = (0.0, *(k / 128 for k in (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128)))


def _ladder(at: jax.Array) -> jax.Array:
    """The drifts of DRIFTS away from the hidden state `at`, in its units."""
    return jnp.asarray(DRIFTS) * jnp.linalg.norm(at)


class Reach(NamedTuple):
    """What bounds how far a logit can move: the largest |table[i]| and |bias[i]|, and
    every |table[i]|."""

    radius: jax.Array  # ()
    bias: jax.Array  # ()
    norms: jax.Array  # (rows,)


@jax.jit
def reach_of(table: jax.Array, bias: jax.Array) -> Reach:
    norms = jnp.linalg.norm(table, axis=1)
    return Reach(norms.max(), jnp.abs(bias).max(), norms)


class Pool(NamedTuple):
    """Rows whose exact logits are kept at hand: for the hidden state `at`, no row
    outside `rows` could reach `rise[j]` with a hidden state within DRIFTS[j] |at| of
    `at` (`rise[0]`: the largest logit outside; bans can only lower these)."""

    rows: jax.Array  # (pool size,) ascending; rows past the table's are empty places
    rise: jax.Array  # (len(DRIFTS),)
    at: jax.Array  # (features,)


def empty_pool(size: int, features: int) -> Pool:
    """A pool that vouches for nothing: the first pick scans the table."""
    inf = np.full(len(DRIFTS), np.inf, np.float32)
    return Pool(np.zeros(size, np.int32), inf, np.zeros(features, np.float32))


def _slack(reach: Reach, hidden: jax.Array) -> jax.Array:
    """A margin above every float32 rounding error of a logit (about 1e-5 of the largest
    possible one), so that bounds proven in exact arithmetic hold for computed logits and
    a logit below another by more stays below it once divided by the temperature."""
    return 1e-4 * (reach.radius * jnp.linalg.norm(hidden) + reach.bias)


def exact_logits(rows: jax.Array, hidden: jax.Array, bias: jax.Array) -> jax.Array:
    """rows @ hidden + bias, summed feature by feature in a fixed order: the same float
    for a row whatever the other rows (XLA's matrix-vector product sums in an order that
    depends on the matrix's shape), so that a few rows score as a scan of all of them."""
    total = rows[:, 0] * hidden[0]
    for j in range(1, rows.shape[1]):
        total = total + rows[:, j] * hidden[j]
    return total + bias


def _pool_best(table, bias, hidden, banned, rows, k: int):
    """The k best of the pool's `rows` by `exact_logits`: logits and rows."""
    inside = jnp.minimum(rows, table.shape[0] - 1)
    logits = exact_logits(table[inside], hidden, bias[inside])
    logits = jnp.where((rows < table.shape[0]) & ~banned[inside], logits, -jnp.inf)
    values, index = jax.lax.top_k(logits, k)
    return values, rows[index]


def _full_best(table, bias, hidden, banned, k: int):
    """The k best of every row by `exact_logits`: the reference the pool must equal."""
    logits = jnp.where(banned, -jnp.inf, exact_logits(table, hidden, bias))
    return top_k(logits, k)


def first_set(mask: jax.Array, size: int, lane: int = 128) -> jax.Array:
    """The indices of the first `size` set entries of `mask`, ascending, then len(mask):
    `jnp.nonzero(mask, size=size, fill_value=len(mask))`, three times faster on CPU. A
    prefix count (per lane of 128 by one matrix product with a triangle of ones, exact
    in float32) is searched for 1, 2, ... size instead of scattering every entry."""
    n = mask.shape[0]
    lanes = jnp.pad(mask, (0, -n % lane)).reshape(-1, lane).astype(jnp.float32)
    within = (lanes @ jnp.triu(jnp.ones((lane, lane), jnp.float32))).astype(jnp.int32)
    before = jnp.cumsum(within[:, -1]) - within[:, -1]
    counts = (before[:, None] + within).reshape(-1)
    wanted = jnp.arange(1, size + 1, dtype=jnp.int32)
    found = jnp.searchsorted(counts, wanted, side="left", method="scan_unrolled")
    return jnp.minimum(found, n).astype(jnp.int32)


def at_least(values: jax.Array, count: int, steps: int = 24) -> jax.Array:
    """A threshold that at least `count` of `values` reach, and about that many (to
    2**-steps of their range): bisection by counting. `jax.lax.top_k` finds the exact
    one, but with k in the hundreds it sorts on CPU, 20 times slower. -inf when fewer
    than `count` values are finite."""
    finite = jnp.isfinite(values)
    low = jnp.min(jnp.where(finite, values, jnp.inf))
    high = jnp.max(jnp.where(finite, values, -jnp.inf))

    def narrow(_, bounds):
        low, high = bounds
        middle = low + (high - low) / 2
        enough = jnp.sum(values >= middle) >= count
        return jnp.where(enough, middle, low), jnp.where(enough, high, middle)

    low, _ = jax.lax.fori_loop(0, steps, narrow, (low, high))
    return jnp.where(jnp.sum(values >= low) >= count, low, -jnp.inf)


def kth_at_most(values: jax.Array, k: int) -> jax.Array:
    """A lower bound on the k-th largest of `values`, cheaply: the k largest maxima of
    disjoint groups are k distinct values, so their k-th is at most the k-th largest;
    with at least 8k groups it is close to it."""
    width = max(values.shape[0] // (8 * k), 1)
    groups = jnp.pad(values, (0, -values.shape[0] % width), constant_values=-jnp.inf)
    return at_least(groups.reshape(-1, width).max(1), k)


def _rescan(reach: Reach, table, bias, hidden, banned, k: int, size: int, block: int = BLOCK):
    """A float32 scan (XLA's fast product, within `slack` of the exact logits) picks a
    new pool: the blocks of `block` rows whose best passes a threshold that about half
    of the pool's blocks pass (estimated on a sample), lowered if need be to hold every
    row that may be among the k best. Those are then scored exactly; a pool that would
    overflow vouches for nothing, and the k best come from an exact scan of every row.
    Blocks, not rows: finding the few rows above a threshold costs a prefix sum, ten
    times cheaper over one maximum per block."""
    slack = _slack(reach, hidden)
    logits = jnp.where(banned, -jnp.inf, table @ hidden + bias)
    padding = -(-logits.shape[0] // block) * block - logits.shape[0]
    maxima = jnp.pad(logits, (0, padding), constant_values=-jnp.inf).reshape(-1, block).max(1)
    blocks = size // block
    threshold = at_least(maxima[::16], max(blocks // 32, 1))
    # At most the k-th largest logit, so every row among the k best passes it.
    threshold = jnp.minimum(threshold, kth_at_most(maxima, k) - 4 * slack)
    above = maxima >= threshold
    chosen = first_set(above, blocks)
    pooled = (chosen[:, None] * block + jnp.arange(block, dtype=jnp.int32)).reshape(-1)
    overflow = above.sum() > blocks
    # A block's logits move by at most its longest row times the drift: the largest
    # block maximum outside plus that, at each of DRIFTS (all that `_pool_pick` keeps).
    # Banned rows stay banned, so their length does not count: the special tokens' rows
    # are several times longer than any track's on a trained table.
    norms = jnp.pad(jnp.where(banned, 0.0, reach.norms), (0, padding)).reshape(-1, block).max(1)
    drifts = _ladder(hidden)
    outside = jnp.where(above, -jnp.inf, maxima)
    rise = jnp.max(outside[:, None] + norms[:, None] * drifts[None, :], axis=0)
    pool = Pool(pooled, jnp.where(overflow, jnp.inf, rise + slack), hidden)
    values, rows = jax.lax.cond(
        overflow,
        lambda: _full_best(table, bias, hidden, banned, k),
        lambda: _pool_best(table, bias, hidden, banned, pooled, k),
    )
    return values, rows, pool


def _rise(reach: Reach, rise: jax.Array, at: jax.Array, drift: jax.Array) -> jax.Array:
    """No row outside a pool reaches this for a hidden state `drift` away from `at`.
    The largest outside logit is a maximum of lines in the drift (one per block), so a
    convex function: between two of DRIFTS the chord lies above it; past the last, it
    rises at most by the table's radius."""
    drifts = _ladder(at)
    j = jnp.clip(jnp.searchsorted(drifts, drift, side="right") - 1, 0, len(DRIFTS) - 2)
    width = drifts[j + 1] - drifts[j]
    share = jnp.clip((drift - drifts[j]) / jnp.where(width > 0, width, 1.0), 0.0, 1.0)
    # All infinite (a pool that vouches for nothing, or nothing outside) or all finite.
    chord = rise[j] + jnp.where(jnp.isfinite(rise[j]), rise[j + 1] - rise[j], 0.0) * share
    past = rise[-1] + reach.radius * (drift - drifts[-1])
    return jnp.where(drift >= drifts[-1], past, chord)


@partial(jax.jit, static_argnames="k")
def _pool_pick(reach, table, bias, hidden, banned, rows, rise, at, k: int):
    """The k best of a pool's `rows` by `exact_logits`, and a logit no row outside the
    pool reaches for `hidden` (see `_rise`). Compared outside: XLA's CPU top k stays a
    fast selection only while nothing computes on its values; one comparison turned it
    into a sort of the pool (5 of a pick's 7 ms)."""
    values, rows = _pool_best(table, bias, hidden, banned, rows, k)
    drift = jnp.linalg.norm(hidden - at) * (1 + 1e-4)  # rounding included
    return values, rows, _rise(reach, rise, at, drift) + 2 * _slack(reach, hidden)


_rescan_jit = jax.jit(_rescan, static_argnames=("k", "size"))


def pruned_best(
    reach: Reach,
    table: jax.Array,
    bias: jax.Array,
    hidden: jax.Array,
    banned: jax.Array,
    pool: Pool,
    k: int,
) -> tuple[np.ndarray, np.ndarray, Pool]:
    """The k best rows by `exact_logits` (-inf where `banned`), logits and rows, as
    `_full_best` finds them, reading the whole table only when the pool cannot vouch for
    its own k best (`_pool_pick`). Also the pool to pass next."""
    values, rows, bound = _pool_pick(
        reach, table, bias, hidden, banned, pool.rows, pool.rise, pool.at, k
    )
    values, rows = np.asarray(values), np.asarray(rows)
    if values[-1] > np.asarray(bound):
        return values, rows, pool
    values, rows, pool = _rescan_jit(reach, table, bias, hidden, banned, k, pool.rows.shape[0])
    return np.asarray(values), np.asarray(rows), pool


class Generator:
    """Continues playlists of tokens with a trained model (see `trecs.checkpoints`)."""

    def __init__(
        self,
        model: PlaylistTransformer,
        table: jax.Array,
        vocab_size: int | None = None,
        bias: jax.Array | None = None,
        pool_size: int = 16_384,
    ) -> None:
        """`vocab_size`: tokens that are tracks; rows beyond it are padding, never picked.
        `bias`: the run's per-track logit bias, if it has one. `pool_size`: the rows whose
        logits `pruned_best` keeps at hand, on a table of more than four times as many."""
        self.model = model
        # Every argument of the compiled calls lives on the table's device, committed:
        # jit compiles again for an argument placed by default (uncommitted) where the
        # same one came back from a call before (4 compilations of the step instead of 1,
        # about 0.7-1.9 s each at the MPD's size).
        device = next(iter(table.devices()))
        self._put = lambda tree: jax.device_put(tree, jax.sharding.SingleDeviceSharding(device))
        self.table = self._put(table)  # no copy: already there
        self.bias = self._put(np.zeros(table.shape[0], np.float32) if bias is None else bias)
        self.pool_size = pool_size
        self._reach = reach_of(self.table, self.bias) if table.shape[0] > 4 * pool_size else None
        self.vocab_size = vocab_size or table.shape[0]
        self.context = model.config.context
        # Built in numpy and put on the device: a jnp.zeros compiles a small program in
        # every process (20-60 ms each, about 0.2 s of every `trecs generate`).
        self._zeros = np.zeros(model.config.features, np.float32)
        graphdef, params = nnx.split(model)

        @jax.jit
        def step(params, table, cache, token, pos, title):
            return decode_step(nnx.merge(graphdef, params), table, cache, token, pos, title)

        @jax.jit
        def title_vector(params, hashed):
            return nnx.merge(graphdef, params).title_vector(hashed[None])[0]

        self._params = self._put(params)
        self._step = step
        self._title_vector = title_vector

    def step(self, cache: Cache, token: int, pos: int, title: jax.Array) -> tuple[Cache, jax.Array]:
        """One cached transformer step, compiled once per generator: `decode_step` with
        this generator's model and table. Public so that its cost per track can be timed."""
        token, pos = self._put((np.int32(token), np.int32(pos)))
        return self._step(self._params, self.table, cache, token, pos, title)

    def best(
        self,
        hidden: jax.Array,
        banned: jax.Array,
        k: int,
        temperature: float = 1.0,
        pool: Pool | None = None,
    ) -> tuple[np.ndarray, np.ndarray, Pool | None]:
        """Logits (divided by `temperature`) and rows of the `k` best tracks for `hidden`
        (-inf where the mask `banned` is set), the other cost of each generated track:
        those of a float32 scan of every track; on a large table, of `exact_logits`,
        often read from the pool of the previous pick (see `pruned_best`), and divided
        here, in numpy, so that no compiled fusion rounds them differently. Also the pool
        to pass next time, while `banned` only grows (None: none yet, or no pooling)."""
        if self._reach is None or k > self.pool_size // 4:
            values, rows = _top_k(_score(self.table, self.bias, hidden, banned, temperature), k)
            return np.asarray(values), np.asarray(rows), None
        pool = pool or self._put(empty_pool(self.pool_size, hidden.shape[0]))
        values, rows, pool = pruned_best(
            self._reach, self.table, self.bias, hidden, banned, pool, k
        )
        return np.asarray(values) / np.float32(temperature), np.asarray(rows), pool

    def _advance(self, token: int) -> jax.Array:
        """Feed one token at the next window position; the readout of the window so far
        (its last hidden state, or the mean of its hidden states)."""
        self._cache, hidden = self.step(self._cache, token, self._length, self._window_title)
        self._length += 1
        self._sum = self._sum + hidden
        return self._sum / self._length if self.model.config.readout == "mean" else hidden

    def _feed(self, tokens: Sequence[int]) -> jax.Array:
        """(Re)start the cache on `tokens` (at most a context); their readout."""
        no_title = self._put(self._zeros)
        self._window_title = self._title if tokens[0] == START else no_title
        self._cache = self._put(empty_cache(self.model))
        self._length = 0
        self._sum = self._put(self._zeros)
        for token in tokens:
            hidden = self._advance(token)
        return hidden

    def _banned(self, tokens: list[int]) -> jax.Array:
        """The mask of rows never picked: `tokens` and the padding beyond the vocabulary."""
        rows = self.table.shape[0]
        banned = np.arange(rows) >= self.vocab_size
        banned[[t for t in tokens if 0 <= t < rows]] = True
        return self._put(banned)  # straight to the device, committed: one transfer

    def continue_playlist(
        self, seeds: Sequence[int], settings: Settings, title: str | None = None
    ) -> list[int]:
        """`settings.length` new track tokens after `seeds` (tokens; <unk> allowed), for a
        playlist called `title` (None: untitled).

        Never <start>, <unk>, a seed or an earlier pick; never <eop> unless allowed
        (and then generation stops at it).
        """
        buckets = self.model.config.title_buckets
        self._title = self._put(
            self._title_vector(self._params, self._put(title_tokens(title, buckets)))
            if buckets
            else self._zeros
        )
        history = [START, *seeds]
        window = history[-self.context :]
        hidden = self._feed(window)
        rng = np.random.default_rng(settings.seed)
        banned = self._banned([START, UNK, *seeds, *([] if settings.allow_eop else [EOP])])
        k = min(1 if settings.greedy else settings.top_k, self.table.shape[0])
        picks: list[int] = []
        pool = None
        while len(picks) < settings.length:
            values, rows, pool = self.best(hidden, banned, k, settings.temperature, pool)
            values, rows = np.asarray(values, np.float64), np.asarray(rows)
            allowed = np.isfinite(values)
            if not allowed.any():
                break
            if settings.greedy:
                token = int(rows[0])
            else:
                p = np.exp(values[allowed] - values[allowed].max())
                token = int(rng.choice(rows[allowed], p=p / p.sum()))
            if token == EOP:
                break
            picks.append(token)
            banned = _ban(banned, self._put(np.int32(token)))
            history.append(token)
            if self._length == self.context:  # window full: restart on its recent half
                hidden = self._feed(history[-(self.context // 2) :])
            else:
                hidden = self._advance(token)
        return picks


@dataclass
class Continuation:
    seeds: list  # trecs.seeds.Seed
    notices: list[str]
    tracks: list[dict]  # position, uri, name, artist, album, duration_ms, link


def continue_from_run(
    run_dir: Path,
    queries: list[str],
    settings: Settings,
    db: Path | None = None,
    title: str | None = None,
) -> Continuation:
    """Resolve the user's seeds, continue the playlist (called `title`, if given) with the
    run's model, describe it. A two-stage ranker directory (`trecs train-ranker`) answers
    with its best `settings.length` tracks in order: it ranks, it does not sample."""
    from trecs.seeds import resolve

    if (run_dir / "ranker.json").is_file():
        from trecs.ranker import load_ranker
        from trecs.recommenders import Query

        notices: list[str] = []
        ranker = load_ranker(run_dir, db, notices.append)
        seeds = resolve(ranker.db, queries)
        notices += [
            f"{s.label}: not in the ranker's database, left out"
            for s in seeds
            if s.track_id is None
        ]
        if settings != Settings(settings.length):
            notices.append(
                f"{run_dir} is a ranker: it lists its best tracks, sampling options do not apply"
            )
        query = Query(-1, title, tuple(s.track_id for s in seeds if s.track_id is not None))
        ids = [int(t) for t in ranker.recommend([query], settings.length)[0]]
        return Continuation(seeds, notices, describe(ranker.db, ids))

    from trecs.checkpoints import load_run

    notices = []
    trained = load_run(run_dir, notices.append)
    db = db or trained.config.db
    seeds = resolve(db, queries)
    token_of = trained.vocab.token_of()
    tokens = []
    for seed in seeds:
        known = seed.track_id is not None and seed.track_id < len(token_of)
        token = int(token_of[seed.track_id]) if known else UNK
        if token == UNK:
            notices.append(f"{seed.label}: not in the model's vocabulary, read as <unk>")
        tokens.append(token)
    if title is not None and not trained.config.model.title_buckets:
        notices.append(f"{run_dir} was trained without titles: --title is ignored")
    notices += _bounds(settings, len(trained.vocab) - NUM_SPECIAL - len(set(tokens) - {UNK}))
    generator = Generator(trained.model, trained.table, len(trained.vocab), trained.bias)
    picks = generator.continue_playlist(tokens, settings, title)
    ids = [int(trained.vocab.track_ids[t - NUM_SPECIAL]) for t in picks]
    return Continuation(seeds, notices, describe(db, ids))


def _bounds(settings: Settings, available: int) -> list[str]:
    """Notices for a length or top k beyond the tracks there are to pick: generation
    stops when none is left, and samples among all of them."""
    notices = []
    if settings.length > available:
        notices.append(f"--length {settings.length:,}: only {available:,} tracks can be added")
    if settings.top_k > available and not settings.greedy:
        notices.append(f"--top-k {settings.top_k:,}: sampling among all {available:,} tracks")
    return notices


def describe(db: Path, ids: list[int]) -> list[dict]:
    """The tracks `ids` of `db` as the CLI shows them: position, URI, names, link."""
    from trecs.db import connect

    conn = connect(db)
    try:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT t.id, t.uri, t.name, ar.name, al.name, t.duration_ms FROM tracks t "
                "JOIN artists ar ON ar.id = t.artist_id JOIN albums al ON al.id = t.album_id "
                f"WHERE t.id IN ({', '.join('?' * len(ids))})",
                ids,
            )
        }
    finally:
        conn.close()
    tracks = []
    for position, track_id in enumerate(ids, 1):
        uri, name, artist, album, duration = rows[track_id]
        link = "https://open.spotify.com/track/" + uri.rsplit(":", 1)[-1]
        tracks.append(
            {
                "position": position,
                "uri": uri,
                "name": name,
                "artist": artist,
                "album": album,
                "duration_ms": duration,
                "link": link,
            }
        )
    return tracks


def m3u(tracks: list[dict]) -> str:
    """An M3U8 playlist of Spotify URIs with #EXTINF durations and names."""
    lines = ["#EXTM3U"]
    for t in tracks:
        # A newline or escape in a name would break the format or reach a terminal.
        name = printable(f"{t['artist']} - {t['name']}")
        lines.append(f"#EXTINF:{round(t['duration_ms'] / 1000)},{name}")
        lines.append(t["uri"])
    return "\n".join(lines) + "\n"
