"""The original pressedplay's nine image distortions, built from torchvision.transforms.v2.

They run online in the training DataLoader (fresh draws every epoch) on covers already
shrunk to 128 px, which is what makes the input pipeline fast; `materialize` instead stores K
distorted copies per cover, the original's offline scheme, for anyone who wants it.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from hashlib import sha256
from pathlib import Path
from typing import Literal

import torch
from PIL import Image
from torchvision.transforms import v2

from pressedplay import images
from pressedplay.dataset import connect_readonly
from pressedplay.errors import UserError

# ImageNet statistics: the usual normalisation for convolutional image encoders.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
_SCALE = torch.tensor([1 / (255 * s) for s in STD]).view(3, 1, 1)
_SHIFT = torch.tensor([m / s for m, s in zip(MEAN, STD, strict=True)]).view(3, 1, 1)

BLUR_KERNELS = (3, 5, 7, 9)
MATERIALIZED_KEY = "materialized"


def _opencv_sigma(kernel: int) -> float:
    """The sigma OpenCV derives from a kernel size, as the original's cv2 blur used."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def _contiguous(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.contiguous()


Distortions = Literal["all", "geometric"]


def distortions(p: float = 0.5, kinds: Distortions = "all") -> v2.Transform:
    """The nine distortions (or, with kinds="geometric", only rotation, flips and zoom),
    each applied independently with probability `p`.

    Colour jitter, noise, blur and sharpening change the very cues (hue, lightness,
    saturation, contrast, texture) that carry a cover's mood, so for feature prediction
    they corrupt the label as much as the image; training uses "geometric" by default.

    Takes a PIL RGB image (or a uint8 tensor) and returns a uint8 tensor (3, H, W).
    Geometry and colour run on the PIL image, where Pillow's C code is several times
    faster than torchvision's tensor kernels at cover sizes (a 128 px rotation: 0.05 ms
    against 0.3 ms); noise, blur and sharpening then run on the tensor. Rotated and
    zoomed-out corners are filled with black, as the original's were.
    """
    if kinds not in ("all", "geometric"):
        raise ValueError(f"kinds must be 'all' or 'geometric', not {kinds!r}")
    geometric = [
        v2.RandomApply([v2.RandomRotation(10)], p=p),
        v2.RandomHorizontalFlip(p=p),
        v2.RandomVerticalFlip(p=p),
        # Zoom 0.8-1.2 about the centre, cropped back to the same size.
        v2.RandomApply([v2.RandomAffine(degrees=0, scale=(0.8, 1.2))], p=p),
    ]
    if kinds == "geometric":
        return v2.Compose([*geometric, *to_tensor().transforms])
    return v2.Compose(
        [
            *geometric,
            v2.RandomApply([v2.ColorJitter(brightness=(0.7, 1.3), contrast=(0.7, 1.3))], p=p),
            v2.RandomApply([v2.ColorJitter(saturation=(0.7, 1.3), hue=10 / 180)], p=p),
            *to_tensor().transforms,
            v2.RandomApply([v2.GaussianNoise(sigma=15 / 255)], p=p),
            v2.RandomApply(
                [
                    v2.RandomChoice(
                        [v2.GaussianBlur(k, sigma=_opencv_sigma(k)) for k in BLUR_KERNELS]
                    )
                ],
                p=p,
            ),
            v2.RandomAdjustSharpness(sharpness_factor=2.0, p=p),
        ]
    )


def to_tensor() -> v2.Compose:
    """PIL image -> contiguous uint8 tensor (3, H, W); tensors pass through."""
    # PILToTensor gives a channels-last view; torch's noise and convolution kernels are
    # several times slower on it than on a contiguous tensor.
    return v2.Compose([v2.PILToTensor(), v2.Lambda(_contiguous, torch.Tensor)])


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (3, H, W) or (B, 3, H, W) -> float32, (x / 255 - MEAN) / STD.

    Two passes instead of the four of v2.ToDtype + v2.Normalize: 4x faster on a batch.
    """
    return images.to(torch.float32).mul_(_SCALE).sub_(_SHIFT)


def train_transform(p: float = 0.5) -> v2.Transform:
    """PIL image (or uint8 tensor) -> distorted, normalised float32 tensor (3, H, W)."""
    return v2.Compose([distortions(p), v2.Lambda(normalise, torch.Tensor)])


def eval_transform() -> v2.Transform:
    """PIL image (or uint8 tensor) -> normalised float32 tensor (3, H, W), undistorted."""
    return v2.Compose([*to_tensor().transforms, v2.Lambda(normalise, torch.Tensor)])


def _encode_jpeg(tensor: torch.Tensor, quality: int = 92) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(tensor.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def materialize(
    db: Path,
    k: int,
    *,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Add K distorted JPEG copies of each cover, in its split and with its pairs.

    The copies are drawn at the cover's full resolution. The database is changed in a
    temporary copy that replaces it only when every copy is written, so an interrupted
    run leaves the original untouched. A database is materialized once: distorting
    distorted copies again would compound the distortions.
    """
    db = Path(db)
    if k < 1:
        raise UserError(f"--materialize needs K >= 1 copies per cover, got {k}.")
    with closing(connect_readonly(db)) as conn:  # a finished cover dataset, or UserError
        previous = conn.execute(
            "SELECT value FROM meta WHERE key = ?", (MATERIALIZED_KEY,)
        ).fetchone()
    if previous is not None:
        raise UserError(f"{db} already holds materialized copies ({previous[0]}).")
    fd, tmp_name = tempfile.mkstemp(prefix=db.name + ".", suffix=".materialize", dir=db.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(tmp)) as target:
            source.backup(target)
        report = _materialize_in(tmp, k, seed, progress)
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)
    return report


def _materialize_in(tmp: Path, k: int, seed: int, progress: Callable[[int], None] | None) -> dict:
    transform = distortions()
    with closing(sqlite3.connect(tmp)) as conn:
        covers = conn.execute("SELECT id, origin, image, split FROM covers ORDER BY id").fetchall()
        # The v2 transforms draw from torch's CPU generator: seed it, then put it back.
        generator = torch.default_generator
        saved = generator.get_state()
        generator.manual_seed(seed)
        copies = duplicates = 0
        try:
            for cover_id, origin, data, split in covers:
                tracks = [
                    row[0]
                    for row in conn.execute(
                        "SELECT track_id FROM pairs WHERE cover_id = ?", (cover_id,)
                    )
                ]
                image = images.decode(data)
                for copy in range(1, k + 1):
                    if _add_copy(
                        conn, transform, image, f"{origin}#distorted{copy}", split, tracks
                    ):
                        copies += 1
                    else:
                        duplicates += 1
                if progress is not None:
                    progress(1)
        finally:
            generator.set_state(saved)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            (MATERIALIZED_KEY, json.dumps({"k": k, "seed": seed})),
        )
        conn.commit()
    return {"covers": len(covers), "copies": copies, "duplicates": duplicates, "k": k}


def _add_copy(
    conn: sqlite3.Connection,
    transform: v2.Transform,
    image: Image.Image,
    origin: str,
    split: str | None,
    tracks: list[str],
    tries: int = 8,
) -> bool:
    """Insert one distorted copy; redraw if it happens to equal a stored image.

    With p=0.5 a draw applies no distortion 1 time in 512; such a copy can collide with
    another undistorted copy of the same cover, and covers are stored once by sha256.
    """
    for _ in range(tries):
        encoded = _encode_jpeg(transform(image))
        digest = sha256(encoded).hexdigest()
        cursor = conn.execute(
            "INSERT OR IGNORE INTO covers (sha256, origin, width, height, image, split) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (digest, origin, image.width, image.height, encoded, split),
        )
        if cursor.rowcount:
            conn.executemany(
                "INSERT INTO pairs (cover_id, track_id) VALUES (?, ?)",
                [(cursor.lastrowid, track) for track in tracks],
            )
            return True
    return False
