"""Predict the eight features of images with a trained VAE or the colour prior.

Images go through the checks of `images.decode` (the dataset's own validation, so
predict accepts exactly the files build-db would) and are then squashed by
`loader.load_image`, as in training, so the model sees the pixels it was trained on.
Each image fails on its own: one bad file is reported in its slot and the others are
still answered. Answered images are predicted in batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pressedplay import checkpoints, colour_stats, images, inputs, prior
from pressedplay.augment import normalise
from pressedplay.devices import pick_device
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.loader import load_image
from pressedplay.ridge import Ridge

PRIOR = "prior"
CANDIDATES_FILE = "candidates.json"  # what `train` chose (`candidates`)
CANDIDATES = ("vae", "ridge", "blend", "mean")  # in order of preference on a tie
STATS_SIZE = 128  # colour statistics are measured on covers squashed to this size


class Predictor(ABC):
    """Features in original units from uint8 images squashed to `image_size`."""

    name: str
    image_size: int

    @abstractmethod
    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) uint8 -> (n, 8) features in NAMES order, original units."""


class PriorPredictor(Predictor):
    """The training-free colour prior (pressedplay.prior)."""

    name = "colour prior"
    image_size = STATS_SIZE

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        inputs = colour_stats.matrix(pixels)[:, : len(colour_stats.PRIOR_INPUTS)]
        return prior.predict_matrix(inputs)


class VAEPredictor(Predictor):
    """A trained VAEAttention: the latent's mean, or with `sample` a seeded draw from it.

    Draws come from the predictor's own generator, seeded once: the same images in the
    same order with the same seed give the same draws, and torch's global RNG is untouched.
    """

    def __init__(self, loaded: checkpoints.LoadedModel, *, sample: bool = False, seed: int = 0):
        self.loaded = loaded
        self.name = f"vae {loaded.path}"
        self.image_size = loaded.model.image_size
        self.device = next(loaded.model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed) if sample else None

    @torch.no_grad()
    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        batch = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)
        batch = normalise(batch.to(self.device))
        model = self.loaded.model
        if self.generator is None:
            standardised = model(batch, sample=False).features
        else:
            mu, logvar = model.encode(batch)
            noise = torch.randn(mu.shape, generator=self.generator, device=self.device)
            standardised = model.decoder(mu + noise * torch.exp(0.5 * logvar))
        return self.loaded.to_original(standardised.double().cpu().numpy())


class ChosenPredictor(Predictor):
    """A run's answer when `train` chose ridge, the blend or the mean over its VAE
    (`candidates`): the same predictions as on the valid split it was chosen on."""

    def __init__(self, vae: VAEPredictor, record: dict) -> None:
        self.vae, self.chosen = vae, record["chosen"]
        self.ridge = Ridge.from_dict(record["ridge"])
        self.mean = np.asarray(record["mean"], dtype=np.float64)
        self.units = (np.asarray(record["feature_mean"]), np.asarray(record["feature_std"]))
        self.name = f"{self.chosen} (chosen on valid) {vae.loaded.path.parent}"
        self.image_size = vae.image_size if self.chosen == "blend" else STATS_SIZE

    def predict_pixels(self, pixels: np.ndarray) -> np.ndarray:
        if self.chosen == "mean":
            standardised = np.tile(self.mean, (len(pixels), 1))
        else:
            standardised = self.ridge.predict(colour_stats.matrix(_at_stats_size(pixels)))
        original = standardised * self.units[1] + self.units[0]
        if self.chosen == "blend":
            original = (original + self.vae.predict_pixels(pixels)) / 2
        return original


def _at_stats_size(pixels: np.ndarray) -> np.ndarray:
    """Colour statistics are measured at STATS_SIZE (edge density depends on scale)."""
    if pixels.shape[1] == STATS_SIZE:
        return pixels
    size = (STATS_SIZE, STATS_SIZE)
    return np.stack(
        [np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BILINEAR)) for p in pixels]
    )


def load_choice(run_dir: Path) -> dict | None:
    """A run's candidates.json, or None for runs trained before it existed (or a
    checkpoint file given instead of a run): those answer with their VAE."""
    path = Path(run_dir) / CANDIDATES_FILE
    if not Path(run_dir).is_dir() or not path.is_file():
        return None
    record = inputs.read_json(path)
    try:
        ridge = Ridge.from_dict(record["ridge"])
        shapes = [np.shape(record[k]) for k in ("mean", "feature_mean", "feature_std")]
        valid = (
            record["chosen"] in CANDIDATES
            and ridge.coef.shape == (len(colour_stats.NAMES), len(NAMES))
            and all(len(getattr(ridge, k)) == len(colour_stats.NAMES) for k in ("x_mean", "x_std"))
            and ridge.y_mean.shape == (len(NAMES),)
            and shapes == [(len(NAMES),)] * 3
            and all(
                np.isfinite(np.asarray(record[k], dtype=np.float64)).all()
                for k in ("mean", "feature_mean", "feature_std")
            )
            and all(np.isfinite(getattr(ridge, k)).all() for k in ("x_mean", "x_std", "coef"))
        )
    except (KeyError, TypeError, ValueError):
        valid = False
    if not valid:
        raise UserError(f"{path} is not a pressedplay candidates file")
    return record


def load_predictor(
    spec: str | Path | None, *, device: str = "cpu", sample: bool = False, seed: int = 0
) -> Predictor:
    """`prior`, a run directory or checkpoint file, or None: the latest trained run,
    else the colour prior. A run directory answers with the candidate `train` chose
    (`candidates`; with `sample`, always its VAE), a checkpoint file with its VAE. On CPU,
    torch gets one intra-op thread (for the process)."""
    _inference_threads(device)
    if spec is None:
        spec = checkpoints.latest_run()
        if spec is None:
            return _prior(sample)
    if str(spec) == PRIOR:
        return _prior(sample)
    loaded = checkpoints.load_model(Path(spec), pick_device(device))
    vae = VAEPredictor(loaded, sample=sample, seed=seed)
    record = None if sample else load_choice(Path(spec))
    if record is None or record["chosen"] == "vae":
        return vae
    return ChosenPredictor(vae, record)


def _inference_threads(device: str) -> None:
    """One intra-op thread on CPU: a forward pass of a few images is too small to split,
    and on a busy machine extra threads made single predictions 3-20x slower
    (`make bench-predict`)."""
    if device == "cpu":
        torch.set_num_threads(1)


def _prior(sample: bool) -> PriorPredictor:
    if sample:
        raise UserError("--sample needs a trained model; the colour prior has no latent")
    return PriorPredictor()


def read(path: Path) -> bytes:
    """A regular file's bytes, or ImageError: FIFOs, devices and folders are refused
    unopened, and reading stops past images.MAX_BYTES."""
    try:
        return inputs.read_bytes(path, images.MAX_BYTES)
    except inputs.InputError as exc:
        if exc.reason.startswith("larger than"):
            raise images.ImageError("too large file", f"over {images.MAX_BYTES:,} bytes") from None
        raise images.ImageError(exc.reason) from None


def squash(data: bytes, size: int) -> np.ndarray:
    """Validated and squashed in one decode, as in training: uint8 (size, size, 3)."""
    return np.asarray(load_image(data, size))


def predict_bytes(
    items: Sequence[tuple[str, bytes]], predictor: Predictor, batch_size: int = 32
) -> list[dict]:
    """One result per (name, encoded image) in input order: {"image", "model",
    "features"} or {"image", "error"}."""
    _check_batch_size(batch_size)
    return _predict(items, predictor, batch_size)


def _predict(
    items: Sequence[tuple[str, bytes | images.ImageError]], predictor: Predictor, batch_size: int
) -> list[dict]:
    """As predict_bytes; an ImageError in place of bytes (a file that could not be read)
    is reported as that image's error."""
    results: list[dict] = []
    for start in range(0, len(items), batch_size):
        results.extend(_predict_batch(items[start : start + batch_size], predictor))
    return results


def _predict_batch(
    items: Sequence[tuple[str, bytes | images.ImageError]], predictor: Predictor
) -> list[dict]:
    results: list[dict] = []
    answered: list[tuple[int, np.ndarray]] = []
    for name, data in items:
        try:
            if isinstance(data, images.ImageError):
                raise data
            pixels = squash(data, predictor.image_size)
        except images.ImageError as exc:
            results.append({"image": name, "error": str(exc)})
            continue
        answered.append((len(results), pixels))
        results.append({"image": name, "model": predictor.name})
    if answered:
        features = predictor.predict_pixels(np.stack([pixels for _, pixels in answered]))
        for (index, _), row in zip(answered, features, strict=True):
            results[index]["features"] = {
                name: float(value) for name, value in zip(NAMES, row, strict=True)
            }
    return results


def predict_one(name: str, data: bytes, predictor: Predictor) -> dict:
    """One image's result ({"image", "model", "features"}), or ImageError "NAME: reason"."""
    (result,) = _predict([(name, data)], predictor, 1)
    if "error" in result:
        raise images.ImageError(name, result["error"])
    return result


def predict_files(
    paths: Sequence[str | Path], predictor: Predictor, batch_size: int = 32
) -> list[dict]:
    """predict_bytes for files; a file that cannot be read is reported in its slot.

    Files are read one batch at a time, so memory stays bounded for long lists.
    """
    _check_batch_size(batch_size)
    results: list[dict] = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        items = [(str(path), _read_or_error(Path(path))) for path in chunk]
        results.extend(_predict(items, predictor, batch_size))
    return results


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise UserError(f"batch size must be at least 1, got {batch_size}")


def _read_or_error(path: Path) -> bytes | images.ImageError:
    try:
        return read(path)
    except images.ImageError as exc:
        return exc
