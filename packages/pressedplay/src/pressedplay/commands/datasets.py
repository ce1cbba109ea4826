"""`build-db`, `info` and `synth-covers`: the cover datasets a model trains on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pressedplay.commands.console import count_progress, out
from pressedplay.commands.options import DatasetForce, JsonOption
from pressedplay.errors import UserError


def print_dataset(report: dict) -> None:
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


OutDb = Annotated[Path, typer.Argument(metavar="OUT.db", help="The dataset to create (sqlite).")]
CoverFolder = Annotated[
    Path | None,
    typer.Argument(metavar="DIR", help="With --source folder: the folder of cover images."),
]
SourceOption = Annotated[
    str | None, typer.Option(metavar="folder|spotify", help="Where the covers come from.")
]
LabelsOption = Annotated[
    Path | None,
    typer.Option(
        metavar="LABELS.csv",
        help="With --source folder: CSV with `image` (path relative to DIR) and "
        "`track_id`, the eight feature columns or a genre column.",
    ),
]
FeatureCatalogOption = Annotated[
    str | None,
    typer.Option(metavar="NAME", help="Catalog (name or .db path) giving features by track id."),
]
PlaylistOption = Annotated[
    list[str] | None,
    typer.Option(
        metavar="URL_OR_ID", help="With --source spotify: a playlist URL, URI or id (repeatable)."
    ),
]
UserOption = Annotated[
    str | None,
    typer.Option(metavar="ID", help="With --source spotify: a user id; their public playlists."),
]
QueryOption = Annotated[
    str | None,
    typer.Option(metavar="TEXT", help="With --source spotify: the playlists a search finds."),
]
LimitOption = Annotated[
    int | None,
    typer.Option(metavar="N", min=1, help="With --source spotify: at most N playlists."),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(min=1, help="With --source folder: processes decoding images (default: cores)."),
]
GenreColumnOption = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        help="With --source folder: the labels column holding each cover's genre, if any.",
    ),
]
SplitSeedOption = Annotated[
    int, typer.Option(min=0, help="Seed of the train/valid/test split and of --materialize.")
]
MaterializeOption = Annotated[
    int | None,
    typer.Option(metavar="K", min=1, help="Also store K distorted copies of each cover."),
]


def build_db(
    out_db: OutDb,
    folder: CoverFolder = None,
    source: SourceOption = None,
    labels: LabelsOption = None,
    catalog: FeatureCatalogOption = None,
    playlist: PlaylistOption = None,
    user: UserOption = None,
    query: QueryOption = None,
    limit: LimitOption = None,
    workers: WorkersOption = None,
    genre_column: GenreColumnOption = "genre",
    seed: SplitSeedOption = 0,
    materialize: MaterializeOption = None,
    force: DatasetForce = False,
    json_: JsonOption = False,
) -> None:
    """Build a cover dataset from a folder of images or from Spotify playlists.

    An interrupted build resumes from OUT.partial when run again with the same source;
    unusable images and tracks are counted, never fatal. OUT appears only when complete.
    """
    spotify_only = {"--playlist": playlist, "--user": user, "--query": query, "--limit": limit}
    folder_only = workers is not None or genre_column != "genre"
    _check_source(source, folder is not None, labels is not None, folder_only, spotify_only)
    bar, advance = count_progress("covers" if source == "folder" else "playlists")
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
                genre_column=genre_column,
                progress=advance,
            )
        else:
            from pressedplay.spotify_covers import collect

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

        bar, advance = count_progress("distorted copies")
        with bar:
            report["materialized"] = add_copies(out_db, materialize, seed=seed, progress=advance)
    if json_:
        print(json.dumps(report))
        return
    print_dataset(report)
    if materialize is not None:
        copies = report["materialized"]
        out.print(f"  materialized {copies['copies']:,} distorted copies ({materialize} per cover)")


def _check_source(
    source: str | None, folder: bool, labels: bool, folder_only: bool, spotify_only: dict
) -> None:
    """UserError unless the options given are those of one source, complete."""
    if source is None:
        raise UserError("say where the covers come from: --source folder or --source spotify")
    if source == "folder":
        if not (folder and labels):
            raise UserError("--source folder needs DIR and --labels LABELS.csv")
        extra = [name for name, value in spotify_only.items() if value]
        if extra:
            raise UserError(f"{', '.join(extra)} only go with --source spotify")
    elif source == "spotify":
        if folder or labels or folder_only:
            raise UserError(
                "DIR, --labels, --workers and --genre-column only go with --source folder"
            )
        if not any(spotify_only[name] for name in ("--playlist", "--user", "--query")):
            raise UserError("--source spotify needs --playlist, --user or --query")
    else:
        raise UserError(f"--source {source}: expected --source folder or --source spotify")


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
    print_dataset(report)
    if report["source"]:
        out.print(f"source: {report['source']}")
    table = Table("feature", "mean (train)", "std (train)")
    for name, stats in report["feature_stats"].items():
        table.add_row(name, f"{stats['mean']:.4g}", f"{stats['std']:.4g}")
    out.print(table)


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

    bar, advance = count_progress("drawing covers")
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
    print_dataset(report)
    if "catalog" in report:
        out.print(f"catalog {catalog}: {report['catalog']['tracks']:,} tracks")
