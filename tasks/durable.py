"""Forcing writes to disk, so that a rename over a user's file survives a crash or a power cut.

A file renamed over another before its data reach the disk can come back empty after a power cut on file
systems that order neither (XFS, the FAT and exFAT of DJs' USB drives); the rename itself is an entry of its
folder, durable once the folder is flushed.
"""

from __future__ import annotations

import os
from pathlib import Path


def flush_file(path: str | Path) -> None:
    """Force the file ``path``'s data to disk (``OSError`` when it cannot)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_folder(path: str | Path) -> None:
    """Force the folder ``path``'s entries (a rename done in it) to disk, where the folder can be opened and
    flushed: the rename is done by then, so a folder that cannot be (not readable by this user, a file system
    without it) is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
