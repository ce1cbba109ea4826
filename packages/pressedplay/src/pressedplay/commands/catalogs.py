"""`pressedplay catalog ...`: catalogs of real tracks with audio features."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pressedplay.commands.console import bytes_progress, out
from pressedplay.commands.options import JsonOption
from pressedplay.errors import UserError

catalog_app = typer.Typer(
    help="Catalogs of real tracks with audio features: import, download, inspect.",
    no_args_is_help=True,
)


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


def fetched(catalog: str | None) -> str | Path:
    """The catalog a command will use: the one named, or the default catalog, downloaded
    on first use under a progress bar (`catalog.resolve_catalog`)."""
    if catalog is not None:
        return catalog
    from pressedplay.catalog import resolve_catalog

    bar, advance, stage = bytes_progress()
    with bar:
        return resolve_catalog(progress=advance, stage=stage)


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
    from pressedplay.catalog_csv import import_csv

    bar, advance, stage = bytes_progress()
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
    bar, advance, stage = bytes_progress()
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
