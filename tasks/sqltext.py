"""SQL text for the few places DuckDB cannot bind a parameter (``COPY ... TO``'s target): quoted literals.

Every other value in cratedig's SQL is a bound parameter (``?`` / ``$name``) or a registered frame; text
built here is the one exception, and only through :func:`sql_literal`.
"""

from __future__ import annotations

import os


def sql_literal(value: str | os.PathLike) -> str:
    """``value`` as a DuckDB string literal: in single quotes, each quote doubled (standard SQL quoting).

    DuckDB reads backslashes literally in ``'...'`` strings, so a doubled quote is the only escape needed.

    Examples
    --------
    >>> sql_literal("Bob's Music/tracks.parquet")
    "'Bob''s Music/tracks.parquet'"

    Raises
    ------
    ValueError
        ``value`` holds a NUL character, which no path and no DuckDB string can.
    """
    text = os.fspath(value)
    if "\x00" in text:
        raise ValueError(f"NUL character in SQL text: {text!r}")
    return "'" + text.replace("'", "''") + "'"
