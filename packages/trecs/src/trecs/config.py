"""Model and training configuration: pydantic models, loadable from TOML, saved with runs."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trecs.errors import UserError

# Token ids shared by the model, the data pipeline and generation.
EOP, START, UNK = 0, 1, 2
NUM_SPECIAL = 3

LossName = Literal["uniform", "label-in-denominator", "logq", "full"]


class ModelConfig(BaseModel):
    """Defaults measured on real MPD playlists (README: "Why these defaults")."""

    model_config = ConfigDict(extra="forbid")

    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(8, ge=1)
    features: int = Field(128, ge=8)
    hidden: int = Field(256, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    context: int = Field(50, ge=2)
    # Embedding rows (special tokens included); None: the vocabulary's size. May exceed
    # the vocabulary so that benchmarks can use the MPD's 2,262,295 on small data.
    num_tracks: int | None = Field(None, ge=NUM_SPECIAL + 1)
    # Rows of the hashed title-word table whose mean is added to every position (the
    # challenge shows titles, alone in one category); 0: the model ignores titles.
    title_buckets: int = Field(2**15, ge=0)
    # A learned per-track bias added to the logits (popularity), kept as an extra column
    # of the embedding table so that it is updated row-sparsely with the track's vector.
    output_bias: bool = True
    # How a seed list's scores are read: the hidden state at its last position, or the
    # mean over its positions (the challenge scores a set, not the next track).
    readout: Literal["last", "mean"] = "mean"

    @field_validator("title_buckets")
    @classmethod
    def _room_for_padding(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no titles) or at least 2 (bucket 0 is padding)")
        return value

    @model_validator(mode="after")
    def _heads_divide_features(self) -> ModelConfig:
        """Checked here, so that a config.json no model can have is one error line."""
        if self.features % self.num_heads:
            raise ValueError(f"features ({self.features}) must be a multiple of num_heads")
        return self


class LossConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: LossName = "logq"
    # Negatives per position for uniform/label-in-denominator; shared per step for logq.
    num_negatives: int | None = Field(None, ge=1)
    # logq samples negatives from popularity ** alpha.
    alpha: float = Field(0.75, ge=0, le=1)

    def negatives(self) -> int:
        if self.num_negatives is not None:
            return self.num_negatives
        return 4096 if self.name == "logq" else 20


class OptimizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    # None: 5% of the run's steps, so that the schedule scales with --num-steps.
    warmup_steps: int | None = Field(None, ge=0)
    cosine_decay: bool = True
    clip_norm: float | None = Field(None, gt=0)


class TrainConfig(BaseModel):
    """Everything a training run depends on; saved as RUN_DIR/config.json."""

    model_config = ConfigDict(extra="forbid")

    db: Path = Path("data/mpd.db")
    model: ModelConfig = ModelConfig()
    loss: LossConfig = LossConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    batch_size: int = Field(16, ge=1)
    num_steps: int = Field(20_000, ge=1)
    seed: int = Field(0, ge=0)
    unk_proba: float = Field(0.01, ge=0, le=1)
    # Probability that a training playlist is replaced by an ordered random subset of its
    # tracks: seeds in the challenge's random:N categories are such subsets, not prefixes.
    subsample_proba: float = Field(0.5, ge=0, le=1)
    # Probability that a position's target is a random later track of the playlist rather
    # than the next one: playlist continuation is scored on all the remaining tracks.
    future_target_proba: float = Field(0.8, ge=0, le=1)
    # Probability that a training playlist's title is hidden, so that the model also
    # continues untitled playlists.
    title_dropout: float = Field(0.5, ge=0, le=1)
    # How the track table starts: small random vectors, or the train split's co-occurrence
    # structure (a truncated SVD of the normalised playlist x track matrix), which gives
    # rare tracks a useful place from the first step.
    table_init: Literal["normal", "svd"] = "svd"
    log_every: int = Field(50, ge=1)
    eval_every: int = Field(500, ge=1)
    eval_batches: int = Field(10, ge=1)
    checkpoint_every: int = Field(1000, ge=1)
    keep_checkpoints: int = Field(3, ge=1)
    # Grain reads playlists ahead on threads either way; worker processes also take the
    # windowing and batching off the training process.
    data_workers: int = Field(0, ge=0)
    # Split the embedding table (and its moments) by rows across devices instead of
    # replicating it, for tables that do not fit one device.
    shard_table: bool = False

    def fixed(self) -> dict:
        """What a checkpoint's shapes and a run's randomness depend on: a resumed run
        must agree on these."""
        return self.model_dump(
            mode="json",
            include={
                "model",
                "loss",
                "optimizer",
                "batch_size",
                "seed",
                "unk_proba",
                "subsample_proba",
                "future_target_proba",
                "title_dropout",
                "table_init",
                "shard_table",
            },
        )


# What a run saved before these fields existed was trained without them.
_LEGACY = {
    "model": {"title_buckets": 0, "output_bias": False, "readout": "last"},
    "title_dropout": 0.0,
    "table_init": "normal",
}


def load_saved(path: Path) -> TrainConfig:
    """A run's saved config.json; fields it predates take the values it was trained with,
    not today's defaults, so that old runs load and resume as they were."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a trecs run configuration ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a trecs run configuration")
    for key, value in _LEGACY.items():
        if isinstance(value, dict):
            section = data.setdefault(key, {})
            if isinstance(section, dict):
                for field, old in value.items():
                    section.setdefault(field, old)
        else:
            data.setdefault(key, value)
    return _validated(TrainConfig, data, str(path))


def train_config(
    run_dir: Path, config_file: Path | None = None, *, resume: bool = False, **overrides: object
) -> TrainConfig:
    """The settings `trecs train` uses, assembled here so that Python callers get the same
    result and errors: a resumed run's saved config.json (its own settings, not the file's),
    else `config_file` (TOML), else the defaults; then the `overrides` given (not None):
    top-level fields, or the command's `lr`, `loss` (its name) and `num_tracks`, validated
    as a whole. Raises UserError on a missing or invalid file or value."""
    saved = run_dir / "config.json"
    if resume and saved.is_file():
        base = load_saved(saved)
    elif config_file is not None:
        base = load_toml(config_file, TrainConfig)
    else:
        base = TrainConfig()
    return with_overrides(base, **overrides)


def with_overrides(base: TrainConfig, **overrides: object) -> TrainConfig:
    """`base` with the command line's options that were given (not None) applied."""
    data = base.model_dump()
    nested = {
        "lr": ("optimizer", "lr"),
        "loss": ("loss", "name"),
        "num_tracks": ("model", "num_tracks"),
    }
    for key, value in overrides.items():
        if value is None:
            continue
        if key in nested:
            section, field = nested[key]
            data[section][field] = value
        else:
            data[key] = value
    return _validated(TrainConfig, data, "options")


def _validated(model: type[BaseModel], data: dict, origin: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(f"{origin}: {where}: {first['msg']}") from None


def load_toml(path: Path, model: type[BaseModel]) -> BaseModel:
    """A config from a TOML file, with one-line errors for the CLI."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc})") from None
    return _validated(model, data, str(path))
