"""Options that several commands share, declared once so they read the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
DatasetForce = Annotated[
    bool,
    typer.Option("--force", help="Replace OUT if it exists; discard another build's partial file."),
]
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
