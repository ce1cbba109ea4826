"""Incremental decoding matches the full model; sampling obeys its exclusions."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from trecs import generate
from trecs.config import EOP, START, UNK, ModelConfig
from trecs.data import title_tokens
from trecs.generate import (
    Generator,
    Settings,
    at_least,
    decode_step,
    empty_cache,
    empty_pool,
    exact_logits,
    first_set,
    kth_at_most,
    pruned_best,
    reach_of,
    top_k,
)
from trecs.model import PlaylistTransformer, init_table
from trecs.recommend import Recommender

CONFIG = ModelConfig(num_layers=2, num_heads=2, features=16, hidden=32, context=8, title_buckets=64)


def model_of(config: ModelConfig) -> PlaylistTransformer:
    """An untrained model whose title words already mean something (they start at 0)."""
    model = PlaylistTransformer(config, rngs=nnx.Rngs(0))
    model.title.embedding[...] = jax.random.normal(jax.random.key(9), (64, 16))
    return model


@pytest.fixture(scope="module")
def generator():
    model = model_of(CONFIG)
    table = 50 * init_table(jax.random.key(1), 100, 16)  # spread logits out
    return Generator(model, table)


@pytest.mark.parametrize("title", [None, "Summer 2017"])
def test_cached_decoding_matches_the_full_forward_pass(generator, title):
    model = generator.model
    tokens = jnp.array([START, 5, 9, 13, 17, 21, 25])
    hashed = title_tokens(title, CONFIG.title_buckets)[None]
    full = model(generator.table[tokens][None], hashed)[0]
    vector = model.title_vector(hashed)[0]
    cache = empty_cache(model)
    hidden = []
    for pos, token in enumerate(tokens):
        cache, h = decode_step(model, generator.table, cache, token, jnp.int32(pos), vector)
        hidden.append(h)
    np.testing.assert_allclose(jnp.stack(hidden), full, atol=1e-5)


@pytest.mark.parametrize("readout", ["last", "mean"])
def test_the_first_greedy_pick_is_the_best_recommendation(readout):
    """Generation scores tracks as batch recommendation does: readout, title and bias."""
    model = model_of(CONFIG.model_copy(update={"readout": readout}))
    table = 50 * init_table(jax.random.key(1), 100, 16)
    bias = 5 * jax.random.normal(jax.random.key(2), (100,))
    generator = Generator(model, table, bias=bias)
    recommender = Recommender(model, table, bias=bias)
    for seeds, title in (([5, 9, 13], "chill"), ([7], None), ([], "party")):
        picks = generator.continue_playlist(seeds, Settings(length=1, greedy=True), title)
        assert picks[0] == recommender.recommend([seeds], n=1, titles=[title])[0, 0]


def test_top_k_is_exact():
    scores = jax.random.normal(jax.random.key(3), (10_000,))
    values, rows = top_k(scores, 20, block=128)
    expected = np.sort(np.asarray(scores))[::-1][:20]
    np.testing.assert_allclose(values, expected)
    np.testing.assert_allclose(np.asarray(scores)[np.asarray(rows)], expected)


def test_top_k_breaks_ties_as_a_sort_of_the_whole_vector():
    """Ties go to the lowest row, across blocks too; -inf rows only when nothing else."""
    scores = jnp.round(jax.random.normal(jax.random.key(3), (10_001,)))
    for k in (1, 20, 300):
        assert_same(top_k(scores, k, block=128), jax.lax.top_k(scores, k))
    scores = jnp.full(1000, -jnp.inf).at[jnp.array([900, 5])].set(1.0)
    assert_same(top_k(scores, 4, block=64), jax.lax.top_k(scores, 4))


@pytest.mark.parametrize("size", [1, 37, 500])
def test_first_set_is_nonzero(size):
    """Every density, lengths off the lane, fewer and more set entries than asked for."""
    rng = np.random.default_rng(size)
    for n, density in [(1000, 0.01), (1001, 0.3), (77, 1.0), (300, 0.0), (4096, 0.001)]:
        mask = jnp.asarray(rng.random(n) < density)
        expected = jnp.nonzero(mask, size=size, fill_value=n)[0]
        np.testing.assert_array_equal(first_set(mask, size), expected)


def test_at_least_and_kth_at_most_bound_the_kth_largest():
    """`at_least`: reached by at least `count`, and close to the count-th largest;
    `kth_at_most`: never above the k-th largest, ties and -inf included."""
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=20_000), 2).astype(np.float32)
    values[rng.random(20_000) < 0.3] = -np.inf
    ordered = np.sort(values)[::-1]
    for count in (1, 5, 128, 2000):
        threshold = float(at_least(jnp.asarray(values), count))
        assert (values >= threshold).sum() >= count
        assert threshold >= ordered[count - 1] - 1e-5 * (ordered[0] - ordered[-1] + 1)
    for k in (1, 20, 700):
        assert float(kth_at_most(jnp.asarray(values), k)) <= ordered[k - 1]
    assert float(at_least(jnp.full(10, -jnp.inf).at[3].set(1.0), 2)) == -np.inf
    assert float(kth_at_most(jnp.full(100, -jnp.inf).at[3].set(1.0), 2)) == -np.inf


def assert_same(got, expected) -> None:
    """Equal logits (to the bit) and rows."""
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


@functools.partial(jax.jit, static_argnames="k")
def full_scan(table, bias, hidden, banned, k):
    """The reference: every row scored by `exact_logits`, one sort (compiled, as the
    library's products are: XLA may fuse a multiply and an add into one rounding)."""
    logits = jnp.where(banned, -jnp.inf, exact_logits(table, hidden, bias))
    return jax.lax.top_k(logits, k)


def walk(table, bias, hiddens, k, size=64):
    """`pruned_best` along hidden states, banning each step's best row as generation
    does; checks every answer against a full scan. How many steps kept the pool."""
    reach = reach_of(table, bias)
    banned = jnp.zeros(table.shape[0], bool).at[:3].set(True)
    pool, kept = empty_pool(size, table.shape[1]), 0
    for hidden in hiddens:
        values, rows, new = pruned_best(reach, table, bias, hidden, banned, pool, k)
        assert_same((values, rows), full_scan(table, bias, hidden, banned, k))
        kept += bool(jnp.all(new.at == pool.at))
        pool, banned = new, banned.at[rows[0]].set(True)
    return kept


def drifting(key: int, steps: int, features: int = 16, speed: float = 0.02) -> jax.Array:
    """Hidden states that move a little each step, as the mean readout does."""
    moves = jax.random.normal(jax.random.key(key), (steps, features))
    return 3 + jnp.cumsum(speed * moves, axis=0) + moves[0]


@pytest.mark.parametrize("k", [1, 5, 12])
def test_pruned_scoring_equals_a_full_scan(k):
    """Pool kept, pool refreshed by a scan: the same logits and rows as a full scan."""
    table = init_table(jax.random.key(4), 5000, 16)
    bias = 0.1 * jax.random.normal(jax.random.key(5), (5000,))
    kept = walk(table, bias, drifting(6, 30), k)
    assert 0 < kept < 30  # both paths taken


def test_pruned_scoring_with_ties_and_few_rows_left():
    """Duplicated rows tie exactly, in the pool and at its edge (and more copies than a
    pool holds); a table almost all banned leaves fewer than k rows (-inf logits)."""
    for copies in (3, 100):
        table = jnp.tile(init_table(jax.random.key(7), 4000 // copies, 16), (copies, 1))
        walk(table, jnp.zeros(table.shape[0]), drifting(8, 12, speed=0.002), 5)
    bias = jnp.zeros(4000)
    banned = jnp.ones(4000, bool).at[jnp.array([7, 3000])].set(False)
    hidden = jnp.ones(16)
    pool = empty_pool(64, 16)
    got = pruned_best(reach_of(table, bias), table, bias, hidden, banned, pool, 5)
    assert_same(got[:2], full_scan(table, bias, hidden, banned, 5))


def test_pruned_scoring_of_a_zero_hidden_state():
    table = init_table(jax.random.key(9), 3000, 16)
    walk(table, jnp.zeros(3000), jnp.zeros((2, 16)), 3)
    walk(table, jnp.arange(3000.0) % 7, jnp.zeros((2, 16)), 3)


def uneven_table(rows: int = 6000, features: int = 16) -> jax.Array:
    """Rows whose lengths spread over two orders of magnitude, as a trained table's do."""
    lengths = jnp.exp(1.2 * jax.random.normal(jax.random.key(11), (rows, 1)))
    return lengths * init_table(jax.random.key(10), rows, features)


@pytest.mark.parametrize("scale", [0.3, 1.0, 3.0])
def test_a_pool_bounds_every_row_outside_it_at_any_drift(scale):
    """Whatever the hidden state, no row outside a fresh pool scores above the bound
    `_pool_pick` returns: at the drifts where the rise is known, between them (the
    chord) and beyond the last (the radius)."""
    table = uneven_table()
    bias = 0.3 * jax.random.normal(jax.random.key(12), (6000,))
    banned = jnp.zeros(6000, bool).at[:50].set(True)
    reach = reach_of(table, bias)
    at = scale * jax.random.normal(jax.random.key(13), (16,))
    pool = generate._rescan_jit(reach, table, bias, at, banned, 5, 256)[2]
    assert np.isfinite(np.asarray(pool.rise)).all()
    outside = np.ones(6000, bool)
    outside[np.asarray(pool.rows)[np.asarray(pool.rows) < 6000]] = False
    outside &= ~np.asarray(banned)
    directions = jax.random.normal(jax.random.key(14), (40, 16))
    for i, fraction in enumerate([*generate.DRIFTS, 0.005, 0.02, 0.04, 0.3, 0.7, 1.5, 4.0]):
        for direction in directions[i % 8 :: 8]:
            hidden = at + fraction * jnp.linalg.norm(at) * direction / jnp.linalg.norm(direction)
            bound = generate._pool_pick(
                reach, table, bias, hidden, banned, pool.rows, pool.rise, pool.at, 5
            )[2]
            logits = np.asarray(exact_logits(table, hidden, bias))
            assert logits[outside].max() <= float(bound)


def test_banned_long_rows_do_not_loosen_the_pools_bound():
    """The special tokens' rows grow far longer than any track's in training; banned,
    they can never be picked, so they must not make every pick scan the table."""
    table = init_table(jax.random.key(4), 5000, 16)
    bias = 0.1 * jax.random.normal(jax.random.key(5), (5000,))
    hiddens = drifting(6, 30)
    plain = walk(table, bias, hiddens, 5)
    long_specials = table.at[:3].multiply(40.0)  # `walk` bans rows 0-2
    assert walk(long_specials, bias, hiddens, 5) >= plain - 2


def test_uneven_rows_keep_pools_longer_than_one_radius_would():
    """Rows of very different lengths: bounding each block by its own longest row keeps
    the pool through more of a slow drift (17 of 30 steps) than the table's radius
    (10 of 30)."""
    table = uneven_table()
    kept = walk(table, jnp.zeros(6000), drifting(15, 30, speed=0.01), 5, size=128)
    assert kept >= 14


@pytest.mark.parametrize("settings", [Settings(30, greedy=True), Settings(30, 5, 0.7, seed=2)])
def test_a_pooled_generator_continues_as_a_scanning_one(settings):
    model = model_of(CONFIG)
    table = 10 * init_table(jax.random.key(1), 3000, 16)
    bias = jax.random.normal(jax.random.key(2), (3000,))
    pooled = Generator(model, table, bias=bias, pool_size=64)
    scanning = Generator(model, table, bias=bias)
    assert pooled._reach is not None and scanning._reach is None
    seeds = [5, 9, 13]
    assert pooled.continue_playlist(seeds, settings) == scanning.continue_playlist(seeds, settings)


def test_sampling_excludes_specials_seeds_and_repeats(generator):
    seeds = [5, 9, 13]
    for seed in range(3):
        picks = generator.continue_playlist(seeds, Settings(length=40, seed=seed))
        assert len(picks) == 40  # longer than the context: the window restarts
        assert len(set(picks)) == 40
        assert not set(picks) & {START, UNK, EOP, *seeds}


def test_greedy_is_deterministic_and_seeded_sampling_reproducible(generator):
    greedy = [generator.continue_playlist([5, 9], Settings(length=10, greedy=True)) for _ in "ab"]
    assert greedy[0] == greedy[1]
    a = generator.continue_playlist([5, 9], Settings(length=10, seed=4))
    b = generator.continue_playlist([5, 9], Settings(length=10, seed=4))
    c = generator.continue_playlist([5, 9], Settings(length=10, seed=5))
    assert a == b and a != c


def test_low_temperature_approaches_greedy(generator):
    greedy = generator.continue_playlist([5, 9], Settings(length=10, greedy=True))
    cold = generator.continue_playlist([5, 9], Settings(length=10, temperature=1e-4, seed=1))
    assert cold == greedy


def test_unknown_seeds_are_read_past(generator):
    picks = generator.continue_playlist([5, UNK, 9], Settings(length=5, seed=0))
    assert len(picks) == 5 and UNK not in picks


def compiles_while(generate) -> int:
    """How many XLA compilations `generate()` triggers."""
    count = 0

    def listen(event: str, duration: float, **kwargs) -> None:
        nonlocal count
        count += event == "/jax/core/compile/backend_compile_duration"

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        generate()
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    return count


@pytest.mark.parametrize(("pool_size", "k"), [(16_384, 20), (8, 2)])  # scanned, pooled
def test_compilations_do_not_grow_with_the_length(pool_size, k):
    """Scoring and decoding compile once per model and shape, not once per track: after
    a first playlist, a fresh generator costs as many compilations for 20 tracks as for 5
    (its own decoding step and title vector)."""
    table = 50 * init_table(jax.random.key(1), 100, 16)

    def playlist(length: int) -> None:
        generator = Generator(model_of(CONFIG), table, pool_size=pool_size)
        generator.continue_playlist([5, 9], Settings(length, k, seed=1), "summer")

    playlist(3)
    assert compiles_while(lambda: playlist(20)) == compiles_while(lambda: playlist(5)) <= 2


def test_every_compiled_call_gets_committed_arguments():
    """jit compiles again when an argument placed by default (uncommitted) comes where one
    that came back from a call (committed) came before: at the MPD's size the step then
    compiled 4 times in a 60-track CLI run instead of once, 0.7-1.9 s each. The generator
    commits everything it passes, also when the window restarts."""
    table = 50 * init_table(jax.random.key(1), 3000, 16)
    generator = Generator(model_of(CONFIG), table, pool_size=64)
    placements = []

    def spy(compiled):
        def call(*args, **kwargs):
            placements.append({leaf.committed for leaf in jax.tree.leaves((args, kwargs))})
            return compiled(*args, **kwargs)

        return call

    generator._step = spy(generator._step)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("trecs.generate._pool_pick", spy(generate._pool_pick))
        patch.setattr("trecs.generate._rescan_jit", spy(generate._rescan_jit))
        patch.setattr("trecs.generate._ban", spy(generate._ban))
        picks = generator.continue_playlist([5, 9], Settings(length=20, seed=1), "summer")
    assert len(picks) == 20 > CONFIG.context  # the window restarted
    assert len(placements) > 40 and all(p == {True} for p in placements)


def test_top_k_and_length_beyond_the_tracks_stop_at_the_tracks(generator):
    picks = generator.continue_playlist([5, 9], Settings(length=10**9, top_k=10**12))
    assert len(picks) == len(set(picks)) == 100 - 3 - 2
