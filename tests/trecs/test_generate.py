"""Incremental decoding matches the full model; sampling obeys its exclusions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from trecs.config import EOP, START, UNK, ModelConfig
from trecs.data import title_tokens
from trecs.generate import Generator, Settings, decode_step, empty_cache, top_k
from trecs.model import PlaylistTransformer, init_table
from trecs.recommend import Recommender

CONFIG = ModelConfig(num_layers=2, num_heads=2, features=16, hidden=32, context=8, title_buckets=64)


def model_of(config: ModelConfig) -> PlaylistTransformer:
    """An untrained model whose title words already mean something (they start at 0)."""
    model = PlaylistTransformer(config, rngs=nnx.Rngs(0))
    model.title.embedding.value = jax.random.normal(jax.random.key(9), (64, 16))
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


def test_compilations_do_not_grow_with_the_length():
    """Scoring and decoding compile once per model and shape, not once per track: after
    a first playlist, a fresh generator costs as many compilations for 20 tracks as for 5
    (its own decoding step and title vector)."""
    table = 50 * init_table(jax.random.key(1), 100, 16)

    def playlist(length: int) -> None:
        generator = Generator(model_of(CONFIG), table)
        generator.continue_playlist([5, 9], Settings(length=length, seed=1), "summer")

    playlist(3)
    assert compiles_while(lambda: playlist(20)) == compiles_while(lambda: playlist(5)) <= 2


def test_top_k_and_length_beyond_the_tracks_stop_at_the_tracks(generator):
    picks = generator.continue_playlist([5, 9], Settings(length=10**9, top_k=10**12))
    assert len(picks) == len(set(picks)) == 100 - 3 - 2
