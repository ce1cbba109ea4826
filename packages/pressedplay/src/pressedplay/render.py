"""Tables of the CLI's answers: a picture's features and its playlist, as rich renders them."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from pressedplay.features import FEATURES


def feature_table(results: list[dict]) -> Table:
    """Features as rows, one column per answered image."""
    answered = [r for r in results if "features" in r]
    table = Table("feature", *(Path(r["image"]).name for r in answered))
    for feature in FEATURES:
        unit = f" {feature.unit}" if feature.unit else ""
        table.add_row(feature.name, *(f"{r['features'][feature.name]:.3f}{unit}" for r in answered))
    return table


def print_playlist(out: Console, image: str, result: dict) -> None:
    """`generate`'s table format: where the tracks come from, the picture's features, then
    the tracks (with `--continue`, the seeds and the continuation apart)."""
    continued = "trecs_run" in result
    if continued:
        out.print(
            f"model: {result['model']}; trecs run: {result['trecs_run']}; database: "
            f"{result['db']}; feature weight: {result['feature_weight']:g}",
            highlight=False,
        )
    else:
        out.print(f"model: {result['model']}; catalog: {result['catalog']}", highlight=False)
        if result["genres"]:
            out.print("genres: " + ", ".join(result["genres"]), highlight=False)
    out.print(feature_table([{"image": image, "features": result["features"]}]))
    if continued:
        out.print(_scored_table("seeds", result["seeds"]))
        out.print(_scored_table("continuation", result["tracks"]))
    else:
        out.print(_track_table(result["tracks"]))


def _track_table(tracks: list[dict]) -> Table:
    table = Table("#", "track", "artist", "genres", "distance")
    table.add_column("link", overflow="fold")  # folded in a narrow terminal, never cut
    for position, track in enumerate(tracks, 1):
        table.add_row(
            str(position),
            track["name"],
            track["artist"],
            ", ".join(track["genres"]),
            f"{track['distance']:.2f}",
            track["url"],
        )
    return table


def _scored_table(title: str, tracks: list[dict]) -> Table:
    """A continuation's seeds, or its tracks with the transformer's log p and rank."""
    scored = ("log p", "rank") if title == "continuation" else ()
    table = Table("#", "track", "artist", *scored, "distance", "link", title=title)
    for position, track in enumerate(tracks, 1):
        scores = (f"{track['score']:.2f}", str(track["rank"])) if scored else ()
        row = (track["name"], track["artist"], *scores, f"{track['distance']:.2f}")
        table.add_row(str(position), *row, track["url"])
    return table
