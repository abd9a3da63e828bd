"""Text that comes from files (tags, names, decoder messages) as the terminal must show it: literally.

Rich parses ``[...]`` as markup in strings, and a terminal obeys escape sequences; a title or a file name is
neither. :func:`literal` returns a :class:`rich.text.Text` (never parsed as markup) whose control
characters are made visible, so a tag cannot restyle, clear or retitle the terminal.
"""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text

from tasks.visible import escape_matches

# C0 controls, DEL, C1 controls, lone surrogates (undecodable bytes of a file name), and the bidirectional
# overrides that reorder what follows them on screen.
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(value: Any) -> str:
    """``str(value)`` with every control or invisible reordering character written as ``\\xNN`` / ``\\uNNNN``.

    >>> visible("a\\x1b[2Jb\\nc")
    'a\\\\x1b[2Jb\\\\x0ac'
    """
    return escape_matches(_INVISIBLE, "" if value is None else str(value))


def literal(value: Any, style: str = "") -> Text:
    """``value`` as a :class:`~rich.text.Text` shown exactly as :func:`visible` writes it (no markup)."""
    return Text(visible(value), style=style)


def counted(n: int, noun: str) -> str:
    """``'1 track'``, ``'2 tracks'``: ``n`` and ``noun``, plural by adding an s."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
