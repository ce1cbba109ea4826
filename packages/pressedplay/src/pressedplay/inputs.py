"""Untrusted input files, read with bounds: regular files only, a byte limit while reading.

`st_size` tells nothing about FIFOs and devices (0 for both, yet /dev/zero never ends and
a FIFO blocks until someone writes), so the file type is checked before opening, the
open itself never blocks, and the limit is counted on the bytes actually read.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from pathlib import Path

from pressedplay.errors import UserError

TRACK_ID = re.compile(r"[0-9A-Za-z]{22}")  # a Spotify track id: 22 base-62 characters
MAX_CATALOG_CSV = 2 << 30  # Kaggle's largest track CSV (1.2M songs) is about 350 MB
MAX_LABELS_CSV = 256 << 20  # read whole: one row per image-track pair
MAX_JSON = 16 << 20  # configs, genre mappings, the Spotify token: a few KB each

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
# O_NONBLOCK: were the file swapped for a FIFO after the stat, the open still returns.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


class InputError(UserError):
    """An input file that cannot be used; `reason` is short and stable, for counting."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


def _os_error(path: Path | str, exc: OSError) -> InputError:
    """The one-line form of an OSError met while opening or reading `path`."""
    if isinstance(exc, FileNotFoundError):
        return InputError(path, "no such file")
    if isinstance(exc, PermissionError):
        return InputError(path, "permission denied")
    return InputError(path, f"cannot read: {exc.strerror or type(exc).__name__}")


def _require_regular(path: Path | str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = next((name for is_kind, name in _KINDS if is_kind(mode)), "not a regular file")
        raise InputError(path, f"is {kind}")


def check_regular(path: Path | str) -> os.stat_result:
    """The stat of `path` (links followed) if it is a regular file, else InputError."""
    try:
        status = os.stat(path)
    except OSError as exc:
        raise _os_error(path, exc) from None
    _require_regular(path, status.st_mode)
    return status


class BoundedFile(io.RawIOBase):
    """A regular file opened for reading that raises InputError past `limit` bytes,
    having read at most limit + 1 of them. Wrap it in io.BufferedReader to stream."""

    def __init__(self, path: Path | str, limit: int) -> None:
        super().__init__()
        check_regular(path)
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise _os_error(path, exc) from None
        try:
            _require_regular(path, os.fstat(fd).st_mode)  # the same file as the stat saw
        except BaseException:
            os.close(fd)
            raise
        self._file = io.FileIO(fd, "rb")
        self.path, self.limit = path, limit
        self.count = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._file.fileno()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")[: self.limit + 1 - self.count]
        try:
            n = self._file.readinto(view) or 0
        except OSError as exc:
            raise _os_error(self.path, exc) from None
        self.count += n
        if self.count > self.limit:
            raise InputError(self.path, f"larger than the limit of {self.limit:,} bytes")
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def read_bytes(path: Path | str, limit: int) -> bytes:
    """The whole file, or InputError: not a regular file, unreadable, over `limit`."""
    with BoundedFile(path, limit) as handle:
        return handle.readall()


def read_text(path: Path | str, limit: int) -> str:
    """As read_bytes, decoded strictly as UTF-8 (a leading BOM dropped)."""
    try:
        return read_bytes(path, limit).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 text") from None


def parse_json(text: str, path: Path | str) -> object:
    """JSON text read from `path`, or InputError; nesting deep enough to exhaust the
    parser's recursion is refused like any other malformed file."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:
        raise InputError(path, "not valid JSON (nested too deeply)") from None


def read_json(path: Path | str, limit: int = MAX_JSON) -> object:
    """A JSON file read through read_text and parse_json."""
    return parse_json(read_text(path, limit), path)
