"""Whether the user asked this process to stop (Ctrl-C, caught by :func:`flows.cli.interruption.bounded_interrupt`).

The interrupt does not always surface as ``KeyboardInterrupt``: in a DuckDB query it becomes
``RuntimeError('Query interrupted')``. The flow asks here to record its run ``interrupted`` either way, and the
command line to exit with code 130 either way.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    """Note that the user asked to stop."""
    _requested.set()


def requested() -> bool:
    """Whether the user asked to stop since :func:`clear`."""
    return _requested.is_set()


def clear() -> None:
    """Forget an earlier request (a new run in the same process)."""
    _requested.clear()
