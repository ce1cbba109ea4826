"""Training runs of the image-to-features VAE: fresh, resumed, fine-tuned with feedback, DDP.

A run directory holds config.json (the configuration of its latest phase), best.pt (the
lowest validation MSE), last.pt (the latest epoch with the optimizer state, to resume),
metrics.jsonl (one row per epoch) and tensorboard/. Checkpoints are written atomically
after every epoch.

Every random draw is a function of the seed and a position: initial weights of the seed;
the order and distortions of each example of (seed, epoch, index) (loader); the latent
noise of each step of (seed, rank, step). So a resumed run recomputes exactly what an
uninterrupted one would have, from the weights, the optimizer state and the counters
alone; no generator state needs saving.

Under torchrun (WORLD_SIZE > 1) each process trains on its share of every epoch
(DistributedDataParallel averages the gradients; nccl on CUDA, gloo on CPU) and only
rank 0 writes files and reports progress.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pressedplay import candidates, checkpoints
from pressedplay import config as run_config
from pressedplay.atomic import replacing
from pressedplay.augment import eval_transform
from pressedplay.cluster import Cluster, join_cluster
from pressedplay.config import TrainConfig
from pressedplay.errors import UserError
from pressedplay.features import NAMES
from pressedplay.feedback import feedback_loss
from pressedplay.feedback import load as load_feedback
from pressedplay.loader import CoverLoader, CoverPairs, load_image, make_loader, mixed_seed
from pressedplay.model import VAEAttention, vae_loss
from pressedplay.run_start import BEFORE_FEEDBACK, Start, plan_start

METRICS = "metrics.jsonl"
Progress = Callable[[dict], None]


class Objective(nn.Module):
    """The training loss as a module: DDP then sees one forward (dataset batch and
    feedback batch together) per backward, however the loss is made up."""

    def __init__(self, model: VAEAttention, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.kl_weight = config.kl_weight
        self.feedback_weight = config.feedback_weight
        self.margin = config.feedback_margin

    def forward(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        feedback: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, reconstruction, KL, feedback loss); the feedback loss is on the latent
        mean, the prediction `predict` shows."""
        total, reconstruction, kl = vae_loss(self.model(images), targets, self.kl_weight)
        if feedback is None:
            return total, reconstruction, kl, torch.zeros_like(total)
        feedback_images, feedback_targets, liked = feedback
        predicted = self.model(feedback_images, sample=False).features
        extra = feedback_loss(predicted, feedback_targets, liked, self.margin)
        return total + self.feedback_weight * extra, reconstruction, kl, extra


def _feedback_set(
    feedback_db: Path, upto: int, pairs: CoverPairs, size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(images, standardised targets, liked) of the verdicts with id <= upto, unaugmented."""
    rows = load_feedback(feedback_db, upto)
    transform = eval_transform()
    images = torch.stack([transform(load_image(row.image, size)) for row in rows])
    original = np.array([[row.target[name] for name in NAMES] for row in rows])
    targets = torch.tensor((original - pairs.mean) / pairs.std, dtype=torch.float32)
    liked = torch.tensor([row.verdict == "like" for row in rows])
    return images, targets, liked


def _seed_step(device: torch.device, seed: int) -> None:
    """Seed the generator the latent noise is drawn from on `device`."""
    if device.type == "cuda":
        torch.cuda.manual_seed(seed)
    elif device.type == "mps":
        torch.mps.manual_seed(seed)
    else:
        torch.default_generator.manual_seed(seed)


class _Log:
    """metrics.jsonl and TensorBoard (rank 0 only)."""

    def __init__(self, run_dir: Path, step: int) -> None:
        """Continue the logs after optimizer step `step`: rows and events of later steps
        (a killed epoch's, whose checkpoint was never written) are dropped."""
        from tensorboardX import SummaryWriter

        self.path = run_dir / METRICS
        self.lines: list[str] = []
        if self.path.exists():
            self.lines = [
                line
                for line in self.path.read_text().splitlines()
                if line and json.loads(line)["step"] <= step
            ]
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=step + 1)

    def step(self, phase: str, step: int, loss: float) -> None:
        self.writer.add_scalar(f"{phase}/loss", loss, step)

    def epoch(self, row: dict) -> None:
        """Add a row; the file is rewritten whole (a few KB), so never half a line."""
        self.lines.append(json.dumps(row))
        with replacing(self.path) as tmp:
            tmp.write_text("".join(f"{line}\n" for line in self.lines))
        for name in ("train_loss", "train_recon", "train_kl", "val_mse", "val_mae"):
            self.writer.add_scalar(f"{row['phase']}/{name}", row[name], row["step"])
        if row["train_feedback"] is not None:
            self.writer.add_scalar("feedback/train_feedback", row["train_feedback"], row["step"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


@torch.no_grad()
def _validate(
    model: VAEAttention, loader: CoverLoader, pairs: CoverPairs, cluster: Cluster
) -> tuple[float, float]:
    """(MSE, MAE) of the latent-mean predictions over the split's PAIRS, standardised.

    Each cover is predicted once and compared with each of its tracks' targets: the same
    numbers as one forward pass per pair, a cover's tracks-per-cover times cheaper.
    """
    model.eval()
    squared = absolute = count = 0.0
    for images, _, cover_ids in loader:
        predicted = model(images.to(cluster.device)).features.cpu().double().numpy()
        ids = cover_ids.numpy()
        starts = np.searchsorted(pairs.cover_ids, ids, side="left")
        ends = np.searchsorted(pairs.cover_ids, ids, side="right")
        rows = np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])
        errors = pairs.targets[rows] - np.repeat(predicted, ends - starts, axis=0)
        squared += float((errors**2).sum())
        absolute += float(np.abs(errors).sum())
        count += errors.size
    model.train()
    squared, absolute, count = cluster.sum([squared, absolute, count])
    return squared / count, absolute / count


def train(
    config: TrainConfig,
    run_dir: Path,
    db: Path,
    *,
    resume: bool = False,
    feedback_db: Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Train (or resume, or fine-tune with feedback) the run in `run_dir` on `db`.

    Returns {"run_dir", "epochs", "best_epoch", "best_val_mse", "last_val_mse",
    "seconds", "device", "world_size"}, the same on every process, and on rank 0 the
    candidate predictor chosen on the valid split: "chosen", "valid_mse" (`candidates`).
    """
    began = time.perf_counter()
    run_dir, db = Path(run_dir), Path(db)
    with join_cluster(config.device) as cluster:
        if config.batch_size % cluster.world:
            raise UserError(
                f"--batch-size {config.batch_size} does not split evenly over "
                f"{cluster.world} processes"
            )
        start = plan_start(config, run_dir, resume, feedback_db)
        run = _Run(config, run_dir, db, start, cluster, feedback_db)
        # Every process has read what it needs: only now may rank 0 write.
        cluster.barrier()
        summary = run.fit(progress if cluster.main else None)
        if cluster.main:  # `predict` and `generate` default to the latest trained run
            feedback = run.state.phase == "feedback"
            summary.update(candidates.choose(run_dir, db, feedback=feedback))
            checkpoints.remember_run(run_dir)
    summary["seconds"] = time.perf_counter() - began
    return summary


class _Run:
    """One phase of a run: its data, model, optimizer and counters."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        db: Path,
        start: Start,
        cluster: Cluster,
        feedback_db: Path | None,
    ) -> None:
        self.config, self.run_dir, self.db = config, run_dir, db
        self.state, self.cluster = start, cluster
        self.train_loader, self.valid_loader, self.valid_pairs = self._data()
        self.data: CoverPairs = self.train_loader.dataset
        if start.feature_stats is not None and not all(
            np.allclose(saved, ours)
            for saved, ours in zip(
                start.feature_stats, (self.data.mean, self.data.std), strict=True
            )
        ):
            raise UserError(f"{db} is not the dataset {run_dir}'s model was trained on")
        self.model = self._model()
        self.objective: nn.Module = Objective(self.model, config)
        if cluster.world > 1:
            cuda = cluster.device.type == "cuda"
            self.objective = DistributedDataParallel(
                self.objective, device_ids=[cluster.device.index] if cuda else None
            )
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        if start.optimizer is not None:
            self.optimizer.load_state_dict(start.optimizer)
        self.feedback = None
        if start.phase == "feedback":
            tensors = _feedback_set(feedback_db, start.feedback_upto, self.data, config.image_size)
            self.feedback = tuple(t.to(cluster.device) for t in tensors)

    def _data(self) -> tuple[CoverLoader, CoverLoader, CoverPairs]:
        config, cluster = self.config, self.cluster
        shared = {
            "batch_size": config.batch_size // cluster.world,
            "size": config.image_size,
            "workers": config.workers,
            "seed": config.seed,
            "rank": cluster.rank,
            "world": cluster.world,
        }
        train_loader = make_loader(
            self.db,
            "train",
            augment=config.augment != "none",
            distortion="all" if config.augment == "none" else config.augment,
            targets=config.targets,
            **shared,
        )
        if len(train_loader.dataset) < cluster.world:
            raise UserError(f"{self.db} has too few train covers to train on")
        valid_pairs = CoverPairs(self.db, "valid", augment=False)
        if not len(valid_pairs):
            raise UserError(f"{self.db} has no valid covers to choose the best epoch by")
        valid_loader = make_loader(
            self.db, "valid", augment=False, shuffle=False, targets="cover", even=False, **shared
        )
        return train_loader, valid_loader, valid_pairs

    def _model(self) -> VAEAttention:
        config, start = self.config, self.state
        torch.manual_seed(config.seed)
        model = VAEAttention(
            config.image_size, latent_dim=config.latent_dim, attention=config.attention
        )
        if start.state_dict is not None:
            if start.architecture != model.architecture():
                raise UserError(
                    f"{self.run_dir}'s model is {start.architecture}, not the "
                    f"{model.architecture()} asked for"
                )
            model.load_state_dict(start.state_dict)
        return model.to(self.cluster.device)

    def fit(self, progress: Progress | None) -> dict:
        """The remaining epochs of the phase; rank 0 logs and saves after each."""
        log = None
        if self.cluster.main:
            run_config.save(self.config, self.run_dir)
            if self.state.copy_to_before is not None:
                with replacing(self.run_dir / BEFORE_FEEDBACK) as tmp:
                    shutil.copyfile(self.state.copy_to_before, tmp)
            log = _Log(self.run_dir, self.state.step)
        try:
            for epoch in range(self.state.epoch, self.config.epochs):
                row = self._epoch(epoch, log, progress)
                if log is not None:
                    log.epoch(row)
                    self._save(row)
                if progress is not None:
                    progress({"kind": "epoch", **row})
        finally:
            if log is not None:
                log.close()
        self.cluster.barrier()  # no process leaves before rank 0 has saved the last epoch
        return {
            "run_dir": str(self.run_dir),
            "epochs": self.config.epochs,
            "best_epoch": self.state.best_epoch,
            "best_val_mse": self.state.best_val_mse,
            "last_val_mse": self.state.last_val_mse,
            "device": str(self.cluster.device),
            "world_size": self.cluster.world,
        }

    def _feedback_chunk(self) -> tuple[torch.Tensor, ...] | None:
        """The feedback set in batch-sized chunks, one per step, in turn."""
        if self.feedback is None:
            return None
        size = self.train_loader.batch_size
        chunks = -(-len(self.feedback[0]) // size)
        first = (self.state.step % chunks) * size
        return tuple(t[first : first + size] for t in self.feedback)

    def _epoch(self, epoch: int, log: _Log | None, progress: Progress | None) -> dict:
        """One epoch of training and its validation; returns the metrics row."""
        began = time.perf_counter()
        state, cluster, config = self.state, self.cluster, self.config
        self.train_loader.sampler.set_epoch(epoch)
        batches = len(self.train_loader)
        sums = torch.zeros(4, dtype=torch.float64)  # loss, recon, KL, feedback: x examples
        examples = 0
        for batch, (images, targets, _) in enumerate(self.train_loader):
            _seed_step(cluster.device, mixed_seed(config.seed, cluster.rank, state.step))
            parts = self.objective(
                images.to(cluster.device, non_blocking=True),
                targets.to(cluster.device, non_blocking=True),
                self._feedback_chunk(),
            )
            self.optimizer.zero_grad(set_to_none=True)
            parts[0].backward()
            self.optimizer.step()
            state.step += 1
            values = torch.stack([p.detach() for p in parts]).cpu().double()  # MPS has no float64
            sums += values * len(images)
            examples += len(images)
            loss = float(values[0])
            if log is not None:
                log.step(state.phase, state.step, loss)
            if progress is not None:
                progress(
                    {
                        "kind": "batch",
                        "epoch": epoch + 1,
                        "epochs": config.epochs,
                        "batch": batch + 1,
                        "batches": batches,
                        "loss": loss,
                    }
                )
        loss, recon, kl, extra, examples = cluster.sum([*sums.tolist(), examples])
        val_mse, val_mae = _validate(self.model, self.valid_loader, self.valid_pairs, cluster)
        state.epoch, state.last_val_mse = epoch + 1, val_mse
        if state.phase == "feedback" or val_mse < state.best_val_mse:
            state.best_val_mse, state.best_epoch = val_mse, epoch + 1
        return {
            "epoch": epoch + 1,
            "step": state.step,
            "train_loss": loss / examples,
            "train_recon": recon / examples,
            "train_kl": kl / examples,
            "train_feedback": extra / examples if self.feedback is not None else None,
            "val_mse": val_mse,
            "val_mae": val_mae,
            "lr": self.optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - began,
            "examples": int(examples),
            "world_size": cluster.world,
            "phase": state.phase,
        }

    def _save(self, row: dict) -> None:
        """best.pt when this epoch is the best (in a feedback phase every epoch: the
        fine-tune is the result), then last.pt with what resuming needs."""
        state = self.state
        meta = {
            "phase": state.phase,
            "db": str(self.db.resolve()),
            "train": self.config.model_dump(mode="json"),
        }

        def payload(training: dict | None) -> dict:
            return checkpoints.payload(
                self.model,
                self.data.mean,
                self.data.std,
                epoch=state.epoch,
                step=state.step,
                val_mse=row["val_mse"],
                config=meta,
                training=training,
            )

        if state.best_epoch == state.epoch:
            checkpoints.save(self.run_dir / checkpoints.BEST, payload(None))
        training = {
            "phase": state.phase,
            "optimizer": self.optimizer.state_dict(),
            "best_val_mse": state.best_val_mse,
            "best_epoch": state.best_epoch,
            "feedback_upto": state.feedback_upto,
        }
        checkpoints.save(self.run_dir / checkpoints.LAST, payload(training))
