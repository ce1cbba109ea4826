"""Model checkpoints: one self-describing file per checkpoint, written atomically.

A checkpoint carries what inference needs beside the weights (the architecture and the
feature mean/std the model was trained to predict in standardised units), so `predict`
and `generate` need only the file. Files are read with `weights_only=True`: a checkpoint
from elsewhere is untrusted and must not run code when loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pressedplay.atomic import replacing
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.model import VAEAttention
from pressedplay.paths import data_home

FORMAT = "pressedplay-vae"
VERSION = 1
BEST = "best.pt"
LAST = "last.pt"


def runs_root() -> Path:
    """Where `pressedplay train` puts runs when no RUN_DIR is given."""
    return data_home() / "runs"


@dataclass
class LoadedModel:
    """A model ready for inference and the units it predicts in."""

    model: VAEAttention  # in eval mode
    mean: np.ndarray  # (8,) feature means in NAMES order: original = std_units * std + mean
    std: np.ndarray  # (8,)
    path: Path
    meta: dict = field(default_factory=dict)  # epoch, step, val_mse, run config

    def to_original(self, standardised: np.ndarray) -> np.ndarray:
        """(n, 8) standardised predictions -> original units (loudness in dB)."""
        return standardised * self.std + self.mean


def payload(
    model: VAEAttention,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    epoch: int,
    step: int,
    val_mse: float | None = None,
    config: dict | None = None,
    training: dict | None = None,
) -> dict:
    """The dict a checkpoint file holds. `training` (optimizer, RNG states, best score)
    is only needed to resume; inference ignores it."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "feature_names": list(NAMES),
        "feature_mean": [float(x) for x in mean],
        "feature_std": [float(x) for x in std],
        "epoch": epoch,
        "step": step,
        "val_mse": val_mse,
        "config": config or {},
        "training": training,
    }


def save(path: Path, data: dict) -> None:
    """Write to a temporary file beside `path`, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        torch.save(data, tmp)


def resolve(path: Path) -> Path:
    """A checkpoint file, or a run directory's best (else last) checkpoint."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise UserError(f"{path} holds no checkpoint ({BEST} or {LAST}); train one first")
    if not path.is_file():
        raise UserError(f"no model at {path}")
    return path


def load(path: Path) -> dict:
    """The validated contents of a checkpoint file, or UserError saying what is wrong."""
    path = resolve(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a checkpoint"
        raise UserError(f"{path} is not a pressedplay model: {type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path} is not a pressedplay model")
    if data.get("version") != VERSION:
        raise UserError(f"{path} is a version {data.get('version')} model; this reads {VERSION}")
    if data.get("feature_names") != list(NAMES):
        raise UserError(f"{path} predicts other features: {data.get('feature_names')}")
    return data


def load_model(path: Path, device: str | torch.device = "cpu") -> LoadedModel:
    """A checkpoint file or run directory as a model in eval mode on `device`."""
    where = resolve(path)
    data = load(where)
    try:
        model = VAEAttention(**data["architecture"])
        model.load_state_dict(data["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)
        raise UserError(
            f"{where} does not match the VAEAttention architecture: {detail[:200]}"
        ) from None
    model.to(device).eval()
    meta = {k: data.get(k) for k in ("epoch", "step", "val_mse", "config")}
    return LoadedModel(
        model,
        np.array(data["feature_mean"], dtype=np.float64),
        np.array(data["feature_std"], dtype=np.float64),
        where,
        meta,
    )


def new_run_dir() -> Path:
    """A fresh run directory under runs_root(), named by the UTC time it was made."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    run_dir = runs_root() / stamp
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = runs_root() / f"{stamp}-{suffix}"
    return run_dir


def _latest_file() -> Path:
    return data_home() / "latest-run.txt"


def remember_run(run_dir: Path) -> None:
    """Note `run_dir` as the latest trained run, wherever it lives, for `predict`."""
    path = _latest_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(str(Path(run_dir).resolve()) + "\n", encoding="utf-8")


def latest_run() -> Path | None:
    """The run remembered last (if it still has a best.pt), else the run under
    runs_root() with the newest best.pt, else None."""
    remembered = _latest_file()
    if remembered.is_file():
        run_dir = Path(remembered.read_text(encoding="utf-8").strip())
        if (run_dir / BEST).is_file():
            return run_dir
    root = runs_root()
    if not root.is_dir():
        return None
    found = [(p.stat().st_mtime, p.parent) for p in root.glob(f"*/{BEST}") if p.is_file()]
    return max(found)[1] if found else None
