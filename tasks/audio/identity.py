"""How a file is identified: its path as storable text (reversibly) and a cheap content fingerprint."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

#: Bytes hashed at each of the sampled positions of a file.
FINGERPRINT_BLOCK: int = 64 * 1024
#: Files up to this size are hashed whole; larger ones at their start, middle and end.
FINGERPRINT_WHOLE_BELOW: int = 3 * FINGERPRINT_BLOCK


_ESCAPE = re.compile(r"\\(\\|x([89a-f][0-9a-f]))")


def path_to_text(path: str | os.PathLike) -> str:
    """A path as storable text, reversibly and without collisions (:func:`text_to_path` is the inverse).

    DuckDB and Parquet hold UTF-8 only. A UTF-8 name without a backslash is stored as it is (nearly every
    path); in any other, each backslash is doubled and each byte that is not UTF-8 becomes ``\\xNN``. So
    the name with the byte 0xE9 (``caf\\xe9.flac``) and the name spelled with the four characters
    ``\\xe9`` (``caf\\\\xe9.flac``) stay two paths.

    Examples
    --------
    >>> path_to_text(os.fsdecode(b"caf\\xe9.flac")), path_to_text("caf\\\\xe9.flac"), path_to_text("café.flac")
    ('caf\\\\xe9.flac', 'caf\\\\\\\\xe9.flac', 'café.flac')
    """
    text = os.fsencode(path).decode("utf-8", "surrogateescape")
    if "\\" not in text and not any("\udc80" <= c <= "\udcff" for c in text):
        return text
    return "".join(
        "\\\\" if c == "\\" else f"\\x{ord(c) - 0xDC00:02x}" if "\udc80" <= c <= "\udcff" else c for c in text
    )


def text_to_path(text: str) -> str:
    """The path (``str``, undecodable bytes as ``os.fsdecode``'s surrogates) that :func:`path_to_text` stored."""
    if "\\" not in text:
        return text
    return os.fsdecode(
        _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(0xDC00 + int(m.group(2), 16)), text).encode(
            "utf-8", "surrogateescape"
        )
    )


def legacy_text_to_text(text: str) -> str:
    """Re-encode a path text stored by cratedig before schema 7, which escaped undecodable bytes as ``\\xNN``
    but left backslashes alone: a name that exists as written had literal backslashes; otherwise the
    escapes were bytes. Texts without a backslash are the same in both encodings."""
    if "\\" not in text:
        return text
    if os.path.lexists(text):
        return path_to_text(text)
    try:
        raw = text.encode("utf-8").decode("unicode_escape").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError):
        return path_to_text(text)
    return path_to_text(os.fsdecode(raw))


def fingerprint(path: str | Path, size_bytes: int | None = None) -> str:
    """Content fingerprint of the file at ``path`` (a file-system path, not a stored text): size plus a
    BLAKE2b hash of the start, middle and end blocks.

    Three 64 KiB reads whatever the file's size, so recognising a moved file never reads it whole; two
    different audio files of equal size that also agree on all three blocks are vanishingly rare.

    Returns
    -------
    str
        ``"<size>-<32 hex digits>"``.
    """
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
