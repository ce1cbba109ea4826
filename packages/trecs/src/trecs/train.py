"""The training run: data, model, sparse optimiser, evaluation, logs and checkpoints.

A run directory holds `config.json` (the effective configuration), `vocab.npz`,
`checkpoints/` (Orbax: model, optimiser, table and the Grain iterator's position),
`metrics.jsonl` and `tensorboard/`. Randomness comes from the seed and the step number
alone, so a resumed run continues exactly where the checkpoint left it. The track table
starts from the train split's co-occurrence structure (`table_init = "svd"`) unless
random is asked for; a resumed run skips that work, the checkpoint has the table.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import numpy as np

from trecs import checkpoints
from trecs.config import NUM_SPECIAL, TrainConfig, load_saved
from trecs.data import TitledSource, Windows, loader, split_matrix
from trecs.db import connect
from trecs.errors import UserError
from trecs.model import svd_vectors
from trecs.optim import dense_optimizer, init_table_state, schedule
from trecs.parallel import DataParallel, barrier, is_primary, padded_rows
from trecs.train_step import TrainState, init_state, make_eval_step, make_train_step, popularity
from trecs.vocab import Vocabulary, build_vocabulary


def prepare_run(run_dir: Path, config: TrainConfig, resume: bool) -> tuple[TrainConfig, Vocabulary]:
    """Check the run directory and database; build or load the vocabulary. A new run
    saves its config here; a resumed one only once its checkpoint has restored
    (`save_config`), so that a failed resume leaves the run as it was. With several
    processes, every one checks the run before the primary writes into it, and the others
    load the vocabulary it saved."""
    if resume:
        _check_resumable(run_dir, config)
    elif run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(f"{run_dir}: already exists (use --resume to continue it)")
    connect(config.db).close()
    barrier("trecs: run directory checked")
    vocab_path = run_dir / "vocab.npz"
    if not resume and is_primary():
        run_dir.mkdir(parents=True, exist_ok=True)
        build_vocabulary(config.db).save(vocab_path)
    barrier("trecs: vocabulary saved")
    vocab = Vocabulary.load(vocab_path)
    num_rows = padded_rows(config.model.num_tracks or len(vocab), config.shard_table)
    if num_rows < len(vocab):
        raise UserError(
            f"--num-tracks {num_rows:,} is smaller than the vocabulary ({len(vocab):,} tokens)"
        )
    config = config.model_copy(
        update={"model": config.model.model_copy(update={"num_tracks": num_rows})}
    )
    if not resume:
        save_config(run_dir, config)
    return config, vocab


def _check_resumable(run_dir: Path, config: TrainConfig) -> None:
    """The run exists and `config` agrees with it on what its checkpoints depend on."""
    config_path = run_dir / "config.json"
    if not config_path.is_file():
        raise UserError(f"{run_dir}: nothing to resume (no config.json)")
    saved = load_saved(config_path)
    mismatch = _first_difference(saved.fixed(), config.fixed())
    if mismatch:
        raise UserError(f"{run_dir}: {mismatch} differs from the run's saved config.json")


def save_config(run_dir: Path, config: TrainConfig) -> None:
    """config.json, written by the primary process only."""
    if is_primary():
        _write_atomically(run_dir / "config.json", config.model_dump_json(indent=2))


def _first_difference(saved: dict, given: dict, prefix: str = "") -> str | None:
    for key in saved:
        a, b = saved[key], given.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found:
                return found
        elif a != b and not (key == "num_tracks" and b is None):
            return f"{prefix}{key} ({b!r} here, {a!r} saved)"
    return None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def train(
    run_dir: Path,
    config: TrainConfig,
    *,
    resume: bool = False,
    on_log: Callable[[dict], None] | None = None,
    on_notice: checkpoints.Notice | None = None,
) -> dict:
    """Train (or resume) the run in `run_dir`; returns the last logged metrics.
    `on_notice` hears of damaged checkpoints a resume passed over."""
    config, vocab = prepare_run(run_dir, config, resume)
    num_rows = config.model.num_tracks
    parallel = DataParallel(config.batch_size)
    key = jax.random.key(config.seed)
    init_key, step_key, eval_key = jax.random.split(key, 3)

    optimizer = dense_optimizer(config.optimizer, schedule(config.optimizer, config.num_steps))
    graphdef, state = init_state(init_key, config.model, optimizer, num_rows)
    train_step = make_train_step(
        graphdef, config.loss, config.optimizer, num_rows, config.num_steps
    )
    eval_step = make_eval_step(graphdef, config.loss, num_rows)
    counts = np.zeros(num_rows)
    counts[: len(vocab.counts)] = vocab.counts
    pop = parallel.replicate(popularity(counts, config.loss.alpha))

    token_of = vocab.token_of()
    train_source = TitledSource(config.db, "train")
    if len(train_source) < config.batch_size:
        raise UserError(f"{config.db}: fewer train playlists than one batch")
    iterator = iter(
        loader(
            train_source,
            Windows(
                token_of,
                config.model.context,
                unk_proba=config.unk_proba,
                subsample_proba=config.subsample_proba,
                future_target_proba=config.future_target_proba,
                title_buckets=config.model.title_buckets,
                title_dropout=config.title_dropout,
            ),
            parallel.local_batch_size,
            config.seed,
            config.data_workers,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
        )
    )
    eval_batches = _eval_batches(config, token_of, parallel)

    saver = checkpoints.manager(run_dir, config.keep_checkpoints)
    start = 0
    if resume and saver.all_steps():
        # Restored straight into the devices' shards: each process reads its own.
        like = parallel.place(state, config.shard_table)
        start, state = _resume(run_dir, saver, like, iterator, on_notice)
    else:
        if config.table_init == "svd":
            state = _svd_table(state, config, token_of, len(vocab))
        state = parallel.place(state, config.shard_table)
    if resume:
        save_config(run_dir, config)
    log = _Log(run_dir, start, config.batch_size, on_log)

    def evaluate() -> float | None:
        if not eval_batches:
            return None
        values = [
            float(
                eval_step(
                    state.params,
                    state.table.table,
                    batch["inputs"],
                    batch["targets"],
                    jax.random.fold_in(eval_key, i),
                    pop,
                    batch["titles"],
                )
            )
            for i, batch in enumerate(eval_batches)
        ]
        return float(np.mean(values))

    last = log.last
    try:
        for step in range(start, config.num_steps):
            batch = parallel.global_batch(next(iterator))
            state, metrics = train_step(
                state,
                batch["inputs"],
                batch["targets"],
                jax.random.fold_in(step_key, step),
                pop,
                batch["titles"],
            )
            done = step + 1
            final = done == config.num_steps
            if done % config.log_every == 0 or done % config.eval_every == 0 or final:
                valid = evaluate() if done % config.eval_every == 0 or final else None
                last = log.write(done, metrics, valid)
            if done % config.checkpoint_every == 0 or final:
                checkpoints.save(saver, done, state, iterator)
    finally:
        saver.wait_until_finished()
        saver.close()
        log.close()
    return last


def _resume(
    run_dir: Path, saver, like: TrainState, iterator, on_notice: checkpoints.Notice | None
) -> tuple[int, TrainState]:
    """The newest checkpoint that restores, state and data position; damaged newer ones
    are set aside so that their steps can be saved again."""
    try:
        start, state, damaged = checkpoints.restore_newest(
            run_dir,
            saver,
            lambda step: checkpoints.restore(saver, step, like, iterator),
            on_notice,
        )
    except UserError:
        saver.close()
        raise
    checkpoints.set_aside(run_dir, saver, damaged, on_notice)
    return start, state


def _svd_table(
    state: TrainState, config: TrainConfig, token_of: np.ndarray, vocab_size: int
) -> TrainState:
    """The table with its track rows pointing where `svd_vectors` of the train split
    point, each at the random rows' mean norm: the model's first steps see the scale they
    were tuned for, and a rare track's direction counts as much as a popular one's (the
    output bias carries popularity). Special, padding and unplayed rows stay random."""
    table = np.array(state.table.table)
    features = config.model.features
    matrix = split_matrix(config.db, "train", token_of, vocab_size)
    vectors = svd_vectors(matrix[:, NUM_SPECIAL:], features, config.seed)
    random_norm = np.sqrt(np.mean(np.sum(table[:, :features] ** 2, axis=1)))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = table[NUM_SPECIAL:vocab_size, :features]
    table[NUM_SPECIAL:vocab_size, :features] = np.where(
        norms > 0, vectors * (random_norm / np.maximum(norms, 1e-30)), rows
    )
    return state._replace(table=init_table_state(jax.numpy.asarray(table)))


def _eval_batches(config: TrainConfig, token_of: np.ndarray, parallel: DataParallel) -> list:
    """A fixed set of validation batches (no <unk> noise, titles shown), reused at every
    evaluation."""
    source = TitledSource(config.db, "valid")
    if len(source) < config.batch_size:
        return []
    batches: Iterator = iter(
        loader(
            source,
            Windows(token_of, config.model.context, 0.0, title_buckets=config.model.title_buckets),
            parallel.local_batch_size,
            config.seed,
            num_epochs=1,
            shard_index=jax.process_index(),
            shard_count=jax.process_count(),
        )
    )
    out = []
    for batch in batches:
        out.append(parallel.global_batch(batch))
        if len(out) == config.eval_batches:
            break
    return out


class _Log:
    """metrics.jsonl, TensorBoard scalars and the caller's progress callback. Every
    process makes the records; only the primary one writes them."""

    def __init__(self, run_dir: Path, start: int, batch_size: int, on_log) -> None:
        self.path = run_dir / "metrics.jsonl"
        kept = _records_until(self.path, start)
        self.last: dict = json.loads(kept[-1]) if kept else {}  # so a finished run can report it
        self.file = self.writer = None
        if is_primary():
            from tensorboardX import SummaryWriter

            if self.path.exists():  # drop lines a killed run wrote after its last checkpoint
                _write_atomically(self.path, "".join(f"{line}\n" for line in kept))
            self.file = self.path.open("a")
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start or None)
        self.batch_size = batch_size
        self.on_log = on_log
        self.since = (start, time.perf_counter())

    def write(self, step: int, metrics: dict, valid_loss: float | None) -> dict:
        loss = float(metrics["loss"])
        now = time.perf_counter()
        steps_per_s = (step - self.since[0]) / max(now - self.since[1], 1e-9)
        self.since = (step, now)
        record = {
            "step": step,
            "loss": loss if math.isfinite(loss) else None,
            "valid_loss": valid_loss,
            "lr": float(metrics["lr"]),
            "steps_per_s": steps_per_s,
            "playlists_per_s": steps_per_s * self.batch_size,
        }
        if self.file is not None:
            self._save(record)
        if self.on_log is not None:
            self.on_log(record)
        self.last = record
        return record

    def _save(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        step = record["step"]
        for name in ("loss", "lr", "steps_per_s", "playlists_per_s"):
            if record[name] is not None:
                self.writer.add_scalar(f"train/{name}", record[name], step)
        if record["valid_loss"] is not None:
            self.writer.add_scalar("valid/loss", record["valid_loss"], step)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.writer.close()


def _records_until(path: Path, step: int) -> list[str]:
    """The lines of metrics.jsonl up to `step` (none for a new run)."""
    if not path.exists():
        return []
    return [
        line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step
    ]
