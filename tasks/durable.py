"""Forcing writes to disk, so that a rename over a user's file survives a crash or a power cut.

A file renamed over another before its data reach the disk can come back empty after a power cut on file
systems that order neither (XFS, the FAT and exFAT of DJs' USB drives); the rename itself is an entry of its
folder, durable once the folder is flushed.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tasks.errors import OutputNotWritableError

#: The signals that stop a command (Ctrl-C, ``kill``/``timeout``, a closed terminal).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextmanager
def stop_signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C, SIGTERM and SIGHUP until the block is done, then deliver them (once each) to their handlers.

    For a step that takes seconds and is worth finishing once begun, such as copying a catalog into place: an
    interrupt in the middle threw the copy away, and with it what the run had done since its last publish. A
    handler Python did not install (``None``) is left alone, and outside the main thread, which signals never
    reach, nothing changes.
    """
    with _STEPS:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        with _signals_held():
            yield


#: Held while a step worth finishing runs (:func:`stop_signals_deferred`): a timed exit waits for it
#: (:func:`finish_steps_first`).
_STEPS = threading.RLock()


def finish_steps_first(timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for a step of :func:`stop_signals_deferred` under way in another thread, and keep
    any other from starting: for an exit that comes from a timer, not a signal (a publish on a slow disk took
    longer than an interrupted run's grace, and was cut, with what the run had done since its last one)."""
    _STEPS.acquire(timeout=timeout_s)  # held until the process ends


@contextmanager
def _signals_held() -> Iterator[None]:
    pending: list[int] = []
    previous = {}
    for sig in STOP_SIGNALS:
        handler = signal.getsignal(sig)
        if handler is not None and handler != signal.SIG_IGN:
            previous[sig] = signal.signal(sig, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)


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


#: A path that names one of this process's open files: ``/dev/stdout`` (a link to ``/proc/self/fd/1``), ``/dev/fd/N``.
_OWN_FD = re.compile(r"/(?:proc/self|dev)/fd/(\d+)")


def _own_fd(path: Path) -> int | None:
    """The descriptor ``path`` names when it leads (through links) to ``/proc/self/fd/N`` or ``/dev/fd/N``, else None.

    Such a path is the shell's redirection (``> out.xml``, ``>> log``, ``| less``): written through the descriptor,
    ``>>`` appends; opened anew by name, the file would be truncated, and replaced by a rename.
    """
    p = os.path.abspath(path)
    for _ in range(40):  # the kernel's own limit on a chain of links
        m = _OWN_FD.fullmatch(p)
        if m:
            return int(m.group(1))
        if not os.path.islink(p):
            break
        p = os.path.normpath(os.path.join(os.path.dirname(p), os.readlink(p)))
    # Other spellings of a descriptor (/proc/thread-self/fd/1, a link to /proc/self): the file stdout or stderr has
    # open. Only for a name of that form: out.xml is replaced by rename even when stderr is redirected to it.
    if "/fd/" not in os.path.abspath(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    for fd in (1, 2):
        try:
            own = os.fstat(fd)
        except OSError:
            continue
        if (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino) and stat.S_ISREG(st.st_mode):
            return fd
    return None


def _write_stream(asked: Path, write: Callable[[IO[bytes]], None], fd: int | None) -> None:
    """Write into ``fd``, the open descriptor the path names (:func:`_own_fd`), or else into the pipe or device it
    names: never a rename there. A named pipe that no program reads is refused at once: opening it would wait
    for a reader for ever, deaf to Ctrl-C."""
    if fd is not None:
        out = os.dup(fd)
    else:
        try:
            out = os.open(asked, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            fifo = exc.errno == errno.ENXIO and stat.S_ISFIFO(os.stat(asked).st_mode)
            why = "no program is reading that pipe" if fifo else exc.strerror
            raise OutputNotWritableError(f"cannot write {asked}: {why}") from None
        os.set_blocking(out, True)
    try:
        with os.fdopen(out, "wb") as f:
            write(f)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(asked)) from None


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it over ``path``.

    A crash or an error leaves ``path`` as it was (or absent) and no temporary file behind. A symbolic link
    stays a link: its target is replaced. A stream is written as one, never renamed over: ``/dev/stdout`` and
    ``/dev/fd/N`` through the open descriptor (``>> file`` appends), a pipe or a device by name. Raises
    :class:`tasks.errors.OutputNotWritableError` when ``path`` is a folder, its folder is not there, or it is a
    pipe nobody reads.
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
    own = None if kind is None else _own_fd(asked)
    if kind is not None and (not stat.S_ISREG(kind) or own is not None):
        _write_stream(asked, write, own)
        return asked
    path = Path(os.path.realpath(asked))
    if not path.parent.is_dir():  # as a shell's `>` would: a mistyped folder is not made, silently, somewhere else
        why = "is not a folder" if path.parent.exists() else "does not exist (make it first)"
        raise OutputNotWritableError(f"cannot write {asked}: {path.parent} {why}")
    try:
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
