"""Reading untrusted files and placing outputs beside them: one set of rules for trecs.

Every file trecs reads from a user (MPD slices, md5sums, feature CSVs, challenge sets,
submissions, ground truth) goes through `read_bytes`: regular files only, checked by type
before reading, so that a FIFO or a device (whose size `stat` reports as 0) can neither
hang nor flood a command, and a byte limit enforced while reading. Gzip is unpacked under
the same limit. Text is UTF-8, decoded strictly: a name with an invalid byte is an error
naming the byte's offset, never silently altered. Outputs never equal or overlap an input.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from trecs.errors import UserError

KIND = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}
SQLITE_MAX = 2**63 - 1  # sqlite's INTEGER: every id and count trecs stores fits in it


def check_regular(path: Path, what: str = "a file") -> None:
    """`path` is an existing regular file (symlinks followed), judged by type alone."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = KIND.get(stat.S_IFMT(mode), "not a regular file")
        raise UserError(f"{path}: {kind}, not {what}")


def read_bytes(path: Path, limit: int, what: str = "a file") -> bytes:
    """At most `limit` bytes of the regular file `path`; more is an error."""
    check_regular(path, what)
    try:
        # O_NONBLOCK: if the path became a FIFO since the check, opening must not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise UserError(f"{path}: not a regular file, not {what}")
        try:
            return bounded(handle, limit, f"{path}", what, status.st_size)
        except OSError as exc:
            raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def bounded(handle: IO[bytes], limit: int, name: str, what: str, expected: int = 0) -> bytes:
    """Read `handle` to its end, refusing it past `limit` bytes (read while counting, not
    trusted from a header or `stat`).

    `expected` (what `stat` or a zip header says) only sizes the first read: a read
    asks for memory as large as its request, and a `limit`-sized one costs a fresh
    mapping of every page of the data (3-4 times the cost of the copy).
    """
    data = handle.read(min(expected, limit) + 1)
    if len(data) > expected:
        data += handle.read(limit + 1 - len(data))
    if len(data) > limit:
        raise UserError(f"{name}: larger than {limit:,} bytes, too large for {what}")
    return data


def read_text(path: Path, limit: int, what: str = "a file") -> str:
    """A UTF-8 file's text, gunzipped first when it is gzip (under the same limit)."""
    data = read_bytes(path, limit, what)
    if data[:2] == b"\x1f\x8b":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as unpacked:
                data = bounded(unpacked, limit, f"{path} (unpacked)", what)
        except (OSError, EOFError, zlib.error) as exc:
            raise UserError(f"{path}: corrupt gzip ({exc}); truncated?") from None
    return decode_utf8(data, str(path))


def decode_utf8(data: bytes, name: str) -> str:
    """Strict UTF-8: an invalid byte is an error that says where, never replaced."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{name}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start:,})"
        ) from None


def loads_json(text: str, name: str) -> object:
    """JSON whose nesting Python can decode, with every integer in sqlite's range."""
    try:
        return json.loads(text, parse_int=_sqlite_int)
    except RecursionError:
        raise UserError(f"{name}: JSON nested too deeply") from None
    except ValueError as exc:
        raise UserError(f"{name}: not valid JSON ({exc}); truncated?") from None


def _sqlite_int(text: str) -> int:
    if len(text) > 20 or abs(value := int(text)) > SQLITE_MAX:
        raise ValueError(f"integer {text[:24]} outside sqlite's 64-bit range")
    return value


def check_output(path: Path, inputs: Iterable[Path], force: bool) -> None:
    """An output never is or holds an input (resolved paths: links and `..` cannot hide
    one), is never a folder, and replaces an existing file only with --force."""
    target = path.resolve()
    for source in inputs:
        if not source.exists():
            continue
        source = source.resolve()
        if source.is_relative_to(target):
            raise UserError(f"{path}: is or holds an input ({source}); choose another output")
    if path.is_dir():
        raise UserError(f"{path}: is a folder")
    if path.exists() and not force:
        raise UserError(f"{path}: already exists (pass --force to replace it)")
