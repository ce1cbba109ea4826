"""The training input pipeline: (cover image, standardised features) examples from a dataset.

One cover has many tracks. With targets="pairs" each (cover, track) pair is one example:
the same image with each of its targets, as the original trained. With targets="cover"
each cover is one example whose target is the mean of its tracks' targets: the squared
error has the same minimiser (the mean), and an epoch is as many times shorter as covers
have tracks. Images are decoded straight at reduced size, squashed to size x size, then
distorted (fresh each epoch) and normalised. The squashed, undistorted covers are kept
in a bounded per-process cache, so a cover is decoded once per worker rather than once
per pair and per epoch. Each example's distortions are drawn from a generator seeded by
(seed, epoch, index), so an epoch is reproducible whatever the number of workers, batch
size or resume point.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from pressedplay import images
from pressedplay.augment import Distortions, distortions, normalise, to_tensor
from pressedplay.dataset import SPLITS, connect_readonly
from pressedplay.errors import UserError
from pressedplay.features import NAMES

CACHE_MB = 256  # per process: 5,461 covers at 128 px (48 KiB each)
TARGETS = ("pairs", "cover")
Targets = Literal["pairs", "cover"]


def load_image(data: bytes, size: int = 128) -> Image.Image:
    """Encoded image bytes -> RGB image of size x size, or ImageError.

    The validating decode of `images.decode`, with JPEGs in draft mode (the decoder's DCT
    scaling, straight to the smallest scale still >= size), which is most of the
    pipeline's speed. The image is squashed to size x size before any distortion, so the
    distortions work on small tensors.
    """
    image = images.decode(data, draft=(size, size))
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=2.0)


_MASK = (1 << 64) - 1


def mixed_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from small integers (splitmix64), cheap per example."""
    state = 0
    for part in parts:
        state = (state + part + 0x9E3779B97F4A7C15) & _MASK
        state = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        state = ((state ^ (state >> 27)) * 0x94D049BB133111EB) & _MASK
        state ^= state >> 31
    return state >> 1


class CoverPairs(Dataset):
    """The examples of one split: (image, target, cover_id) per example.

    image: float32 (3, size, size), normalised with augment.MEAN/STD (or, with
    normalise=False, the uint8 image, for loaders that normalise whole batches); target:
    float32 (8,), the track's features in NAMES order standardised with the dataset's
    feature_stats (targets="pairs": one example per (cover, track) pair, ordered by cover
    then track), or the mean of them over the cover's tracks (targets="cover": one
    example per cover, ordered by cover). Indexed by int (epoch 0) or by (epoch, index)
    from EpochSampler.
    The sqlite connection opens lazily in each process that reads, so the dataset can
    be handed to DataLoader workers.

    Each process (each worker) keeps the squashed, undistorted covers it has decoded,
    least recently used first out, up to `cache_mb` MiB of pixels (0: no cache). A cover
    is a pure function of its bytes and `size`, and the distortions are drawn afresh per
    example, so the cache changes only the speed, never an example.
    """

    def __init__(
        self,
        db: Path,
        split: str,
        *,
        size: int = 128,
        augment: bool = True,
        seed: int = 0,
        normalise: bool = True,
        cache_mb: float = CACHE_MB,
        targets: Targets = "pairs",
        distortion: Distortions = "all",
    ) -> None:
        if split not in (*SPLITS, "all"):
            raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)} or all.")
        if targets not in TARGETS:
            raise UserError(f"unknown targets {targets!r}; choose one of {', '.join(TARGETS)}.")
        self.db = Path(db)
        self.size = size
        self.augment = augment
        self.seed = seed
        with closing(connect_readonly(self.db)) as conn:
            self.mean, self.std = _feature_stats(conn, self.db)
            columns = ", ".join(f"t.{name}" for name in NAMES)
            rows = conn.execute(
                f"SELECT p.cover_id, {columns} FROM pairs p "
                "JOIN covers c ON c.id = p.cover_id JOIN tracks t ON t.id = p.track_id "
                f"{'' if split == 'all' else 'WHERE c.split = ? '}ORDER BY p.cover_id, p.track_id",
                () if split == "all" else (split,),
            ).fetchall()
        cover_ids = np.array([row[0] for row in rows], dtype=np.int64)
        features = np.array([row[1:] for row in rows], dtype=np.float64).reshape(-1, len(NAMES))
        standardised = (features - self.mean) / self.std
        if targets == "cover":
            cover_ids, which, tracks = np.unique(cover_ids, return_inverse=True, return_counts=True)
            sums = np.zeros((len(cover_ids), len(NAMES)))
            np.add.at(sums, which, standardised)
            standardised = sums / tracks[:, None]
        self.cover_ids = cover_ids
        self.targets = standardised.astype(np.float32)
        self.transform = distortions(kinds=distortion) if augment else to_tensor()
        self.normalised = normalise
        self.cache_bytes = int(cache_mb * 2**20)
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached = 0  # bytes held in _cache

    def __len__(self) -> int:
        return len(self.cover_ids)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        cover_id = int(self.cover_ids[index])
        image = self._cover(cover_id)
        if self.augment:
            # v2 transforms draw from torch's global CPU generator. torch.manual_seed
            # would also queue seeds for every accelerator (slow, per example), so only
            # the CPU generator is seeded; in the caller's own process it is put back.
            generator = torch.default_generator
            saved = generator.get_state() if get_worker_info() is None else None
            generator.manual_seed(mixed_seed(self.seed, epoch, index))
            try:
                image = self.transform(image)
            finally:
                if saved is not None:
                    generator.set_state(saved)
        else:
            image = self.transform(image)
        if self.normalised:
            image = normalise(image)
        return image, torch.from_numpy(self.targets[index]), cover_id

    def _cover(self, cover_id: int) -> Image.Image:
        """The cover squashed to size x size, undistorted: from the cache or decoded."""
        pixels = self._cache.get(cover_id)
        if pixels is not None:
            self._cache.move_to_end(cover_id)
            return Image.frombytes("RGB", (self.size, self.size), pixels)
        image = load_image(self._image(cover_id), self.size)
        if self.cache_bytes:
            pixels = image.tobytes()
            self._cache[cover_id] = pixels
            self._cached += len(pixels)
            while self._cached > self.cache_bytes:
                self._cached -= len(self._cache.popitem(last=False)[1])
        return image

    def _image(self, cover_id: int) -> bytes:
        if self._pid != os.getpid():  # first read in this process (a fresh worker)
            self._conn = connect_readonly(self.db)
            self._pid = os.getpid()
        row = self._conn.execute("SELECT image FROM covers WHERE id = ?", (cover_id,)).fetchone()
        return row[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_conn": None, "_pid": -1, "_cache": OrderedDict(), "_cached": 0}


class EpochSampler(Sampler):
    """Yields (epoch, index) keys; each pass over it is the next epoch.

    The order (when shuffled) and CoverPairs' distortions are both drawn from
    (seed, epoch), so epoch e is the same in every run; `set_epoch` jumps to an epoch,
    e.g. when resuming training.

    With world > 1 (DDP), process `rank` takes order[rank::world] of the same epoch
    order. even=True (training) first drops the epoch's last n % world keys, so that
    every process runs the same number of steps, which DDP's gradient averaging needs;
    a different tail is dropped each shuffled epoch. even=False (validation) keeps every
    key once.
    """

    def __init__(
        self,
        n: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        rank: int = 0,
        world: int = 1,
        even: bool = True,
    ) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in a world of {world} processes")
        self.n = n
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.kept = n - n % world if even else n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(range(self.rank, self.kept, self.world))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            generator = torch.Generator().manual_seed(mixed_seed(self.seed, epoch))
            order = torch.randperm(self.n, generator=generator).tolist()
        else:
            order = range(self.n)
        return ((epoch, index) for index in order[self.rank : self.kept : self.world])


class CoverLoader(DataLoader):
    """A DataLoader whose workers send uint8 batches, normalised here on arrival.

    A float32 image is four times the bytes of a uint8 one: normalising whole batches
    after the hand-over from the workers is cheaper than sending floats through shared
    memory, and no randomness is involved, so nothing per image is lost.
    """

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for batch, targets, cover_ids in super().__iter__():
            yield normalise(batch), targets, cover_ids

    def worker_pids(self) -> list[int] | None:
        """Process ids of the persistent workers, so that a benchmark can count their CPU
        time; None while no worker pool is alive (no workers, or before the first epoch)."""
        workers = getattr(self._iterator, "_workers", None)
        return None if workers is None else [worker.pid for worker in workers]


def make_loader(
    db: Path,
    split: str,
    *,
    batch_size: int = 64,
    workers: int = 2,
    augment: bool = True,
    seed: int = 0,
    shuffle: bool = True,
    size: int = 128,
    cache_mb: float = CACHE_MB,
    targets: Targets = "pairs",
    distortion: Distortions = "all",
    rank: int = 0,
    world: int = 1,
    even: bool = True,
) -> CoverLoader:
    """Batches of (images, targets, cover_ids), as CoverPairs; each iteration is an epoch.

    Persistent workers keep their cover caches (`cache_mb` MiB each) from epoch to epoch.
    `rank`, `world` and `even` shard each epoch over DDP processes (see EpochSampler).

    `loader.sampler.set_epoch(e)` picks the epoch the next iteration yields. The loader
    draws its workers' base seed from a generator of its own: from torch's global one,
    each new iterator would shift the caller's random stream, and a resumed training run
    (whose iterator starts later) would draw different noise from an uninterrupted one.
    """
    pairs = CoverPairs(
        db,
        split,
        size=size,
        augment=augment,
        seed=seed,
        normalise=False,
        cache_mb=cache_mb,
        targets=targets,
        distortion=distortion,
    )
    return CoverLoader(
        pairs,
        batch_size=batch_size,
        sampler=EpochSampler(
            len(pairs), seed=seed, shuffle=shuffle, rank=rank, world=world, even=even
        ),
        num_workers=workers,
        persistent_workers=workers > 0,
        multiprocessing_context=worker_context(workers),
        generator=torch.Generator().manual_seed(seed),
    )


def worker_context(workers: int) -> multiprocessing.context.BaseContext | None:
    """Workers are forked (fastest), except from a process in which JAX already runs its
    threads (trecs in the same notebook or test session): forking that can deadlock, so
    they then come from a fresh forkserver process instead."""
    if workers > 0 and "jax" in sys.modules:
        return multiprocessing.get_context("forkserver")
    return None


def _feature_stats(conn: sqlite3.Connection, db: Path) -> tuple[np.ndarray, np.ndarray]:
    stats = {
        name: (mean, std)
        for name, mean, std in conn.execute("SELECT feature, mean, std FROM feature_stats")
    }
    missing = [name for name in NAMES if name not in stats]
    if missing:
        raise UserError(f"{db} has no feature statistics for {', '.join(missing)}.")
    mean = np.array([stats[name][0] for name in NAMES])
    std = np.array([stats[name][1] for name in NAMES])
    return mean, std
