"""`train` and `evaluate`: the image-to-features VAE."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pressedplay.commands.console import count_progress, err, out, progress_bar
from pressedplay.commands.options import DbOption, DeviceOption, FeedbackDbOption, JsonOption
from pressedplay.errors import UserError
from pressedplay.terminal import printable

RunDirArgument = Annotated[
    Path | None,
    typer.Argument(
        metavar="[RUN_DIR]",
        help="Run directory: config, checkpoints, logs [default: a new one in the data "
        "folder's runs/].",
    ),
]
EpochsOption = Annotated[
    int | None, typer.Option(min=1, help="Epochs [default: 50; 5 with --feedback].")
]
BatchSizeOption = Annotated[
    int | None, typer.Option(min=1, help="Examples per step, over all processes [64].")
]
LrOption = Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate [1e-3].")]
KlWeightOption = Annotated[
    float | None, typer.Option(min=0.0, help="Weight of the KL term in the loss.")
]
AttentionOption = Annotated[
    str | None, typer.Option(help="spatial (default) or height (the original's softmax).")
]
AugmentOption = Annotated[
    str | None,
    typer.Option(help="Online distortions: geometric (default), all (the original's), none."),
]
TargetsOption = Annotated[
    str | None,
    typer.Option(help="cover (default: one example per cover, its tracks' mean) or pairs."),
]
ImageSizeOption = Annotated[
    int | None, typer.Option(min=8, help="Side of the squashed input image [128].")
]
LatentDimOption = Annotated[int | None, typer.Option(min=1, help="Latent dimensions [32].")]
WeightDecayOption = Annotated[float | None, typer.Option(min=0.0, help="AdamW weight decay [0].")]
LoaderWorkersOption = Annotated[
    int | None, typer.Option(min=0, help="Data loader processes per training process [2].")
]
TrainDeviceOption = Annotated[str | None, typer.Option(help="auto (default), cpu, cuda or mps.")]
TrainSeedOption = Annotated[
    int | None, typer.Option(min=0, help="Seed of initialisation, order, distortions [0].")
]
ResumeOption = Annotated[
    bool, typer.Option(help="Continue RUN_DIR from its last checkpoint, exactly.")
]
FeedbackOption = Annotated[
    bool,
    typer.Option(help="Fine-tune RUN_DIR's model with the likes and dislikes stored."),
]
FeedbackWeightOption = Annotated[
    float | None, typer.Option(min=0.0, help="Weight of the feedback loss [1.0].")
]
FeedbackMarginOption = Annotated[
    float | None,
    typer.Option(min=0.0, help="Push disliked predictions this far away [1.0, standardised]."),
]


def train_command(
    run_dir: RunDirArgument = None,
    db: DbOption = Path("data/covers.db"),
    epochs: EpochsOption = None,
    batch_size: BatchSizeOption = None,
    lr: LrOption = None,
    kl_weight: KlWeightOption = None,
    attention: AttentionOption = None,
    augment: AugmentOption = None,
    targets: TargetsOption = None,
    image_size: ImageSizeOption = None,
    latent_dim: LatentDimOption = None,
    weight_decay: WeightDecayOption = None,
    workers: LoaderWorkersOption = None,
    device: TrainDeviceOption = None,
    seed: TrainSeedOption = None,
    resume: ResumeOption = False,
    feedback: FeedbackOption = False,
    feedback_db: FeedbackDbOption = None,
    feedback_weight: FeedbackWeightOption = None,
    feedback_margin: FeedbackMarginOption = None,
    json_: JsonOption = False,
) -> None:
    """Train the image-to-features VAE on a cover dataset (torchrun for several GPUs).

    Checkpoints go to RUN_DIR/best.pt (lowest validation MSE) and RUN_DIR/last.pt, curves
    to RUN_DIR/metrics.jsonl and RUN_DIR/tensorboard. Then the VAE, ridge on colour
    statistics, their blend and the mean are scored on the valid split; predict answers
    with the best (RUN_DIR/candidates.json).
    """
    from pressedplay import checkpoints
    from pressedplay.config import for_run
    from pressedplay.train import train

    if run_dir is None:
        if resume or feedback:
            raise UserError("--resume and --feedback need the RUN_DIR to continue")
        run_dir = checkpoints.new_run_dir()
    feedback_db, epochs = _feedback_defaults(feedback, feedback_db, epochs)
    config = for_run(
        run_dir,
        resume=resume,
        feedback=feedback,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        kl_weight=kl_weight,
        attention=attention,
        augment=augment,
        targets=targets,
        image_size=image_size,
        latent_dim=latent_dim,
        weight_decay=weight_decay,
        feedback_weight=feedback_weight,
        feedback_margin=feedback_margin,
        workers=workers,
        device=device,
        seed=seed,
    )

    bar, progress = _training_progress(json_)
    with bar:
        summary = train(
            config, run_dir, db, resume=resume, feedback_db=feedback_db, progress=progress
        )
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 speaks for the run
        return
    if json_:
        print(json.dumps(summary))
        return
    out.print(
        f"trained {summary['epochs']} epochs on {summary['device']} in {summary['seconds']:.0f} s: "
        f"best valid MSE {summary['best_val_mse']:.4f} (epoch {summary['best_epoch']}) "
        f"-> {run_dir / checkpoints.BEST}"
    )
    scored = ", ".join(f"{name} {mse:.4f}" for name, mse in summary["valid_mse"].items())
    out.print(f"valid MSE of the candidates: {scored}; predict answers with {summary['chosen']}")


def _feedback_defaults(
    feedback: bool, feedback_db: Path | None, epochs: int | None
) -> tuple[Path | None, int | None]:
    """--feedback's database and epochs, defaults filled in; --feedback-db alone refused."""
    if not feedback:
        if feedback_db is not None:
            raise UserError("--feedback-db goes with --feedback")
        return None, epochs
    from pressedplay.feedback import default_path

    return feedback_db or default_path(), 5 if epochs is None else epochs


def _training_progress(json_: bool) -> tuple[Progress, Callable[[dict], None]]:
    """A bar over each epoch's batches, and a line per epoch on stderr (not with --json)."""
    bar = progress_bar(
        TextColumn("{task.completed}/{task.total} batches"),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    task = bar.add_task("training", total=None, detail="")

    def progress(event: dict) -> None:
        if event["kind"] == "batch":
            bar.update(
                task,
                description=f"epoch {event['epoch']}/{event['epochs']}",
                completed=event["batch"],
                total=event["batches"],
                detail=f"loss {event['loss']:.3f}",
            )
        elif not json_:
            err.print(
                f"epoch {event['epoch']}: train loss {event['train_loss']:.4f}, "
                f"valid MSE {event['val_mse']:.4f}, {event['seconds']:.0f} s"
            )

    return bar, progress


def evaluate_command(
    model: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory or checkpoint file.")
    ],
    db: DbOption = Path("data/covers.db"),
    split: Annotated[
        str, typer.Option(help="train, valid, test, or all (another dataset as a test set).")
    ] = "test",
    catalog: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Catalog whose genres judge genre-labelled covers."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 2,
    device: DeviceOption = "auto",
    json_: JsonOption = False,
) -> None:
    """Per-feature MSE and MAE of the model against the mean predictor, a ridge
    regression on colour statistics, the colour prior and the catalog's mean (standardised
    units, bootstrap 95% intervals), and genre separation on genre-labelled covers."""
    from pressedplay.evaluate import evaluate

    bar, advance = count_progress("evaluating")
    with bar:
        report = evaluate(
            model,
            db,
            split=split,
            catalog=catalog,
            batch_size=batch_size,
            workers=workers,
            device=device,
            progress=advance,
        )
    if json_:
        print(json.dumps(report))
        return
    if "models" in report:
        _print_errors(report)
    if "genres" in report:
        _print_genres(report)


def _print_errors(report: dict) -> None:
    models = report["models"]
    out.print(
        f"{report['split']} split of {printable(report['db'])}: {report['covers']:,} covers, "
        f"{report['pairs']:,} pairs; errors in standardised units, baselines fitted on "
        f"{printable(report['baselines_from'])}; [95% bootstrap intervals]"
    )
    summary = Table("model", "MSE", "MAE", "MSE / mean's", "MSE - mean's")
    reference = models["mean"]["mse"]
    for name, scores in models.items():
        ratio = scores["mse"] / reference if reference else float("nan")
        low, high = scores["mse_ci"]
        d_low, d_high = scores["minus_mean_ci"]
        summary.add_row(
            name,
            f"{scores['mse']:.4f} [{low:.3f}, {high:.3f}]",
            f"{scores['mae']:.4f}",
            f"{ratio:.2f}",
            f"{scores['mse'] - reference:+.4f} [{d_low:+.3f}, {d_high:+.3f}]",
        )
    out.print(summary)
    if "chosen" in report:
        out.print(
            f"run: what predict answers with, the {report['chosen']} chosen on the valid split"
        )
    per_feature = Table("feature", *(f"{name} MSE" for name in models))
    for feature in models["vae"]["per_feature"]:
        per_feature.add_row(
            feature, *(f"{models[m]['per_feature'][feature]['mse']:.3f}" for m in models)
        )
    out.print(per_feature)


def _print_genres(report: dict) -> None:
    genres = report["genres"]
    counts = ", ".join(f"{printable(g)} {n}" for g, n in genres["genres"].items())
    out.print(
        f"genre separation: {genres['covers']:,} covers labelled with one catalog genre "
        f"({counts}; {genres['left_out']:,} left out); chance AUC 0.5"
    )
    table = Table(
        "model", "pairwise AUC", "nearest-centroid accuracy", "chance", "accuracy - chance"
    )
    for name, scores in genres["models"].items():
        low, high = scores["auc_ci"]
        d_low, d_high = scores["accuracy_minus_chance_ci"]
        table.add_row(
            name,
            f"{scores['auc']:.3f} [{low:.3f}, {high:.3f}]",
            f"{scores['accuracy']:.3f}",
            f"{scores['chance']:.3f}",
            f"{scores['accuracy'] - scores['chance']:+.3f} [{d_low:+.3f}, {d_high:+.3f}]",
        )
    out.print(table)
