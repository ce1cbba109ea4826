"""Training configuration: a pydantic model, saved with each run as RUN_DIR/config.json.

A resumed run or a feedback fine-tune starts from the run's saved configuration with the
command line's options on top, so `pressedplay train RUN --resume` needs no options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pressedplay import inputs
from pressedplay.atomic import replacing
from pressedplay.devices import Device
from pressedplay.errors import UserError
from pressedplay.loader import Targets
from pressedplay.model import Attention

CONFIG = "config.json"
# Options that change how fast a run goes or how long, never what a given epoch computes:
# a resumed run may change them, and must agree on everything else.
_FREE = frozenset({"epochs", "workers", "device"})


class TrainConfig(BaseModel):
    """Everything a training run depends on besides its dataset."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(50, ge=1)
    # Global: split evenly over DDP processes.
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    # Measured on the synth-covers valid split (README, "Training"): 0.01 is as good as no
    # KL for prediction from mu, and keeps the latent a usable distribution for --sample.
    kl_weight: float = Field(0.01, ge=0)
    latent_dim: int = Field(32, ge=1)
    attention: Attention = "spatial"
    image_size: int = Field(128, ge=8, multiple_of=8)
    targets: Targets = "cover"
    # Online distortions: "geometric" (rotation, flips, zoom; default), "all" (the
    # original's nine, whose colour jitter, noise and blur alter the very cues a cover's
    # mood is read from: 0.61 valid MSE against 0.53, README "Training") or "none".
    augment: Literal["geometric", "all", "none"] = "geometric"
    workers: int = Field(2, ge=0)
    seed: int = Field(0, ge=0)
    device: Device = "auto"
    # Feedback fine-tuning: loss = dataset loss + feedback_weight * feedback loss, where a
    # disliked image is pushed until its prediction is feedback_margin away (standardised).
    feedback_weight: float = Field(1.0, ge=0)
    feedback_margin: float = Field(1.0, gt=0)

    def fixed(self) -> dict:
        """What the results depend on: a resumed run must agree on all of it."""
        return self.model_dump(mode="json", exclude=set(_FREE))

    def difference(self, other: TrainConfig) -> str | None:
        """The first result-changing option that differs, as 'name (here, saved)'."""
        mine, theirs = self.fixed(), other.fixed()
        for name, value in mine.items():
            if theirs[name] != value:
                return f"{name} ({value!r} here, {theirs[name]!r} saved)"
        return None


def validated(data: dict, origin: str) -> TrainConfig:
    """A TrainConfig, or a one-line UserError naming the bad option."""
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(f"{origin}: {where}: {first['msg']}") from None


def with_overrides(base: TrainConfig, **options: object) -> TrainConfig:
    """`base` with the options that were given (not None) applied."""
    given = {name: value for name, value in options.items() if value is not None}
    return validated({**base.model_dump(), **given}, "options")


def load(run_dir: Path) -> TrainConfig:
    """RUN_DIR/config.json, or UserError when the run has none."""
    path = Path(run_dir) / CONFIG
    try:
        text = inputs.read_text(path, inputs.MAX_JSON)
    except inputs.InputError as exc:
        if exc.reason == "no such file":
            raise UserError(f"{run_dir} holds no training run ({CONFIG} is missing)") from None
        raise
    try:
        return TrainConfig.model_validate_json(text)
    except ValidationError as exc:
        raise UserError(
            f"{path} is not a training configuration: {exc.errors()[0]['msg']}"
        ) from None


def for_run(run_dir: Path, *, resume: bool, feedback: bool, **options: object) -> TrainConfig:
    """The configuration `pressedplay train` runs with: the run's saved one when resuming
    or fine-tuning with feedback, else the defaults; the given options on top."""
    base = load(run_dir) if resume or feedback else TrainConfig()
    return with_overrides(base, **options)


def save(config: TrainConfig, run_dir: Path) -> Path:
    """Write RUN_DIR/config.json atomically."""
    path = Path(run_dir) / CONFIG
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        tmp.write_text(config.model_dump_json(indent=2) + "\n")
    return path
