"""The nine distortions (torchvision v2), the train/eval transforms, and --materialize."""

from __future__ import annotations

import io
import sqlite3
from contextlib import closing

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from pressedplay import augment, images
from pressedplay.errors import UserError
from pressedplay.synth_covers import synth_covers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def cover() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))


def _tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)


def test_nine_distortions_each_with_probability_p():
    steps = [
        t
        for t in augment.distortions(0.5).transforms
        if not isinstance(t, v2.PILToTensor | v2.Lambda)
    ]
    assert len(steps) == 9
    assert all(step.p == 0.5 for step in steps)
    inner = [step.transforms[0] if isinstance(step, v2.RandomApply) else step for step in steps]
    kinds = [type(t).__name__ for t in inner]
    assert kinds == [
        "RandomRotation",
        "RandomHorizontalFlip",
        "RandomVerticalFlip",
        "RandomAffine",
        "ColorJitter",
        "ColorJitter",
        "GaussianNoise",
        "RandomChoice",
        "RandomAdjustSharpness",
    ]
    assert inner[0].degrees == [-10.0, 10.0]
    assert inner[3].scale == (0.8, 1.2)
    assert (inner[4].brightness, inner[4].contrast) == ((0.7, 1.3), (0.7, 1.3))
    assert inner[5].saturation == (0.7, 1.3)
    assert inner[5].hue == pytest.approx((-10 / 180, 10 / 180))
    assert inner[6].sigma == pytest.approx(15 / 255)
    assert [blur.kernel_size for blur in inner[7].transforms] == [(k, k) for k in (3, 5, 7, 9)]
    assert inner[8].sharpness_factor == 2.0


@pytest.mark.parametrize("as_tensor", [False, True])
def test_p_zero_is_identity_p_one_distorts(cover, as_tensor):
    image = _tensor(cover) if as_tensor else cover
    unchanged = augment.distortions(p=0.0)(image)
    assert unchanged.dtype == torch.uint8 and unchanged.shape == (3, 48, 64)
    assert torch.equal(unchanged, _tensor(cover))
    torch.manual_seed(0)
    distorted = augment.distortions(p=1.0)(image)
    assert distorted.dtype == torch.uint8 and distorted.shape == (3, 48, 64)
    assert (distorted.int() - _tensor(cover).int()).abs().float().mean() > 10


def test_geometric_distortions_keep_the_colours():
    """Training's default: rotation, flips and zoom move pixels but never recolour them,
    so a cover's colours (its mood) survive; the full set recolours a flat image."""
    flat = Image.new("RGB", (64, 64), (200, 90, 40))
    geometric = augment.distortions(p=1.0, kinds="geometric")
    everything = augment.distortions(p=1.0)
    kinds = {type(t).__name__ for t in geometric.transforms}
    assert not kinds & {"ColorJitter", "GaussianNoise", "RandomAdjustSharpness"}
    changed = 0
    for seed in range(5):
        torch.manual_seed(seed)
        centre = geometric(flat)[:, 24:40, 24:40]
        assert (centre == torch.tensor([200, 90, 40]).view(3, 1, 1)).all()
        torch.manual_seed(seed)
        changed += not (everything(flat)[:, 24:40, 24:40] == centre).all()
    assert changed == 5
    with pytest.raises(ValueError, match="kinds"):
        augment.distortions(kinds="colour")


def test_about_half_the_distortions_apply(cover):
    """With p=0.5 an image is left as it was about 1 time in 2**9."""
    transform = augment.distortions()
    torch.manual_seed(1)
    changed = [not torch.equal(transform(cover), _tensor(cover)) for _ in range(200)]
    assert sum(changed) >= 195
    flips = v2.RandomHorizontalFlip(p=0.5)
    torch.manual_seed(2)
    flipped = sum(not torch.equal(flips(_tensor(cover)), _tensor(cover)) for _ in range(400))
    assert 150 < flipped < 250


def test_train_transform_is_seeded_and_normalised(cover):
    transform = augment.train_transform()
    torch.manual_seed(5)
    first = transform(cover)
    torch.manual_seed(5)
    again = transform(cover)
    torch.manual_seed(6)
    other = transform(cover)
    assert first.dtype == torch.float32 and first.shape == (3, 48, 64)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_eval_transform_only_normalises(cover):
    out = augment.eval_transform()(cover)
    expected = (_tensor(cover).float() / 255 - torch.tensor(augment.MEAN)[:, None, None]) / (
        torch.tensor(augment.STD)[:, None, None]
    )
    assert torch.allclose(out, expected, atol=1e-5)


@pytest.fixture
def small_db(tmp_path):
    db = tmp_path / "s.db"
    synth_covers(db, covers=6, tracks_per_cover=2, seed=1, catalog_name=None)
    return db


def _covers(db):
    with closing(sqlite3.connect(db)) as conn:
        covers = conn.execute(
            "SELECT id, origin, split, image, width, height FROM covers"
        ).fetchall()
        pairs = {}
        for cover_id, track_id in conn.execute("SELECT cover_id, track_id FROM pairs"):
            pairs.setdefault(cover_id, set()).add(track_id)
    return covers, pairs


def test_materialize_adds_k_copies_in_the_same_split_with_the_same_pairs(small_db):
    before, pairs_before = _covers(small_db)
    report = augment.materialize(small_db, 2, seed=0)
    assert report == {"covers": 6, "copies": 12, "duplicates": 0, "k": 2}
    after, pairs_after = _covers(small_db)
    assert len(after) == 18
    originals = {origin: (cover_id, split, data) for cover_id, origin, split, data, _, _ in before}
    for cover_id, origin, split, data, width, height in after:
        source = origin.split("#distorted")[0]
        source_id, source_split, source_data = originals[source]
        assert split == source_split
        assert pairs_after[cover_id] == pairs_before[source_id]
        image = images.decode(data)
        assert Image.open(io.BytesIO(data)).format == "JPEG"
        assert image.size == (width, height) == (256, 256)
        if cover_id != source_id:
            assert data != source_data
    with closing(sqlite3.connect(small_db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'materialized'").fetchone()[0] == (
            '{"k": 2, "seed": 0}'
        )
    assert sorted(p.name for p in small_db.parent.iterdir()) == ["s.db"]


def test_materialize_is_reproducible_per_seed(tmp_path):
    for name in ("a", "b", "c"):
        synth_covers(tmp_path / f"{name}.db", covers=3, tracks_per_cover=1, catalog_name=None)
    augment.materialize(tmp_path / "a.db", 1, seed=4)
    augment.materialize(tmp_path / "b.db", 1, seed=4)
    augment.materialize(tmp_path / "c.db", 1, seed=5)
    images_of = {name: [c[3] for c in _covers(tmp_path / f"{name}.db")[0]] for name in "abc"}
    assert images_of["a"] == images_of["b"]
    assert images_of["a"] != images_of["c"]


def test_materialize_once_only_and_bad_input(small_db, tmp_path):
    with pytest.raises(UserError, match="K >= 1"):
        augment.materialize(small_db, 0)
    with pytest.raises(UserError, match="no such dataset"):
        augment.materialize(tmp_path / "missing.db", 1)
    (tmp_path / "text.db").write_text("not sqlite")
    with pytest.raises(UserError, match="not a sqlite database"):
        augment.materialize(tmp_path / "text.db", 1)
    augment.materialize(small_db, 1)
    with pytest.raises(UserError, match="already holds materialized copies"):
        augment.materialize(small_db, 1)
    assert len(_covers(small_db)[0]) == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db", "text.db"]


def test_an_interrupted_materialize_leaves_the_dataset_as_it_was(small_db):
    original = small_db.read_bytes()

    def interrupt(n):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        augment.materialize(small_db, 2, progress=interrupt)
    assert small_db.read_bytes() == original
    assert sorted(p.name for p in small_db.parent.iterdir()) == ["s.db"]
