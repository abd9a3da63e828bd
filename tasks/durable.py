"""Forcing writes to disk, so that a rename over a user's file survives a crash or a power cut.

A file renamed over another before its data reach the disk can come back empty after a power cut on file
systems that order neither (XFS, the FAT and exFAT of DJs' USB drives); the rename itself is an entry of its
folder, durable once the folder is flushed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from tasks.errors import OutputNotWritableError


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


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash or an error leaves ``path`` as it was (or absent) and no temporary file behind. A symbolic link
    stays a link: its target is replaced. A device or a pipe (``/dev/stdout``) is written as a stream: a rename
    there would replace the device node with a file. Raises :class:`tasks.errors.OutputNotWritableError` when
    ``path`` is a folder or its folder cannot be made.
    """
    asked = Path(path)
    try:
        kind = os.stat(asked).st_mode  # through links, /proc's included
    except FileNotFoundError:
        kind = None
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write {asked}: {exc.strerror}") from None
    if kind is not None and stat.S_ISDIR(kind):
        raise OutputNotWritableError(f"cannot write {asked}: it is a folder (give a file name)")
    if kind is not None and not stat.S_ISREG(kind):
        with open(asked, "wb") as f:
            write(f)
        return asked
    path = Path(os.path.realpath(asked))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError, FileNotFoundError) as exc:  # a file in the way, /proc...
        raise OutputNotWritableError(f"cannot write {asked}: {exc.strerror}") from None
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise OSError(exc.errno, exc.strerror, str(asked)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        flush_folder(path.parent)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(asked)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return asked
