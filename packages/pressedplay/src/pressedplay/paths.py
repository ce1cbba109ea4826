"""Where pressedplay keeps its downloads and catalogs: one folder the user can move or wipe."""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

from pressedplay.errors import UserError

# A name becomes a file name: no separators, no hidden files, no ".db" twice.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def data_home() -> Path:
    """$PRESSEDPLAY_HOME if set (tests, shared machines), else the user's cache directory."""
    home = os.environ.get("PRESSEDPLAY_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_cache_dir("pressedplay"))


DEFAULT_CATALOG = "tidytuesday"  # the catalog used when none is named


def catalog_path(name: str) -> Path:
    """The file of the catalog called `name`; refuses names that are not plain file names."""
    if not _NAME.fullmatch(name):
        raise UserError(
            f"catalog name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "not starting with '.'"
        )
    if name.endswith(".db"):
        raise UserError(f"give the catalog name without '.db': {name[:-3]!r}")
    return data_home() / "catalogs" / f"{name}.db"


def file_version(path: Path) -> tuple[str, int, int]:
    """(resolved path, modification time, size): a cache key that changes with the file.
    A missing file gives (path, 0, 0), so that whoever loads it reports it."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError:
        return str(path), 0, 0
    return str(path), stat.st_mtime_ns, stat.st_size
