"""Where a training phase of a run starts: fresh, resumed from last.pt, or a feedback
fine-tune from the model before any feedback. Read and checked before anything is
written, so a wrong RUN_DIR or flag is one error and leaves the run as it was."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pressedplay import checkpoints
from pressedplay import config as run_config
from pressedplay.config import TrainConfig
from pressedplay.errors import UserError
from pressedplay.feedback import last_id as last_feedback_id

BEFORE_FEEDBACK = "before-feedback.pt"


@dataclass
class Start:
    """Where a phase starts: weights and counters, from a checkpoint or fresh."""

    phase: str  # "train" or "feedback"
    state_dict: dict | None = None
    optimizer: dict | None = None
    epoch: int = 0  # epochs of this phase already done
    step: int = 0  # optimizer steps of the whole run so far
    best_val_mse: float = float("inf")
    best_epoch: int = 0
    last_val_mse: float | None = None
    feedback_upto: int | None = None  # the last feedback row id this phase learns from
    feature_stats: tuple[np.ndarray, np.ndarray] | None = None
    architecture: dict | None = None
    copy_to_before: Path | None = None  # best.pt to keep as before-feedback.pt


def _has_run(run_dir: Path) -> bool:
    """A run that finished an epoch (a run killed before that is simply started again)."""
    return any((run_dir / name).exists() for name in (checkpoints.BEST, checkpoints.LAST))


def plan_start(config: TrainConfig, run_dir: Path, resume: bool, feedback_db: Path | None) -> Start:
    """Check the run directory for what was asked and read where to start; writes nothing."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file; give a folder for the run")
    if resume:
        return _resume_point(config, run_dir, feedback_db)
    if feedback_db is not None:
        return _feedback_start(run_dir, feedback_db)
    if _has_run(run_dir):
        raise UserError(
            f"{run_dir} already holds a run; continue it with --resume, fine-tune it with "
            "--feedback, or choose another RUN_DIR"
        )
    return Start("train")


def _resume_point(config: TrainConfig, run_dir: Path, feedback_db: Path | None) -> Start:
    if not (run_dir / checkpoints.LAST).is_file():
        raise UserError(f"nothing to resume in {run_dir}: it has no {checkpoints.LAST}")
    data = checkpoints.load(run_dir / checkpoints.LAST)
    training, saved = data.get("training"), data["config"].get("train")
    if not isinstance(training, dict) or not isinstance(saved, dict):
        raise UserError(f"{run_dir / checkpoints.LAST} was not written by `pressedplay train`")
    phase = training["phase"]
    if phase == "feedback" and feedback_db is None:
        raise UserError(f"{run_dir} was last fine-tuned with feedback: resume it with --feedback")
    if phase == "train" and feedback_db is not None:
        raise UserError(
            f"{run_dir} has no feedback fine-tune to resume; run --feedback without --resume"
        )
    mismatch = config.difference(run_config.validated(saved, str(run_dir / checkpoints.LAST)))
    if mismatch:
        raise UserError(f"cannot resume {run_dir}: {mismatch}")
    return Start(
        phase,
        data["state_dict"],
        training["optimizer"],
        epoch=data["epoch"],
        step=data["step"],
        best_val_mse=training["best_val_mse"],
        best_epoch=training["best_epoch"],
        last_val_mse=data["val_mse"],
        feedback_upto=training["feedback_upto"],
        feature_stats=_stats(data),
        architecture=data["architecture"],
    )


def _feedback_start(run_dir: Path, feedback_db: Path) -> Start:
    """Fine-tuning starts from the model before any feedback: best.pt the first time
    (kept as before-feedback.pt), before-feedback.pt when best.pt is already a
    fine-tune, so that repeating it with more feedback does not compound."""
    best = run_dir / checkpoints.BEST
    if not best.is_file():
        raise UserError(f"{run_dir} has no {checkpoints.BEST} to fine-tune; train it first")
    data = checkpoints.load(best)
    copy_to_before = best
    if data["config"].get("phase") == "feedback":
        before = run_dir / BEFORE_FEEDBACK
        if not before.is_file():
            raise UserError(f"{best} is a feedback fine-tune but {before} is missing")
        data = checkpoints.load(before)
        copy_to_before = None
    upto = last_feedback_id(feedback_db)
    if upto is None:
        raise UserError(f"{feedback_db} holds no feedback yet")
    last = run_dir / checkpoints.LAST
    step = checkpoints.load(last)["step"] if last.is_file() else data["step"]
    return Start(
        "feedback",
        data["state_dict"],
        step=step,
        feedback_upto=upto,
        feature_stats=_stats(data),
        architecture=data["architecture"],
        copy_to_before=copy_to_before,
    )


def _stats(data: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.array(data["feature_mean"]), np.array(data["feature_std"])
