"""One exception family and the stable reason codes stored in ``rejects.reason`` / ``tracks.status``."""

from __future__ import annotations

import errno
from enum import StrEnum

#: errno values of a disk or network share that hiccups: a retry may succeed (ENOENT/EACCES will not).
TRANSIENT_ERRNOS: frozenset[int] = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.EBUSY,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENOTCONN,
        errno.ECONNRESET,
        errno.EHOSTDOWN,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ENETRESET,
    }
)


class Reason(StrEnum):
    """Stable reason codes. Never rename one: they are part of the catalog contract."""

    EMPTY = "EMPTY"  # zero bytes
    TOO_LARGE = "TOO_LARGE"  # larger than the configured maximum size
    NOT_AUDIO = "NOT_AUDIO"  # content is not audio (HTML, executable, image, random bytes)
    UNREADABLE = "UNREADABLE"  # permission denied, vanished, not a regular file
    TRUNCATED = "TRUNCATED"  # container/stream ends early
    DECODE_ERROR = "DECODE_ERROR"  # decoder refused the stream
    TOO_SHORT = "TOO_SHORT"  # shorter than the minimum duration
    TOO_LONG = "TOO_LONG"  # longer than the maximum duration
    TIMEOUT = "TIMEOUT"  # per-file time limit hit
    WORKER_CRASH = "WORKER_CRASH"  # the worker process died while analysing this file
    SCHEMA = "SCHEMA"  # produced a row that failed the schema
    STALE = "STALE"  # file changed while it was analysed
    INTERNAL = "INTERNAL"  # a bug: unexpected exception, kept with its message


class CratedigError(Exception):
    """Base of every error cratedig raises on purpose."""


class RejectError(CratedigError):
    """A file cannot be analysed; ``reason`` is a :class:`Reason`, ``detail`` says why in words."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else str(reason))
        self.reason = Reason(reason)
        self.detail = detail


class CatalogLockedError(CratedigError):
    """Another run holds the catalog's lock and did not release it in time."""
