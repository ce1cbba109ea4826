"""Files that appear whole or not at all: written beside their target, renamed over it.

A reader (or a crash) never sees half a checkpoint, config, catalog or token: the bytes
go to a hidden temporary name in the same folder (so the rename is atomic) and replace
the target only once complete.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_beside(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside `target`, unique per process and per call."""
    target = Path(target)
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}{suffix}")


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `target` when the block ends normally
    and is removed when it raises. The target's folder must exist."""
    tmp = temporary_beside(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
