"""The `pressedplay` command line: parses, calls the library, prints."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# typer vendors click; its exception types are not re-exported publicly.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from pressedplay import __version__

app = typer.Typer(
    help="pressedplay: from a picture to audio features to a playlist of real tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(soft_wrap=True)


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


@app.command()
def features(
    json_: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON on stdout.")
    ] = False,
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
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    if result == 130:  # typer turns KeyboardInterrupt into exit code 130
        print("error: interrupted", file=sys.stderr)
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run())
