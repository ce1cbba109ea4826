"""Errors the user can fix: the CLI prints them as one line and exits with status 2."""

from __future__ import annotations

import errno
import os
import sqlite3


class UserError(Exception):
    pass


# What a full disk or a read-only folder look like to the writers: OSError's errno (the
# first four only ever come from writing), and sqlite's own messages (it gives no errno).
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})
_ACCESS_ERRNOS = frozenset({errno.EACCES, errno.EPERM})
_SQLITE_STORAGE = (
    "database or disk is full",
    "attempt to write a readonly database",
    "unable to open database file",
    "disk I/O error",
)


def storage_error(exc: BaseException) -> str | None:
    """The one-line message for a file access the system refused (a full disk, a
    read-only folder), or None for any other error. Every writer goes through a
    temporary file, so such a failure leaves no half-written output."""
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS | _ACCESS_ERRNOS:
        where = f"{exc.filename}: " if exc.filename else ""
        cannot = "cannot write: " if exc.errno in _WRITE_ERRNOS else ""
        return f"{cannot}{where}{os.strerror(exc.errno)}"
    if isinstance(exc, sqlite3.OperationalError) and str(exc) in _SQLITE_STORAGE:
        return f"sqlite: {exc} (is the disk full, or the folder read-only?)"
    return None
