"""One exception family (:class:`CratedigError`) and the errno values worth a retry."""

from __future__ import annotations

import errno

from tasks.vocabulary import Reason

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


class NotACatalogError(CratedigError):
    """The catalog path holds something else than a DuckDB database (a text file, garbage, a folder)."""


class CatalogReadOnlyError(CratedigError):
    """The catalog cannot be written where it is (read-only folder or file system)."""


class OutputNotWritableError(CratedigError):
    """An output file (an export, a playlist) cannot be written where it was asked for: its folder cannot be
    made (a file stands in the way, a virtual file system) or it names a folder."""


def one_line(exc: BaseException, limit: int = 500) -> str:
    """``exc`` as one line for a user or a ``runs.error`` cell: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:limit]
