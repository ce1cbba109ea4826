"""Text from data files made safe to print: names come from CSVs, catalogs and Spotify.

A track called "\\x1b]0;pwned\\x07" would retitle the terminal, "\\x1b[2J" clear it, and a
newline inside a name would add an entry to an m3u file. Human-readable output passes
every such name through printable(); JSON output keeps the data exact.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls, DEL, C1 controls (U+009B is a one-character CSI), the line and paragraph
# separators, and the bidirectional overrides that reorder what a reader sees.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """`text` with every control character shown as a visible escape (ESC as \\x1b)."""
    return _UNSAFE.sub(_escaped, str(text))


class SafeConsole(Console):
    """A rich Console that shows every string it prints through printable(), with rich
    markup and emoji codes off: a name like "[red]x" or ":fire:" prints as written."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, emoji=False, **options)

    def render_str(self, text: str, **options: Any) -> Text:
        return super().render_str(printable(text), **options)
