"""How a file is identified: its path as storable text (reversibly) and a cheap content fingerprint."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: Bytes hashed at each of the sampled positions of a file.
FINGERPRINT_BLOCK: int = 64 * 1024
#: Files up to this size are hashed whole; larger ones at their start, middle and end.
FINGERPRINT_WHOLE_BELOW: int = 3 * FINGERPRINT_BLOCK


def path_to_text(path: str) -> str:
    """A path as storable text: names with bytes that are not UTF-8 keep them as ``\\xNN`` escapes.

    DuckDB and Parquet hold UTF-8 only; ``os.fsdecode`` leaves undecodable bytes as lone surrogates,
    which cannot be stored. :func:`text_to_path` reverses the escaping.
    """
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return os.fsencode(path).decode("utf-8", "backslashreplace")


def text_to_path(text: str) -> str:
    """Inverse of :func:`path_to_text` for paths that were escaped (others are returned unchanged)."""
    if "\\x" not in text or os.path.exists(text):
        return text
    raw = text.encode("utf-8").decode("unicode_escape").encode("latin-1")
    return os.fsdecode(raw)


def fingerprint(path: str | Path, size_bytes: int | None = None) -> str:
    """Content fingerprint: size plus a BLAKE2b hash of the start, middle and end blocks.

    Three 64 KiB reads whatever the file's size, so recognising a moved file never reads it whole; two
    different audio files of equal size that also agree on all three blocks are vanishingly rare.

    Returns
    -------
    str
        ``"<size>-<32 hex digits>"``.
    """
    path = text_to_path(os.fspath(path))
    if size_bytes is None:
        size_bytes = os.path.getsize(path)
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        if size_bytes <= FINGERPRINT_WHOLE_BELOW:
            h.update(f.read())
        else:
            for offset in (0, size_bytes // 2 - FINGERPRINT_BLOCK // 2, size_bytes - FINGERPRINT_BLOCK):
                f.seek(offset)
                h.update(f.read(FINGERPRINT_BLOCK))
    return f"{size_bytes}-{h.hexdigest()}"
