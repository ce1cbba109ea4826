"""Training runs: logs, checkpoints, exact resumption, errors, many devices, data."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from tiny_runs import TINY, leaves, tiny

from trecs.baselines import playlist_matrix
from trecs.checkpoints import load_run
from trecs.config import EOP, NUM_SPECIAL, START, UNK, TrainConfig
from trecs.data import PlaylistSource, TitledSource, Windows, loader, split_matrix, title_tokens
from trecs.model import svd_vectors
from trecs.train import train
from trecs.vocab import build_vocabulary


def test_run_writes_logs_checkpoints_and_config(db, tmp_path):
    seen = []
    last = train(tmp_path / "run", tiny(db), on_log=seen.append)
    run = tmp_path / "run"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20]
    assert records == seen and last == records[-1]
    assert [r["valid_loss"] is not None for r in records] == [False, True, False, True]
    for r in records:
        assert set(r) == {"step", "loss", "valid_loss", "lr", "steps_per_s", "playlists_per_s"}
        assert r["loss"] > 0 and r["playlists_per_s"] == pytest.approx(8 * r["steps_per_s"])
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["10", "20"]
    assert any(p.name.startswith("events.out.tfevents") for p in (run / "tensorboard").iterdir())
    saved = json.loads((run / "config.json").read_text())
    vocab = build_vocabulary(db)
    assert saved["model"]["num_tracks"] == len(vocab)
    assert (run / "vocab.npz").is_file()
    trained = load_run(run)
    assert trained.step == 20
    assert trained.table.shape == (len(vocab), 16)
    hidden = trained.model(trained.table[np.array([[START, 3, 4]])])
    assert hidden.shape == (1, 3, 16)


class Interrupted(Exception):
    pass


def interrupt_at(step: int):
    """A progress callback that stops training when step `step` is logged."""

    def on_log(record: dict) -> None:
        if record["step"] == step:
            raise Interrupted

    return on_log


def test_resumed_run_matches_an_uninterrupted_one(db, tmp_path):
    """With the defaults (co-occurrence table, titles, warm-up and cosine decay over the
    run): killed after step 15 (checkpoint 10), resumed to the end."""
    train(tmp_path / "straight", tiny(db))
    with pytest.raises(Interrupted):
        train(tmp_path / "resumed", tiny(db), on_log=interrupt_at(15))
    assert sorted(p.name for p in (tmp_path / "resumed/checkpoints").iterdir()) == ["10"]
    train(tmp_path / "resumed", tiny(db), resume=True)
    for a, b in zip(
        leaves(tmp_path / "straight", 20), leaves(tmp_path / "resumed", 20), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    steps = [
        json.loads(line)["step"]
        for line in (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [5, 10, 15, 20]


def test_extended_run_matches_a_longer_one_with_a_constant_schedule(db, tmp_path):
    """N steps, then --num-steps 2N resumed, equal 2N steps when the learning rate does
    not depend on the run's length."""
    constant = {"warmup_steps": 0, "cosine_decay": False}
    train(tmp_path / "straight", tiny(db, optimizer=constant))
    train(tmp_path / "resumed", tiny(db, num_steps=10, optimizer=constant))
    train(tmp_path / "resumed", tiny(db, optimizer=constant), resume=True)
    for a, b in zip(
        leaves(tmp_path / "straight", 20), leaves(tmp_path / "resumed", 20), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_resume_skips_an_incomplete_checkpoint(db, tmp_path):
    run = tmp_path / "run"
    train(run, tiny(db))
    # What a process killed while writing step 30 leaves behind.
    partial = run / "checkpoints/30.orbax-checkpoint-tmp-1700000000"
    shutil.copytree(run / "checkpoints/20", partial)
    (partial / "state" / "_CHECKPOINT_METADATA").unlink(missing_ok=True)
    last = train(run, tiny(db, num_steps=25), resume=True)
    assert last["step"] == 25
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20, 25]


def test_cli_errors_are_one_line(cli, db, tmp_path):
    run = tmp_path / "run"
    config = tmp_path / "tiny.toml"
    config.write_text(
        f'db = "{db}"\nbatch_size = 8\nnum_steps = 5\nlog_every = 5\neval_every = 5\n'
        "checkpoint_every = 5\ndata_workers = 0\n"
        "[model]\nnum_layers = 1\nnum_heads = 2\nfeatures = 16\nhidden = 32\ncontext = 10\n"
    )
    result = cli("train", run, "--config", config, "--json")
    assert result.code == 0, result.err
    assert result.json()["step"] == 5
    cli("train", run, "--config", config).assert_error("already exists", "--resume")
    cli("train", run, "--resume", "--batch-size", 16).assert_error("batch_size (16 here, 8 saved)")
    cli("train", run, "--resume", "--num-tracks", 10).assert_error("model.num_tracks")
    assert cli("train", run, "--resume", "--num-steps", 10, "--json").json()["step"] == 10
    assert cli("train", run, "--resume", "--json").json()["step"] == 10  # already finished
    cli("train", tmp_path / "other", "--db", tmp_path / "none.db").assert_error("no such database")
    cli("train", tmp_path / "other", "--config", config, "--num-tracks", 10).assert_error(
        "smaller than the vocabulary"
    )
    cli("train", tmp_path / "other", "--config", config, "--loss", "softest").assert_error(
        "loss.name"
    )
    cli("train", tmp_path / "x", "--coordinator-address", "localhost:1").assert_error("go together")
    assert not (tmp_path / "x").exists()


MULTI_DEVICE = """
import json, sys
from pathlib import Path
import jax
from trecs.config import TrainConfig
from trecs.train import train
config = TrainConfig.model_validate_json(sys.argv[2])
print(jax.device_count(), json.dumps(train(Path(sys.argv[1]), config)))
"""


def test_four_devices_give_the_loss_of_one(db, tmp_path):
    config = tiny(db, num_steps=3, log_every=1, eval_every=3, checkpoint_every=3)
    sharded = config.model_copy(update={"shard_table": True})
    results = {}
    for devices, settings in ((1, config), (4, config), ("4-sharded", sharded)):
        count = int(str(devices)[0])
        env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={count}"}
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                MULTI_DEVICE,
                str(tmp_path / str(devices)),
                settings.model_dump_json(),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        seen, record = out.stdout.strip().splitlines()[-1].split(" ", 1)
        assert int(seen) == count
        results[devices] = json.loads(record)
    for devices in (4, "4-sharded"):
        assert results[devices]["loss"] == pytest.approx(results[1]["loss"], rel=1e-4)
        assert results[devices]["valid_loss"] == pytest.approx(results[1]["valid_loss"], rel=1e-4)


def test_vocabulary_comes_from_train_only(db):
    vocab = build_vocabulary(db)
    conn = sqlite3.connect(db)
    train_tracks = {
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT m.track_id FROM playlist_track_memberships m JOIN split_memberships s "
            "ON s.playlist_id = m.playlist_id JOIN splits ON splits.id = s.split_id WHERE splits.name = 'train'"
        )
    }
    assert set(vocab.track_ids.tolist()) == train_tracks
    assert np.all(np.diff(vocab.counts[3:]) <= 0)  # most played first
    token_of = vocab.token_of()
    assert token_of[vocab.track_ids[0]] == 3


def playlist(tracks, title: str | None = None) -> dict:
    return {"tracks": np.asarray(tracks, np.int64), "title": title}


def test_windows_shape_and_pad_playlists():
    token_of = np.array([UNK, 3, 4, 5, 6, 7, 8, 9], np.int32)  # track id i -> token i + 2
    windows = Windows(token_of, context=4, unk_proba=0.0)
    rng = np.random.default_rng(0)
    short = windows.random_map(playlist([1, 2]), rng)
    assert short["inputs"].tolist() == [START, 3, 4, EOP]
    assert short["targets"].tolist() == [3, 4, EOP, EOP]
    long = windows.random_map(playlist(np.arange(1, 8)), rng)
    sequence = [START, 3, 4, 5, 6, 7, 8, 9, EOP]
    start = sequence.index(long["inputs"][0])
    assert long["inputs"].tolist() == sequence[start : start + 4]
    assert long["targets"].tolist() == sequence[start + 1 : start + 5]
    unknown = windows.random_map(playlist([1, 99]), rng)  # 99: not in the vocabulary
    assert unknown["inputs"].tolist()[:3] == [START, 3, UNK]
    noisy = Windows(token_of, context=4, unk_proba=1.0).random_map(playlist([1, 2, 3]), rng)
    assert noisy["targets"].tolist() == [UNK, UNK, UNK, EOP]


def test_windows_subsample_keeps_order_and_varies():
    token_of = np.arange(2, 102, dtype=np.int32)  # track id i -> token i + 2
    windows = Windows(token_of, context=200, unk_proba=0.0, subsample_proba=1.0)
    rng = np.random.default_rng(0)
    lengths = set()
    for _ in range(20):
        inputs = windows.random_map(playlist(np.arange(1, 100)), rng)["inputs"]
        tracks = inputs[(inputs != START) & (inputs != EOP)]
        assert len(tracks) >= 1 and np.all(np.diff(tracks) > 0)  # a subset, in order
        assert set(tracks.tolist()) <= set(range(3, 102))
        lengths.add(len(tracks))
    assert min(lengths) < 60 and max(lengths) > 80  # keep rates vary between playlists
    whole = Windows(token_of, context=200, unk_proba=0.0, subsample_proba=0.0)
    inputs = whole.random_map(playlist(np.arange(1, 100)), rng)["inputs"]
    assert len(inputs[(inputs != START) & (inputs != EOP)]) == 99
    empty = windows.random_map(playlist([]), rng)  # a hand-built empty playlist
    assert empty["inputs"][0] == START and empty["targets"][0] == EOP


def test_grain_workers_give_the_same_batches(db):
    vocab = build_vocabulary(db)
    source = TitledSource(db, "train")
    windows = Windows(vocab.token_of(), 10, 0.01, title_buckets=64, title_dropout=0.5)
    batches = {}
    for workers in (0, 1):
        iterator = iter(loader(source, windows, 8, seed=3, workers=workers))
        batches[workers] = [next(iterator) for _ in range(3)]
    for a, b in zip(batches[0], batches[1], strict=True):
        for name in ("inputs", "targets", "titles"):
            np.testing.assert_array_equal(a[name], b[name])


def test_readme_quality_config_loads():
    """The README's reproduce command trains from configs/trecs-q50k.toml."""
    from trecs.config import load_toml

    path = Path(__file__).parents[2] / "configs" / "trecs-q50k.toml"
    config = load_toml(path, TrainConfig)
    assert (config.model.num_layers, config.batch_size, config.subsample_proba) == (2, 32, 0.5)
    assert config.future_target_proba == 0.8
    assert config.loss.negatives() == 4096
    # Pinned as measured, before titles, biases, the mean readout and the SVD start.
    assert (config.model.title_buckets, config.model.output_bias) == (0, False)
    assert (config.model.readout, config.table_init) == ("last", "normal")


def test_windows_future_targets_come_from_later_in_the_playlist():
    token_of = np.arange(2, 102, dtype=np.int32)  # track id i -> token i + 2
    windows = Windows(token_of, context=8, unk_proba=0.0, future_target_proba=1.0)
    rng = np.random.default_rng(0)
    swapped = 0
    for _ in range(50):
        example = windows.random_map(playlist(np.arange(1, 21)), rng)  # tokens 3..22, <eop>
        inputs, targets = example["inputs"], example["targets"]
        for t in range(len(inputs) - 1):
            if inputs[t + 1] == EOP:  # the next item is <eop>: it stays the target
                assert targets[t] == EOP
            else:
                assert targets[t] > inputs[t] and targets[t] != EOP  # a later track
                swapped += targets[t] != inputs[t + 1]
    assert swapped > 100  # most targets moved beyond the next track
    short = windows.random_map(playlist([1, 2]), rng)  # padding keeps <eop> targets
    assert short["targets"].tolist()[1:] == [4] + [EOP] * 6


def test_title_tokens_share_a_normal_form():
    chill = title_tokens("Chill Vibes!! ", 1000)
    assert chill[0] > 0 and chill[1] > 0 and chill[2] > 0 and not chill[3:].any()
    np.testing.assert_array_equal(title_tokens("chill   vibes", 1000), chill)
    assert not np.array_equal(title_tokens("workout", 1000), chill)
    assert chill.max() < 1000
    for untitled in (title_tokens(None, 1000), title_tokens("", 1000), title_tokens("x", 0)):
        assert not untitled.any()
    long = title_tokens("one two three four five six seven eight nine", 1000)
    assert (long > 0).all()  # the whole title and its first seven words


def test_windows_hash_titles_and_drop_them_at_the_given_rate():
    token_of = np.arange(2, 12, dtype=np.int32)
    rng = np.random.default_rng(0)
    shown = Windows(token_of, context=4, unk_proba=0.0, title_buckets=64)
    titles = shown.random_map(playlist([1, 2], "Road Trip"), rng)["titles"]
    np.testing.assert_array_equal(titles, title_tokens("road trip", 64))
    for _ in range(20):  # a window without <start> carries no title
        window = shown.random_map(playlist(np.arange(1, 9), "Road Trip"), rng)
        assert window["titles"].any() == (window["inputs"][0] == START)
    hidden = Windows(token_of, 4, 0.0, title_buckets=64, title_dropout=0.5)
    kept = [
        hidden.random_map(playlist([1, 2], "Road Trip"), rng)["titles"].any() for _ in range(400)
    ]
    assert 0.4 < np.mean(kept) < 0.6


def test_split_matrix_is_the_playlists_tracks(db):
    vocab = build_vocabulary(db)
    token_of = vocab.token_of()
    source = PlaylistSource(db, "train")
    expected = playlist_matrix([token_of[source[i]] for i in range(len(source))], len(vocab))
    got = split_matrix(db, "train", token_of, len(vocab))
    assert got.shape == expected.shape
    assert (got != expected).nnz == 0


def test_svd_vectors_recover_co_occurrence():
    """Two groups of tracks that never share a playlist: vectors within a group align,
    across groups they are orthogonal, and dot products are the scaled co-occurrences
    when the rank suffices."""
    rng = np.random.default_rng(0)
    dense = np.zeros((60, 20), np.float32)
    dense[:30, :10] = rng.random((30, 10)) < 0.5
    dense[30:, 10:] = rng.random((30, 10)) < 0.5
    dense[0, :10] = dense[30, 10:] = 1  # every track played
    vectors = svd_vectors(sp.csr_matrix(dense), rank=20, seed=0)
    scaled = dense / np.sqrt(dense.sum(1, keepdims=True)) / np.sqrt(dense.sum(0, keepdims=True))
    np.testing.assert_allclose(vectors @ vectors.T, scaled.T @ scaled, atol=1e-4)
    two = svd_vectors(sp.csr_matrix(dense), rank=2, seed=0)
    cosine = (two / np.linalg.norm(two, axis=1, keepdims=True)) @ (
        two / np.linalg.norm(two, axis=1, keepdims=True)
    ).T
    assert cosine[:10, :10].min() > 0.9 and np.abs(cosine[:10, 10:]).max() < 0.1
    assert svd_vectors(sp.csr_matrix(dense[:3]), rank=8, seed=0).shape == (20, 8)


def test_the_table_starts_from_co_occurrence(db, tmp_path):
    """Step 0 has learning rate 0 (warm-up), so the first checkpoint holds the initial
    table: track rows are the scaled SVD vectors, special rows random."""
    run = tmp_path / "run"
    train(run, tiny(db, num_steps=1, checkpoint_every=1, log_every=1, eval_every=1))
    trained = load_run(run)
    vocab = build_vocabulary(db)
    matrix = split_matrix(db, "train", vocab.token_of(), len(vocab))
    vectors = svd_vectors(matrix[:, NUM_SPECIAL:], TINY.features, seed=0)
    rows = np.asarray(trained.table)[NUM_SPECIAL : len(vocab)]
    # Each track row points where its SVD vector points, at the random rows' mean norm.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    played = norms[:, 0] > 0
    np.testing.assert_allclose(
        rows[played] / np.linalg.norm(rows[played], axis=1, keepdims=True),
        vectors[played] / norms[played],
        atol=1e-5,
    )
    mean_norm = np.sqrt(np.mean(np.sum(rows**2, axis=1)))
    assert mean_norm == pytest.approx(0.02 * np.sqrt(TINY.features), rel=0.1)
    assert not np.asarray(trained.bias).any()


LEGACY = {
    "model": {"title_buckets": 0, "output_bias": False, "readout": "last"},
    "title_dropout": 0.0,
    "table_init": "normal",
}


def test_runs_saved_before_titles_load_and_resume_as_trained(cli, db, tmp_path):
    """A config.json without the fields that came with titles: the run loads and resumes
    without them rather than with today's defaults."""
    run = tmp_path / "run"
    train(run, tiny(db, num_steps=10, **LEGACY))
    saved = json.loads((run / "config.json").read_text())
    for field in LEGACY["model"]:
        del saved["model"][field]
    del saved["title_dropout"], saved["table_init"]
    (run / "config.json").write_text(json.dumps(saved))
    trained = load_run(run)
    assert trained.config.model.title_buckets == 0 and trained.bias is None
    assert trained.config.table_init == "normal"
    assert cli("train", run, "--resume", "--num-steps", 15, "--json").json()["step"] == 15
