"""The `pressedplay` command line: parses, calls the library, prints."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# typer vendors click; its exception types are not re-exported publicly.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from pressedplay import __version__
from pressedplay.errors import UserError

app = typer.Typer(
    help="pressedplay: from a picture to audio features to a playlist of real tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


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


def _bytes_progress() -> tuple[Progress, Callable[[int], None], Callable[[str, int | None], None]]:
    """A byte-counting bar on stderr (hidden when stderr is not a terminal) and its callbacks."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
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
    """A counting bar on stderr (hidden when stderr is not a terminal) and its callback."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
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


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code: 0 ok, 2 bad input, 130 interrupted."""
    try:
        result = app(args=argv, prog_name="pressedplay", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        print(exc.ctx.get_help())
        return 0
    except ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)
        return 2
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if result == 130:  # typer turns KeyboardInterrupt into exit code 130
        print("error: interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
