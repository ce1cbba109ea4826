"""Untrusted names made safe for a terminal: playlist, track, artist and album names come
from files anyone can write, and an escape sequence in one (ESC, CSI, OSC) would reach the
terminal raw, retitling it, recolouring it or worse. `--json` output keeps names exact."""

from __future__ import annotations

import re

# C0 controls (tab and newline included: a name is one line), DEL and C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with every control character shown as a visible `\\xNN` escape."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def markup_safe(text: str) -> str:
    """`printable`, and escaped for rich, where a name like `[/bold]` would be markup."""
    from rich.markup import escape

    return escape(printable(text))
