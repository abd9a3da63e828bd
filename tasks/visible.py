"""One character written as text that shows it: for a terminal (:mod:`flows.cli.text`) and for XML exports
(:func:`tasks.export.selection.xml_safe`), which both must show a tag's control characters, not obey or choke on
them."""

from __future__ import annotations

import re


def escape_char(ch: str) -> str:
    """``\\xNN`` for a character up to U+00FF or a lone surrogate of ``surrogateescape`` (a file name's byte that is
    not UTF-8: the original byte), ``\\uNNNN`` for any other.

    >>> escape_char("\\x1b"), escape_char("\\udcff"), escape_char("\\u202e")
    ('\\\\x1b', '\\\\xff', '\\\\u202e')
    """
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_matches(pattern: re.Pattern[str], text: str) -> str:
    """``text`` with every character ``pattern`` matches written by :func:`escape_char`."""
    return pattern.sub(lambda m: escape_char(m.group()), text)
