"""The `pressedplay` command line: parses, calls the library, prints."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# typer vendors click; its exception types are not re-exported publicly.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from pressedplay import __version__
from pressedplay.errors import UserError, storage_error
from pressedplay.terminal import SafeConsole, printable

app = typer.Typer(
    help="pressedplay: from a picture to audio features to a playlist of real tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = SafeConsole(soft_wrap=True)
if not out.is_terminal:  # piped or redirected: rich's 80 columns would cut tables short
    out.width = 160
err = SafeConsole(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        print(f"pressedplay {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """pressedplay: from a picture to audio features to a playlist of real tracks."""


JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]


@app.command()
def features(
    json_: JsonOption = False,
) -> None:
    """List the eight audio features a picture is mapped to, with their ranges."""
    from pressedplay.features import describe

    rows = describe()
    if json_:
        print(json.dumps(rows))
        return
    table = Table("feature", "range", "meaning")
    for row in rows:
        unit = f" {row['unit']}" if row["unit"] else ""
        table.add_row(row["name"], f"{row['low']:g} to {row['high']:g}{unit}", row["meaning"])
    out.print(table)


catalog_app = typer.Typer(
    help="Catalogs of real tracks with audio features: import, download, inspect.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")


def _bar(*columns: ProgressColumn) -> Progress:
    """A progress bar on stderr, hidden when stderr is not a terminal (logs stay clean)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def _bytes_progress() -> tuple[Progress, Callable[[int], None], Callable[[str, int | None], None]]:
    """A byte-counting bar and its callbacks."""
    bar = _bar(DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    task = bar.add_task("", total=None)

    def stage(description: str, total: int | None) -> None:
        bar.reset(task, description=description, total=total, completed=0)

    return bar, lambda n: bar.advance(task, n), stage


def _print_import(report: dict) -> None:
    skipped = sum(report["skipped"].values())
    out.print(
        f"catalog {report['catalog']}: {report['tracks']:,} tracks from {report['rows']:,} rows "
        f"({report['duplicates_merged']:,} duplicates merged, {skipped:,} rows skipped) "
        f"in {report['seconds']:.1f} s -> {report['path']}"
    )
    for reason, count in report["skipped"].items():
        out.print(f"  skipped {count:,}: {reason}")
    if report["genres"]:
        out.print("  genres: " + ", ".join(f"{g} {n:,}" for g, n in report["genres"].items()))


CatalogName = Annotated[str, typer.Option("--name", help="Name to store the catalog under.")]
CatalogForce = Annotated[
    bool, typer.Option("--force", help="Replace the catalog if it already exists.")
]


@catalog_app.command("import")
def catalog_import(
    csv_path: Annotated[
        Path, typer.Argument(metavar="CSV", help="CSV of tracks with audio features.")
    ],
    name: CatalogName = "tidytuesday",
    force: CatalogForce = False,
    json_: JsonOption = False,
) -> None:
    """Import a CSV of tracks with audio features (TidyTuesday or Kaggle layouts)."""
    from pressedplay.catalog import import_csv

    bar, advance, stage = _bytes_progress()
    with bar:
        report = import_csv(csv_path, name, force=force, progress=advance, stage=stage)
    if json_:
        print(json.dumps(report))
        return
    _print_import(report)


@catalog_app.command("download")
def catalog_download(
    name: CatalogName = "tidytuesday",
    url: Annotated[
        str | None,
        typer.Option("--url", help="CSV to fetch instead of TidyTuesday's spotify_songs.csv."),
    ] = None,
    sha256: Annotated[
        str | None,
        typer.Option("--sha256", help="Expected sha256 of the file at --url (required with it)."),
    ] = None,
    force: CatalogForce = False,
    json_: JsonOption = False,
) -> None:
    """Download TidyTuesday's Spotify songs, verify the sha256, import as a catalog."""
    from pressedplay.catalog import TIDYTUESDAY_SHA256, TIDYTUESDAY_URL, download

    if url is not None and sha256 is None:
        raise UserError("--url needs --sha256 with the file's expected checksum")
    bar, advance, stage = _bytes_progress()
    with bar:
        report = download(
            name,
            url or TIDYTUESDAY_URL,
            sha256 or TIDYTUESDAY_SHA256,
            force=force,
            progress=advance,
            stage=stage,
        )
    if json_:
        print(json.dumps(report))
        return
    fetched = report["download"]
    how = "cached" if fetched["cached"] else "downloaded"
    out.print(f"{how} {fetched['url']} -> {fetched['file']} (sha256 verified)")
    _print_import(report)


@catalog_app.command("info")
def catalog_info(
    name_or_path: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME_OR_PATH]", help="Catalog name or .db file (default: tidytuesday)."
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Show a catalog's track count, genres and feature ranges."""
    from pressedplay.catalog import info

    report = info(name_or_path)
    if json_:
        print(json.dumps(report))
        return
    out.print(f"{report['path']}: {report['tracks']:,} tracks from {report['source']}")
    if report["genres"]:
        out.print("genres: " + ", ".join(f"{g} {n:,}" for g, n in report["genres"].items()))
    if report["subgenres"]:
        out.print("subgenres: " + ", ".join(f"{g} {n:,}" for g, n in report["subgenres"].items()))
    if report["tracks_without_genre"]:
        out.print(f"tracks without genre: {report['tracks_without_genre']:,}")
    table = Table("feature", "min", "mean", "max")
    for feature, r in report["features"].items():
        table.add_row(feature, f"{r['min']:.3f}", f"{r['mean']:.3f}", f"{r['max']:.3f}")
    out.print(table)


@catalog_app.command("list")
def catalog_list(json_: JsonOption = False) -> None:
    """List the catalogs in the pressedplay data folder."""
    from pressedplay.catalog import list_catalogs

    found = list_catalogs()
    if json_:
        print(json.dumps(found))
        return
    if not found:
        out.print("no catalogs yet: run `pressedplay catalog download`")
        return
    table = Table("name", "tracks", "path")
    for entry in found:
        tracks = f"{entry['tracks']:,}" if "tracks" in entry else entry["error"]
        table.add_row(entry["name"], tracks, entry["path"])
    out.print(table)


def _count_progress(description: str) -> tuple[Progress, Callable[[int], None]]:
    """A counting bar and its callback."""
    bar = _bar(TextColumn("{task.completed:,}"), TimeElapsedColumn())
    task = bar.add_task(description, total=None)
    return bar, lambda n: bar.advance(task, n)


def _print_dataset(report: dict) -> None:
    out.print(
        f"{report['path']}: {report['covers']:,} covers, {report['tracks']:,} tracks, "
        f"{report['pairs']:,} cover-track pairs"
    )
    table = Table("split", "covers", "pairs")
    for split, counts in report["splits"].items():
        table.add_row(split, f"{counts['covers']:,}", f"{counts['pairs']:,}")
    out.print(table)
    for reason, count in report["skipped"].items():
        out.print(f"  skipped {count:,}: {reason}")


DatasetForce = Annotated[
    bool,
    typer.Option("--force", help="Replace OUT if it exists; discard another build's partial file."),
]


@app.command("build-db")
def build_db(
    out_db: Annotated[
        Path, typer.Argument(metavar="OUT.db", help="The dataset to create (sqlite).")
    ],
    folder: Annotated[
        Path | None,
        typer.Argument(metavar="DIR", help="With --source folder: the folder of cover images."),
    ] = None,
    source: Annotated[
        str | None, typer.Option(metavar="folder|spotify", help="Where the covers come from.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            metavar="LABELS.csv",
            help="With --source folder: CSV with `image` (path relative to DIR) and "
            "`track_id` or the eight feature columns.",
        ),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            metavar="NAME", help="Catalog (name or .db path) giving features by track id."
        ),
    ] = None,
    playlist: Annotated[
        list[str] | None,
        typer.Option(
            metavar="URL_OR_ID",
            help="With --source spotify: a playlist URL, URI or id (repeatable).",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            metavar="ID", help="With --source spotify: a user id; their public playlists."
        ),
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="With --source spotify: the playlists a search finds."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(metavar="N", min=1, help="With --source spotify: at most N playlists."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="With --source folder: processes decoding images (default: cores)."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Seed of the train/valid/test split and of --materialize.")
    ] = 0,
    materialize: Annotated[
        int | None,
        typer.Option(metavar="K", min=1, help="Also store K distorted copies of each cover."),
    ] = None,
    force: DatasetForce = False,
    json_: JsonOption = False,
) -> None:
    """Build a cover dataset from a folder of images or from Spotify playlists.

    An interrupted build resumes from OUT.partial when run again with the same source;
    unusable images and tracks are counted, never fatal. OUT appears only when complete.
    """
    if source is None:
        raise UserError("say where the covers come from: --source folder or --source spotify")
    spotify_only = {"--playlist": playlist, "--user": user, "--query": query, "--limit": limit}
    if source == "folder":
        if folder is None or labels is None:
            raise UserError("--source folder needs DIR and --labels LABELS.csv")
        extra = [name for name, value in spotify_only.items() if value]
        if extra:
            raise UserError(f"{', '.join(extra)} only go with --source spotify")
    elif source == "spotify":
        if folder is not None or labels is not None or workers is not None:
            raise UserError("DIR, --labels and --workers only go with --source folder")
        if not (playlist or user or query):
            raise UserError("--source spotify needs --playlist, --user or --query")
    else:
        raise UserError(f"--source {source}: expected --source folder or --source spotify")
    bar, advance = _count_progress("covers" if source == "folder" else "playlists")
    with bar:
        if source == "folder":
            from pressedplay.folder import build_from_folder

            report = build_from_folder(
                out_db,
                folder,
                labels,
                catalog=catalog,
                force=force,
                seed=seed,
                workers=workers,
                progress=advance,
            )
        else:
            from pressedplay.spotify import collect

            report = collect(
                out_db,
                playlists=playlist or (),
                user=user,
                query=query,
                catalog=catalog,
                limit=limit,
                force=force,
                seed=seed,
                progress=advance,
            )
    if materialize is not None:
        from pressedplay.augment import materialize as add_copies

        bar, advance = _count_progress("distorted copies")
        with bar:
            report["materialized"] = add_copies(out_db, materialize, seed=seed, progress=advance)
    if json_:
        print(json.dumps(report))
        return
    _print_dataset(report)
    if materialize is not None:
        copies = report["materialized"]
        out.print(f"  materialized {copies['copies']:,} distorted copies ({materialize} per cover)")


@app.command("info")
def info(
    db: Annotated[
        Path, typer.Argument(metavar="DB", help="A cover dataset made by build-db or synth-covers.")
    ],
    json_: JsonOption = False,
) -> None:
    """Counts, skipped inputs, splits and feature statistics of a cover dataset."""
    from pressedplay.dataset import info as dataset_info

    report = dataset_info(db)
    if json_:
        print(json.dumps(report))
        return
    _print_dataset(report)
    if report["source"]:
        out.print(f"source: {report['source']}")
    table = Table("feature", "mean (train)", "std (train)")
    for name, stats in report["feature_stats"].items():
        table.add_row(name, f"{stats['mean']:.4g}", f"{stats['std']:.4g}")
    out.print(table)


@app.command("synth-covers")
def synth_covers(
    out_db: Annotated[
        Path, typer.Argument(metavar="OUT.db", help="The dataset to create (sqlite).")
    ],
    covers: Annotated[int, typer.Option(min=1, help="Number of cover images.")] = 2000,
    tracks_per_cover: Annotated[
        int, typer.Option(min=1, help="Tracks paired with each cover.")
    ] = 20,
    seed: Annotated[int, typer.Option(min=0, help="Random seed; same seed, same dataset.")] = 0,
    catalog: Annotated[
        str, typer.Option(help="Name of the matching catalog written with it.")
    ] = "synth",
    force: DatasetForce = False,
    json_: JsonOption = False,
) -> None:
    """Write synthetic covers whose colours and textures carry their tracks' features.

    Also writes a catalog of the synthetic tracks, so every command that looks tracks up
    by id works on them; for tests, benchmarks and the demo, with no network.
    """
    from pressedplay.synth_covers import synth_covers as run_synth

    bar, advance = _count_progress("drawing covers")
    with bar:
        report = run_synth(
            out_db,
            covers=covers,
            tracks_per_cover=tracks_per_cover,
            seed=seed,
            catalog_name=catalog,
            force=force,
            progress=advance,
        )
    if json_:
        print(json.dumps(report))
        return
    _print_dataset(report)
    if "catalog" in report:
        out.print(f"catalog {catalog}: {report['catalog']['tracks']:,} tracks")


DbOption = Annotated[
    Path, typer.Option("--db", help="A cover dataset from build-db or synth-covers.")
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        metavar="RUN_DIR|FILE|prior",
        help="A run directory, a checkpoint file, or `prior` (the colour prior) "
        "[default: the latest trained run, else the prior].",
    ),
]
DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
CatalogOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Catalog name or .db file [default: tidytuesday]."),
]
FeedbackDbOption = Annotated[
    Path | None,
    typer.Option(help="Feedback database [default: feedback.db in the data folder]."),
]


@app.command("train")
def train_command(
    run_dir: Annotated[
        Path | None,
        typer.Argument(
            metavar="[RUN_DIR]",
            help="Run directory: config, checkpoints, logs [default: a new one in the data "
            "folder's runs/].",
        ),
    ] = None,
    db: DbOption = Path("data/covers.db"),
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs [default: 50; 5 with --feedback].")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Examples per step, over all processes [64].")
    ] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate [1e-3].")] = None,
    kl_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Weight of the KL term in the loss.")
    ] = None,
    attention: Annotated[
        str | None, typer.Option(help="spatial (default) or height (the original's softmax).")
    ] = None,
    augment: Annotated[
        str | None,
        typer.Option(help="Online distortions: geometric (default), all (the original's), none."),
    ] = None,
    targets: Annotated[
        str | None,
        typer.Option(help="cover (default: one example per cover, its tracks' mean) or pairs."),
    ] = None,
    image_size: Annotated[
        int | None, typer.Option(min=8, help="Side of the squashed input image [128].")
    ] = None,
    latent_dim: Annotated[int | None, typer.Option(min=1, help="Latent dimensions [32].")] = None,
    weight_decay: Annotated[
        float | None, typer.Option(min=0.0, help="AdamW weight decay [0].")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=0, help="Data loader processes per training process [2].")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto (default), cpu, cuda or mps.")] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed of initialisation, order, distortions [0].")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue RUN_DIR from its last checkpoint, exactly.")
    ] = False,
    feedback: Annotated[
        bool,
        typer.Option(help="Fine-tune RUN_DIR's model with the likes and dislikes stored."),
    ] = False,
    feedback_db: FeedbackDbOption = None,
    feedback_weight: Annotated[
        float | None, typer.Option(min=0.0, help="Weight of the feedback loss [1.0].")
    ] = None,
    feedback_margin: Annotated[
        float | None,
        typer.Option(min=0.0, help="Push disliked predictions this far away [1.0, standardised]."),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Train the image-to-features VAE on a cover dataset (torchrun for several GPUs).

    Checkpoints go to RUN_DIR/best.pt (lowest validation MSE) and RUN_DIR/last.pt, curves
    to RUN_DIR/metrics.jsonl and RUN_DIR/tensorboard.
    """
    from pressedplay import checkpoints
    from pressedplay.config import for_run
    from pressedplay.train import train

    if run_dir is None:
        if resume or feedback:
            raise UserError("--resume and --feedback need the RUN_DIR to continue")
        run_dir = checkpoints.new_run_dir()
    if feedback:
        from pressedplay.feedback import default_path

        feedback_db = feedback_db or default_path()
        if epochs is None:
            epochs = 5
    elif feedback_db is not None:
        raise UserError("--feedback-db goes with --feedback")
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

    bar = _bar(
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


@app.command("evaluate")
def evaluate_command(
    model: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory or checkpoint file.")
    ],
    db: DbOption = Path("data/covers.db"),
    split: Annotated[str, typer.Option(help="train, valid or test.")] = "test",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per forward pass.")] = 64,
    workers: Annotated[int, typer.Option(min=0, help="Data loader processes.")] = 2,
    device: DeviceOption = "auto",
    json_: JsonOption = False,
) -> None:
    """Per-feature MSE and MAE of the model against the mean predictor, a ridge
    regression on colour statistics and the colour prior (standardised units)."""
    from pressedplay.evaluate import evaluate

    bar, advance = _count_progress("evaluating")
    with bar:
        report = evaluate(
            model,
            db,
            split=split,
            batch_size=batch_size,
            workers=workers,
            device=device,
            progress=advance,
        )
    if json_:
        print(json.dumps(report))
        return
    models = report["models"]
    out.print(
        f"{report['split']} split of {report['db']}: {report['covers']:,} covers, "
        f"{report['pairs']:,} pairs; errors in standardised units"
    )
    summary = Table("model", "MSE", "MAE", "MSE / mean's")
    reference = models["mean"]["mse"]
    for name, scores in models.items():
        ratio = scores["mse"] / reference if reference else float("nan")
        summary.add_row(name, f"{scores['mse']:.4f}", f"{scores['mae']:.4f}", f"{ratio:.2f}")
    out.print(summary)
    per_feature = Table("feature", *(f"{name} MSE" for name in models))
    for feature in models["vae"]["per_feature"]:
        per_feature.add_row(
            feature, *(f"{models[m]['per_feature'][feature]['mse']:.3f}" for m in models)
        )
    out.print(per_feature)


def _feature_table(results: list[dict]) -> Table:
    """Features as rows, one column per answered image."""
    from pressedplay.features import FEATURES

    answered = [r for r in results if "features" in r]
    table = Table("feature", *(Path(r["image"]).name for r in answered))
    for feature in FEATURES:
        unit = f" {feature.unit}" if feature.unit else ""
        table.add_row(feature.name, *(f"{r['features'][feature.name]:.3f}{unit}" for r in answered))
    return table


@app.command("predict")
def predict_command(
    images: Annotated[
        list[Path], typer.Argument(metavar="IMG...", help="Images to predict features for.")
    ],
    model: ModelOption = None,
    plot: Annotated[
        Path | None, typer.Option(metavar="RADAR.png", help="Also draw the features as a radar.")
    ] = None,
    sample: Annotated[
        bool, typer.Option(help="Draw from the latent instead of using its mean.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Seed of --sample.")] = 0,
    device: DeviceOption = "cpu",
    json_: JsonOption = False,
) -> None:
    """The eight audio features of each image, in original units (loudness in dB).

    Images that cannot be read are reported one line each; the others are still answered
    (exit code 2 if any failed).
    """
    from pressedplay.predict import load_predictor, predict_files

    _inference_threads(device)
    predictor = load_predictor(model, device=device, sample=sample, seed=seed)
    results = predict_files(images, predictor)
    failed = [r for r in results if "error" in r]
    if plot is not None and len(failed) < len(results):
        from pressedplay.plots import radar

        radar([r for r in results if "features" in r], plot)
    if json_:
        print(json.dumps(results))
    else:
        out.print(f"model: {predictor.name}")
        if len(failed) < len(results):
            out.print(_feature_table(results))
        if plot is not None and len(failed) < len(results):
            out.print(f"radar chart -> {plot}")
    for result in failed:
        err.print(f"error: {result['image']}: {result['error']}", highlight=False)
    if failed:
        raise typer.Exit(2)


def _inference_threads(device: str) -> None:
    """One intra-op thread on CPU: a forward pass of a few images is too small to split,
    and on a busy machine extra threads made single predictions 3-20x slower
    (`make bench-predict`)."""
    if device == "cpu":
        import torch

        torch.set_num_threads(1)


def _predict_one(image: Path, model: str | None, device: str) -> tuple[bytes, dict, str]:
    """(the image's bytes, its features, the model's name), the file read once; or
    UserError with the image's own error."""
    from pressedplay.images import ImageError
    from pressedplay.predict import load_predictor, predict_one, read

    _inference_threads(device)
    predictor = load_predictor(model, device=device)
    try:
        data = read(image)
    except ImageError as exc:
        raise UserError(f"{image}: {exc}") from None
    return data, predict_one(str(image), data, predictor)["features"], predictor.name


@app.command("generate")
def generate_command(
    image: Annotated[Path, typer.Argument(metavar="IMG", help="The picture to match.")],
    model: ModelOption = None,
    catalog: CatalogOption = None,
    genre: Annotated[
        list[str] | None,
        typer.Option(metavar="G", help="Keep tracks of this catalog genre (repeatable)."),
    ] = None,
    genre_mapping: Annotated[
        Path | None,
        typer.Option(
            metavar="MAPPING.json",
            help="With --spotify: your own {fine genre: [genres]} mapping for top artists.",
        ),
    ] = None,
    n: Annotated[int, typer.Option("--n", min=1, help="Tracks in the playlist.")] = 20,
    max_per_artist: Annotated[int, typer.Option(min=1, help="At most this many per artist.")] = 2,
    format_: Annotated[str, typer.Option("--format", help="table, json or m3u.")] = "table",
    spotify: Annotated[
        bool,
        typer.Option(
            "--spotify",
            help="Save as a private playlist in your Spotify account with the image as cover; "
            "without --genre, filter by your top artists' genres.",
        ),
    ] = False,
    continue_: Annotated[
        Path | None,
        typer.Option(
            "--continue",
            metavar="TRECS_RUN",
            help="Seed tracks nearest the picture, continued by this trecs run's transformer "
            "and reranked toward the picture (needs pressedplay[trecs]).",
        ),
    ] = None,
    db: Annotated[
        Path | None,
        typer.Option(
            metavar="MPD_DB",
            help="With --continue: the trecs database with audio features [default: the run's].",
        ),
    ] = None,
    feature_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --continue: 0 ranks the transformer's candidates by its score alone, "
            "1 by distance to the picture's features alone [default: 0.6].",
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            min=1, help="With --continue: seed tracks, nearest the picture, one per artist [5]."
        ),
    ] = None,
    candidates: Annotated[
        int | None,
        typer.Option(
            min=1, help="With --continue: the transformer's best tracks reranked per step [100]."
        ),
    ] = None,
    device: DeviceOption = "cpu",
) -> None:
    """A playlist of catalog tracks whose features are nearest to the picture's, or with
    --continue a trecs transformer's continuation of the picture's nearest tracks."""
    from pressedplay.playlist import generate, genres_for_user, to_m3u

    if format_ not in ("table", "json", "m3u"):
        raise UserError(f"--format {format_!r}: expected table, json or m3u")
    if genre_mapping is not None and not spotify:
        raise UserError("--genre-mapping goes with --spotify (it maps your top artists' genres)")
    continuing = {
        "--db": db,
        "--feature-weight": feature_weight,
        "--seeds": seeds,
        "--candidates": candidates,
    }
    if continue_ is None:
        given = [name for name, value in continuing.items() if value is not None]
        if given:
            raise UserError(f"{', '.join(given)} only go with --continue TRECS_RUN")
    else:
        from pressedplay import continuation

        given = [o for o, v in (("--catalog", catalog), ("--genre", genre)) if v is not None]
        given += ["--genre-mapping"] if genre_mapping is not None else []
        if given:
            raise UserError(
                f"{', '.join(given)} do not apply with --continue: its tracks come from the "
                "trecs database (--db)"
            )
        continuation.require_trecs()  # before the picture's features are predicted
    data, features, model_name = _predict_one(image, model, device)
    client = None
    genres = genre or None
    note = None
    if spotify:
        from pressedplay.genres import load_mapping
        from pressedplay.playlist import load_index
        from pressedplay.spotify import login_url, user_client

        client = user_client()
        url = login_url(client)
        if url:
            err.print(f"log in to Spotify in the browser window that opens, or open: {url}")
        if genres is None and continue_ is None:
            mapping = load_mapping(genre_mapping) if genre_mapping is not None else None
            # The index generate() searches next (cached), not a second catalog query.
            known = load_index(catalog).genres
            genres, note = genres_for_user(client, known, mapping)
            genres = genres or None
    if continue_ is None:
        result = generate(
            features, catalog=catalog, genres=genres, n=n, max_per_artist=max_per_artist
        )
    else:
        weight = continuation.DEFAULT_FEATURE_WEIGHT if feature_weight is None else feature_weight
        result = continuation.load_continuer(continue_, db).continue_playlist(
            features,
            n=n,
            feature_weight=weight,
            seeds=seeds or continuation.DEFAULT_SEEDS,
            candidates=candidates or continuation.DEFAULT_CANDIDATES,
            max_per_artist=max_per_artist,
        )
        if len(result["tracks"]) < n:
            note = (
                f"only {len(result['tracks'])} tracks: the run knows no more tracks with "
                "audio features under the artist cap"
            )
    result["model"] = model_name
    if note:
        err.print(f"notice: {note}", highlight=False)
    if client is not None:
        from pressedplay.spotify import create_playlist

        result["spotify"] = create_playlist(
            client,
            f"pressedplay: {image.stem}",
            f"Tracks matching the picture {image.name}, picked by pressedplay ({model_name}).",
            [track["id"] for track in result["tracks"]],
            data,
        )
        for warning in result["spotify"]["warnings"]:
            err.print(f"warning: {warning}", highlight=False)
    if format_ == "json":
        print(json.dumps(result))
    elif format_ == "m3u":
        sys.stdout.write(to_m3u(result))
    elif continue_ is not None:
        out.print(
            f"model: {model_name}; trecs run: {result['trecs_run']}; database: {result['db']}; "
            f"feature weight: {result['feature_weight']:g}",
            highlight=False,
        )
        out.print(_feature_table([{"image": str(image), "features": features}]))
        for title, rows in (("seeds", result["seeds"]), ("continuation", result["tracks"])):
            scored = ("log p", "rank") if title == "continuation" else ()
            table = Table("#", "track", "artist", *scored, "distance", "link", title=title)
            for position, track in enumerate(rows, 1):
                scores = (f"{track['score']:.2f}", str(track["rank"])) if scored else ()
                row = (track["name"], track["artist"], *scores, f"{track['distance']:.2f}")
                table.add_row(str(position), *row, track["url"])
            out.print(table)
    else:
        out.print(f"model: {model_name}; catalog: {result['catalog']}", highlight=False)
        if result["genres"]:
            out.print("genres: " + ", ".join(result["genres"]), highlight=False)
        out.print(_feature_table([{"image": str(image), "features": features}]))
        table = Table("#", "track", "artist", "genres", "distance")
        table.add_column("link", overflow="fold")  # folded in a narrow terminal, never cut
        for position, track in enumerate(result["tracks"], 1):
            table.add_row(
                str(position),
                track["name"],
                track["artist"],
                ", ".join(track["genres"]),
                f"{track['distance']:.2f}",
                track["url"],
            )
        out.print(table)
    if "spotify" in result:
        err.print(f"saved to Spotify: {result['spotify']['url']}", highlight=False)


@app.command("feedback")
def feedback_command(
    image: Annotated[Path, typer.Argument(metavar="IMG", help="The picture the playlist was for.")],
    like: Annotated[
        bool | None,
        typer.Option("--like/--dislike", help="Your verdict on the playlist for IMG."),
    ] = None,
    playlist: Annotated[
        str | None,
        typer.Option(
            metavar="FILE_OR_ID",
            help="The playlist judged: a `generate --format json|m3u` file or a Spotify "
            "playlist link or id.",
        ),
    ] = None,
    model: ModelOption = None,
    catalog: CatalogOption = None,
    feedback_db: FeedbackDbOption = None,
    device: DeviceOption = "cpu",
    json_: JsonOption = False,
) -> None:
    """Store a like or dislike for an image's playlist; `train --feedback` learns from them."""
    from pressedplay import feedback
    from pressedplay.catalog import resolve_catalog

    if like is None:
        raise UserError("say --like or --dislike")
    data, features, model_name = _predict_one(image, model, device)
    reference, track_ids = feedback.parse_playlist(playlist) if playlist else (None, [])
    playlist_features = None
    if track_ids:
        playlist_features = feedback.playlist_features(track_ids, resolve_catalog(catalog))
    path = feedback_db or feedback.default_path()
    row_id = feedback.record(
        path,
        image=data,
        image_name=str(image),
        model=model_name,
        predicted=features,
        verdict="like" if like else "dislike",
        playlist_ref=reference,
        track_ids=track_ids,
        playlist_features=playlist_features,
    )
    report = {
        "id": row_id,
        "db": str(path),
        "image": str(image),
        "verdict": "like" if like else "dislike",
        "tracks": len(track_ids),
    }
    if json_:
        print(json.dumps(report))
        return
    out.print(
        f"stored {report['verdict']} #{row_id} for {image} ({len(track_ids)} tracks) in {path}",
        highlight=False,
    )


@app.command("serve")
def serve_command(
    host: Annotated[
        str, typer.Option(help="Address to listen on (0.0.0.0: every network interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    model: ModelOption = None,
    catalog: CatalogOption = None,
    feedback_db: FeedbackDbOption = None,
    device: DeviceOption = "cpu",
) -> None:
    """The web page: drop a picture, see its features and playlist, refine it by genre,
    like or dislike it, save it to Spotify. Its JSON API is described at /openapi.json."""
    from pressedplay.server import bind, create_app, hosts_for, serve, url

    _inference_threads(device)
    web = create_app(
        model=model,
        catalog=catalog,
        feedback_db=feedback_db,
        device=device,
        allowed_hosts=hosts_for(host),
    )
    sock = bind(host, port)
    out.print(f"pressedplay: open {url(sock)} (Ctrl+C stops)", highlight=False)
    serve(web, sock)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 2 bad input, 130 interrupted."""
    try:
        result = app(args=argv, prog_name="pressedplay", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help())
        return 0
    except ClickException as exc:
        print(f"error: {printable(exc.format_message())}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 2
    except (OSError, sqlite3.OperationalError) as exc:
        message = storage_error(exc)
        if message is None:
            raise
        print(f"error: {printable(message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if result == 130:  # typer turns KeyboardInterrupt into exit code 130
        print("error: interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":  # `torchrun -m pressedplay.cli train ...`
    main()
