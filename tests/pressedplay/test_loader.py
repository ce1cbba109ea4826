"""The training input pipeline: pairs per split, standardised targets, reproducible epochs."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from contextlib import closing

import numpy as np
import pytest
import torch
from PIL import Image

from pressedplay import augment
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import CoverPairs, EpochSampler, load_image, make_loader
from pressedplay.synth_covers import synth_covers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "s.db"
    report = synth_covers(path, covers=20, tracks_per_cover=3, seed=2, catalog_name=None)
    assert all(report["splits"][split]["covers"] for split in ("train", "valid", "test"))
    return path


def _query(db, sql, *args):
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def _batches(loader):
    return [(images.clone(), targets.clone(), ids.clone()) for images, targets, ids in loader]


def _same(a, b):
    return len(a) == len(b) and all(
        torch.equal(x, y)
        for batch_a, batch_b in zip(a, b, strict=True)
        for x, y in zip(batch_a, batch_b, strict=True)
    )


def test_one_example_per_pair_of_the_split(db):
    for split in ("train", "valid", "test"):
        pairs = CoverPairs(db, split, augment=False)
        expected = _query(
            db, "SELECT COUNT(*) FROM pairs JOIN covers ON id = cover_id WHERE split = ?", split
        )[0][0]
        assert len(pairs) == expected
        ids = {int(c) for c in pairs.cover_ids}
        assert ids == {row[0] for row in _query(db, "SELECT id FROM covers WHERE split = ?", split)}


def test_examples_are_normalised_images_with_standardised_targets(db):
    pairs = CoverPairs(db, "train", augment=False)
    stats = dict(
        (name, (mean, std)) for name, mean, std in _query(db, "SELECT * FROM feature_stats")
    )
    image, target, cover_id = pairs[4]
    assert image.dtype == torch.float32 and image.shape == (3, 128, 128)
    assert target.dtype == torch.float32 and target.shape == (8,)
    tracks = _query(
        db,
        f"SELECT {', '.join(NAMES)} FROM tracks JOIN pairs ON track_id = id WHERE cover_id = ?",
        cover_id,
    )
    standardised = [
        [
            (value - stats[name][0]) / stats[name][1]
            for name, value in zip(NAMES, track, strict=True)
        ]
        for track in tracks
    ]
    assert any(np.allclose(target.numpy(), row, atol=1e-5) for row in standardised)
    data = _query(db, "SELECT image FROM covers WHERE id = ?", cover_id)[0][0]
    assert torch.equal(image, augment.eval_transform()(load_image(data)))
    # Over the whole train split the targets are standardised: mean 0, std 1.
    targets = np.stack([pairs[i][1].numpy() for i in range(len(pairs))])
    assert np.allclose(targets.mean(axis=0), 0, atol=1e-4)
    assert np.allclose(targets.std(axis=0), 1, atol=1e-3)


def test_epochs_are_fresh_and_reproducible(db):
    first = make_loader(db, "train", batch_size=8, workers=0, seed=3)
    epoch0, epoch1 = _batches(first), _batches(first)
    again = make_loader(db, "train", batch_size=8, workers=0, seed=3)
    assert _same(_batches(again), epoch0)
    assert _same(_batches(again), epoch1)
    assert not torch.equal(epoch0[0][0], epoch1[0][0])
    assert not torch.equal(epoch0[0][2], epoch1[0][2])  # reshuffled
    other = make_loader(db, "train", batch_size=8, workers=0, seed=4)
    assert not _same(_batches(other), epoch0)
    resumed = make_loader(db, "train", batch_size=8, workers=0, seed=3)
    resumed.sampler.set_epoch(1)
    assert _same(_batches(resumed), epoch1)


def test_the_same_epoch_whatever_the_workers_and_batch_size(db):
    alone = _batches(make_loader(db, "valid", batch_size=4, workers=0, seed=1))
    pooled = _batches(make_loader(db, "valid", batch_size=4, workers=2, seed=1))
    assert _same(alone, pooled)
    whole = _batches(make_loader(db, "valid", batch_size=100, workers=0, seed=1))
    assert torch.equal(torch.cat([b[0] for b in alone]), whole[0][0])


def test_augmentation_changes_images_but_not_targets(db):
    plain = CoverPairs(db, "train", augment=False)
    distorted = CoverPairs(db, "train", augment=True)
    assert torch.equal(plain[0][1], distorted[0][1])
    assert not torch.equal(plain[0][0], distorted[0][0])
    assert torch.equal(distorted[(2, 0)][0], distorted[(2, 0)][0])
    assert not torch.equal(distorted[(2, 0)][0], distorted[(3, 0)][0])


def test_leaves_the_callers_generator_alone(db):
    pairs = CoverPairs(db, "train")
    state = torch.get_rng_state()
    pairs[(0, 1)]
    assert torch.equal(torch.get_rng_state(), state)


def test_unshuffled_order_and_sampler_length():
    sampler = EpochSampler(5, shuffle=False)
    assert list(sampler) == [(0, i) for i in range(5)]
    assert list(sampler) == [(1, i) for i in range(5)]
    shuffled = EpochSampler(50, seed=0)
    assert len(shuffled) == 50
    assert sorted(i for _, i in shuffled) == list(range(50))


def test_bad_input(db, tmp_path):
    with pytest.raises(UserError, match="unknown split"):
        CoverPairs(db, "training")
    with pytest.raises(UserError, match="no such dataset"):
        make_loader(tmp_path / "missing.db", "train")


def _jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def test_load_image_draft_decode_matches_a_full_decode():
    y, x = np.mgrid[0:512, 0:512]
    pixels = np.stack([x / 2, y / 2, (x + y) / 4], axis=2).astype(np.uint8)
    data = _jpeg(Image.fromarray(pixels))
    fast = np.asarray(load_image(data, 128), dtype=np.float64)
    full = Image.open(io.BytesIO(data)).convert("RGB").resize((128, 128), Image.Resampling.BOX)
    assert fast.shape == (128, 128, 3)
    assert np.abs(fast - np.asarray(full, dtype=np.float64)).mean() < 3


def test_load_image_handles_exif_rotation_alpha_and_greyscale():
    # Red left half, blue right half, stored with "rotate 90 degrees clockwise to view".
    sideways = Image.new("RGB", (64, 32), "red")
    sideways.paste(Image.new("RGB", (32, 32), "blue"), (32, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = np.asarray(load_image(_jpeg(sideways, exif=exif), 16), dtype=int)
    assert upright[1, 8, 0] > 200 and upright[1, 8, 2] < 60  # red on top
    assert upright[14, 8, 2] > 200 and upright[14, 8, 0] < 60  # blue below
    buffer = io.BytesIO()
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(buffer, "PNG")
    assert np.asarray(load_image(buffer.getvalue(), 8)).min() == 255  # over white
    grey = np.asarray(load_image(_jpeg(Image.new("L", (40, 40), 100)), 8), dtype=int)
    assert grey.shape == (8, 8, 3) and np.abs(grey - 100).max() <= 2


def test_the_cover_cache_changes_no_example_and_stays_bounded(db, monkeypatch):
    uncached = make_loader(db, "train", batch_size=8, workers=0, seed=5, cache_mb=0)
    expected = [_batches(uncached), _batches(uncached)]
    for cache_mb in (100, 0.1):  # every cover fits; two covers fit (evicting)
        for workers in (0, 2):
            cached = make_loader(
                db, "train", batch_size=8, workers=workers, seed=5, cache_mb=cache_mb
            )
            assert _same(_batches(cached), expected[0])
            assert _same(_batches(cached), expected[1])
    # Undistorted, a cached cover is exactly the decoded one, and each is decoded once.
    decoded = []
    monkeypatch.setattr(
        "pressedplay.loader.load_image",
        lambda data, size: decoded.append(data) or load_image(data, size),
    )
    plain = CoverPairs(db, "train", augment=False)
    first = [plain[i][0] for i in range(len(plain))]
    assert len(decoded) == len(set(plain.cover_ids.tolist())) < len(plain)
    assert all(torch.equal(plain[i][0], first[i]) for i in range(len(plain)))
    assert len(decoded) == len(set(plain.cover_ids.tolist()))
    small = CoverPairs(db, "train", augment=False, cache_mb=0.1)
    for i in range(len(small)):
        assert torch.equal(small[i][0], first[i])
        assert len(small._cache) <= 2 and small._cached <= 0.1 * 2**20


def test_cover_targets_are_one_example_per_cover_with_the_mean_target(db):
    pairs = CoverPairs(db, "train", augment=False)
    covers = CoverPairs(db, "train", augment=False, targets="cover")
    ids = sorted({int(c) for c in pairs.cover_ids})
    assert covers.cover_ids.tolist() == ids and len(covers) == len(ids) < len(pairs)
    for index, cover_id in enumerate(ids):
        mine = pairs.targets[pairs.cover_ids == cover_id]
        assert np.allclose(covers.targets[index], mine.mean(axis=0), atol=1e-6)
        image, target, got = covers[index]
        assert got == cover_id and torch.equal(target, torch.from_numpy(covers.targets[index]))
        assert torch.equal(image, pairs[int(np.flatnonzero(pairs.cover_ids == cover_id)[0])][0])
    # The same squared-error minimiser: over a cover's pairs, the best constant is the mean.
    first = pairs.targets[pairs.cover_ids == ids[0]]
    errors = [((first - c) ** 2).sum() for c in (covers.targets[0], covers.targets[0] + 0.01)]
    assert errors[0] < errors[1]
    with pytest.raises(UserError, match="unknown targets"):
        CoverPairs(db, "train", targets="tracks")


def test_each_rank_takes_an_equal_share_of_the_same_epoch():
    alone = EpochSampler(11, seed=4)
    order = [index for _, index in alone]
    shards = [EpochSampler(11, seed=4, rank=rank, world=3) for rank in range(3)]
    keys = [list(shard) for shard in shards]
    assert [len(shard) for shard in shards] == [len(k) for k in keys] == [3, 3, 3]
    assert all(epoch == 0 for k in keys for epoch, _ in k)
    for rank in range(3):
        assert [index for _, index in keys[rank]] == order[:9][rank::3]
    # Each epoch drops the tail of its own order: over epochs, every example is seen.
    seen = {index for _ in range(6) for shard in shards for _, index in shard}
    assert seen == set(range(11))
    # Validation keeps every key once, in slightly unequal shares.
    uneven = [EpochSampler(11, shuffle=False, rank=r, world=3, even=False) for r in range(3)]
    assert [len(s) for s in uneven] == [4, 4, 3]
    assert sorted(i for s in uneven for _, i in s) == list(range(11))
    with pytest.raises(ValueError, match="rank 3"):
        EpochSampler(11, rank=3, world=3)


def test_sharded_loaders_split_the_batches_of_one_epoch(db):
    whole = make_loader(db, "train", batch_size=100, workers=0, seed=6, targets="cover")
    (images, targets, ids), *_ = _batches(whole)
    kept = len(ids) - len(ids) % 2
    for rank in range(2):
        shard = make_loader(
            db, "train", batch_size=100, workers=0, seed=6, targets="cover", rank=rank, world=2
        )
        (mine, mine_targets, mine_ids), *_ = _batches(shard)
        assert torch.equal(mine_ids, ids[:kept][rank::2])
        assert torch.equal(mine, images[:kept][rank::2])
        assert torch.equal(mine_targets, targets[:kept][rank::2])


def test_iterating_a_loader_leaves_the_global_generator_alone(db):
    for workers in (0, 2):
        loader = make_loader(db, "valid", batch_size=4, workers=workers, seed=1)
        state = torch.get_rng_state()
        _batches(loader)
        _batches(loader)
        assert torch.equal(torch.get_rng_state(), state)


def test_workers_are_not_forked_from_a_process_running_jax():
    """Forking a process with JAX's threads can deadlock: such a process gets a forkserver."""
    script = (
        "import sys\n"
        "from pressedplay.loader import worker_context\n"
        "before = worker_context(2)\n"
        "import jax\n"
        "after = worker_context(2)\n"
        "print(before is None, after.get_start_method(), worker_context(0) is None)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["True", "forkserver", "True"]
