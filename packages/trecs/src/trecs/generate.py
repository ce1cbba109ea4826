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
    return Cache(jnp.zeros(shape), jnp.zeros(shape))


def top_k(scores: jax.Array, k: int, block: int = 4096) -> tuple[jax.Array, jax.Array]:
    """Exact top k of a long vector: the k largest must lie in the k blocks with the
    largest maxima, so one max per block and two small sorts replace a full sort."""
    n = scores.shape[0]
    padded = -(-n // block) * block
    blocks = jnp.pad(scores, (0, padded - n), constant_values=-jnp.inf).reshape(-1, block)
    best_blocks = jax.lax.top_k(blocks.max(axis=1), min(k, blocks.shape[0]))[1]
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


class Generator:
    """Continues playlists of tokens with a trained model (see `trecs.checkpoints`)."""

    def __init__(
        self,
        model: PlaylistTransformer,
        table: jax.Array,
        vocab_size: int | None = None,
        bias: jax.Array | None = None,
    ) -> None:
        """`vocab_size`: tokens that are tracks; rows beyond it are padding, never picked.
        `bias`: the run's per-track logit bias, if it has one."""
        self.model = model
        self.table = table
        self.bias = jnp.zeros(table.shape[0]) if bias is None else bias
        self.vocab_size = vocab_size or table.shape[0]
        self.context = model.config.context
        graphdef, params = nnx.split(model)

        @jax.jit
        def step(params, table, cache, token, pos, title):
            return decode_step(nnx.merge(graphdef, params), table, cache, token, pos, title)

        @jax.jit
        def title_vector(params, hashed):
            return nnx.merge(graphdef, params).title_vector(hashed[None])[0]

        self._params = params
        self._step = step
        self._title_vector = title_vector

    def step(self, cache: Cache, token: int, pos: int, title: jax.Array) -> tuple[Cache, jax.Array]:
        """One cached transformer step, compiled once per generator: `decode_step` with
        this generator's model and table. Public so that its cost per track can be timed."""
        return self._step(self._params, self.table, cache, jnp.int32(token), jnp.int32(pos), title)

    def best(
        self, hidden: jax.Array, banned: jax.Array, k: int, temperature: float = 1.0
    ) -> tuple[jax.Array, jax.Array]:
        """Logits and rows of the `k` best tracks for `hidden` (-inf where the mask
        `banned` is set): every track scored, the other cost of each generated track."""
        return _top_k(_score(self.table, self.bias, hidden, banned, temperature), k)

    def _advance(self, token: int) -> jax.Array:
        """Feed one token at the next window position; the readout of the window so far
        (its last hidden state, or the mean of its hidden states)."""
        self._cache, hidden = self.step(self._cache, token, self._length, self._window_title)
        self._length += 1
        self._sum = self._sum + hidden
        return self._sum / self._length if self.model.config.readout == "mean" else hidden

    def _feed(self, tokens: Sequence[int]) -> jax.Array:
        """(Re)start the cache on `tokens` (at most a context); their readout."""
        no_title = jnp.zeros(self.model.config.features)
        self._window_title = self._title if tokens[0] == START else no_title
        self._cache = empty_cache(self.model)
        self._length = 0
        self._sum = jnp.zeros(self.model.config.features)
        for token in tokens:
            hidden = self._advance(token)
        return hidden

    def _banned(self, tokens: list[int]) -> jax.Array:
        """The mask of rows never picked: `tokens` and the padding beyond the vocabulary."""
        rows = self.table.shape[0]
        banned = np.arange(rows) >= self.vocab_size
        banned[[t for t in tokens if 0 <= t < rows]] = True
        return jnp.asarray(banned)

    def continue_playlist(
        self, seeds: Sequence[int], settings: Settings, title: str | None = None
    ) -> list[int]:
        """`settings.length` new track tokens after `seeds` (tokens; <unk> allowed), for a
        playlist called `title` (None: untitled).

        Never <start>, <unk>, a seed or an earlier pick; never <eop> unless allowed
        (and then generation stops at it).
        """
        buckets = self.model.config.title_buckets
        self._title = (
            self._title_vector(self._params, title_tokens(title, buckets))
            if buckets
            else jnp.zeros(self.model.config.features)
        )
        history = [START, *seeds]
        window = history[-self.context :]
        hidden = self._feed(window)
        rng = np.random.default_rng(settings.seed)
        banned = self._banned([START, UNK, *seeds, *([] if settings.allow_eop else [EOP])])
        k = min(1 if settings.greedy else settings.top_k, self.table.shape[0])
        picks: list[int] = []
        while len(picks) < settings.length:
            values, rows = self.best(hidden, banned, k, settings.temperature)
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
            banned = _ban(banned, jnp.int32(token))
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
