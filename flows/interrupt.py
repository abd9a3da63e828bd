"""Whether the user asked this process to stop (Ctrl-C, caught by :func:`flows.cli.interruption.bounded_interrupt`).

The interrupt does not always surface as ``KeyboardInterrupt``: in a DuckDB query it becomes
``RuntimeError('Query interrupted')``. The flow asks here to record its run ``interrupted`` either way, and the
command line to exit with code 130 either way.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tasks.durable import STOP_SIGNALS

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


@contextmanager
def requested_on_sigterm() -> Iterator[None]:
    """Inside a flow: a SIGTERM requests the stop (:func:`request`) the moment it arrives, then goes on to the handler
    Prefect installed, which raises ``TerminationSignal``.

    That exception does not always reach the flow as itself: raised inside Python code that polars calls from Rust
    it becomes a ``PanicException``, and inside a Python object that DuckDB scans an ``InvalidInputException``. The
    flow then recorded its run failed, the command line's grace period never started, and Prefect reported the
    failure, with retries, to an embedded server that the same SIGTERM had stopped (for minutes).
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    passed_on = signal.getsignal(signal.SIGTERM)
    if not callable(passed_on):  # SIG_DFL or SIG_IGN: nobody turns it into an exception to stop for
        yield
        return

    def request_then_pass_on(signum: int, frame: object) -> None:
        request()
        passed_on(signum, frame)

    signal.signal(signal.SIGTERM, request_then_pass_on)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is request_then_pass_on:
            signal.signal(signal.SIGTERM, passed_on)


def _stop_as_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stop_signals_as_ctrl_c() -> None:
    """SIGTERM (``kill``, ``timeout``, a service manager) and SIGHUP (a closed terminal) raise KeyboardInterrupt in
    the main thread from now on, as Ctrl-C does (exit 130), where Python's default ended the process on the spot
    (143, 129) and an embedded Prefect server it had started outlived it."""
    on_stop_signals(_stop_as_ctrl_c, signals=(signal.SIGTERM, signal.SIGHUP))


def on_stop_signals(handler: Callable[[int, object], None], signals: tuple[int, ...] = STOP_SIGNALS) -> None:
    """Handle ``signals`` with ``handler`` from now on (in the main thread only, which signals reach); a signal the
    caller chose to ignore (``nohup``, a background job's SIGINT) stays ignored."""
    if threading.current_thread() is threading.main_thread():
        for sig in signals:
            if signal.getsignal(sig) != signal.SIG_IGN:
                signal.signal(sig, handler)


@contextmanager
def stop_signals_interrupt(con: Any) -> Iterator[list[int]]:
    """A Ctrl-C, SIGTERM or SIGHUP interrupts DuckDB connection ``con``'s query the moment it arrives.

    While DuckDB computes in the main thread, Python runs no signal handler: a stop waited for the end of a long
    query (a minute), which then failed as "Query interrupted". Python's C-level handler still writes the signal's
    number to the wakeup fd, which a thread watches here to call ``con.interrupt()``. Yields the list of the stop
    signals seen, so that the caller tells an interrupted query from a failed one.
    """
    seen: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # set_wakeup_fd works in the main thread only
        yield seen
        return
    stops = {int(sig) for sig in STOP_SIGNALS}
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def watch() -> None:
        while data := os.read(read_end, 64):  # b"" once the write end is closed
            if stops & set(data):
                seen.extend(stops & set(data))
                con.interrupt()

    previous = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="cratedig-stop-watch", daemon=True)
    watcher.start()
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_end)
        watcher.join(5)
        os.close(read_end)
