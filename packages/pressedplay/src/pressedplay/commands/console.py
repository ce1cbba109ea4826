"""Where the CLI writes: stdout for answers, stderr for messages and progress bars."""

from __future__ import annotations

from collections.abc import Callable

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pressedplay.terminal import SafeConsole

out = SafeConsole(soft_wrap=True)
if not out.is_terminal:  # piped or redirected: rich's 80 columns would cut tables short
    out.width = 160
err = SafeConsole(stderr=True, soft_wrap=True)


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A progress bar on stderr, hidden when stderr is not a terminal (logs stay clean)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


def bytes_progress() -> tuple[Progress, Callable[[int], None], Callable[[str, int | None], None]]:
    """A byte-counting bar and its callbacks."""
    bar = progress_bar(DownloadColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    task = bar.add_task("", total=None)

    def stage(description: str, total: int | None) -> None:
        bar.reset(task, description=description, total=total, completed=0)

    return bar, lambda n: bar.advance(task, n), stage


def count_progress(description: str) -> tuple[Progress, Callable[[int], None]]:
    """A counting bar and its callback."""
    bar = progress_bar(TextColumn("{task.completed:,}"), TimeElapsedColumn())
    task = bar.add_task(description, total=None)
    return bar, lambda n: bar.advance(task, n)
