"""Whether the user asked this process to stop (Ctrl-C, caught by :func:`flows.cli.interruption.bounded_interrupt`).

The interrupt does not always surface as ``KeyboardInterrupt``: in a DuckDB query it becomes
``RuntimeError('Query interrupted')``. The flow asks here to record its run ``interrupted`` either way, and the
command line to exit with code 130 either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_requested = threading.Event()
_hooks: list[Callable[[], None]] = []


def request() -> None:
    """Note that the user asked to stop, and the first time call the hooks of :func:`on_request`."""
    first = not _requested.is_set()
    _requested.set()
    if first:
        for hook in list(_hooks):
            hook()


def on_request(hook: Callable[[], None]) -> Callable[[], None]:
    """Call ``hook`` when a stop is first requested (from any thread: the flow learns of a SIGTERM that Prefect's
    own handler caught, and the command line must start its grace period then); returns the function that
    removes it."""
    _hooks.append(hook)
    return lambda: _hooks.remove(hook)


def requested() -> bool:
    """Whether the user asked to stop since :func:`clear`."""
    return _requested.is_set()


def clear() -> None:
    """Forget an earlier request (a new run in the same process)."""
    _requested.clear()
