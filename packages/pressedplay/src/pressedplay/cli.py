"""The `pressedplay` command line: parses, calls the library, prints.

The commands live in pressedplay.commands, one module per family; this module assembles
them (in the order `--help` lists them) and turns errors into exit codes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from typing import Annotated

import typer
from rich.table import Table

# typer vendors click; its exception types are not re-exported publicly.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from pressedplay import __version__
from pressedplay.commands import catalogs, datasets, pictures, training
from pressedplay.commands.console import out
from pressedplay.commands.options import JsonOption
from pressedplay.errors import UserError, storage_error
from pressedplay.terminal import printable

app = typer.Typer(
    help="pressedplay: from a picture to audio features to a playlist of real tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


app.add_typer(catalogs.catalog_app, name="catalog")
app.command("build-db")(datasets.build_db)
app.command("info")(datasets.info)
app.command("synth-covers")(datasets.synth_covers)
app.command("train")(training.train_command)
app.command("evaluate")(training.evaluate_command)
app.command("predict")(pictures.predict_command)
app.command("generate")(pictures.generate_command)
app.command("feedback")(pictures.feedback_command)
app.command("serve")(pictures.serve_command)


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
