"""Ctrl-C (or SIGHUP, SIGTERM) during ``cratedig analyze``: the run stops within a grace period and records itself
``interrupted``; a second one exits at once, and nothing the command started (the embedded Prefect server,
workers) outlives it."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flows import interrupt
from flows.cli.errors import ExitCode
from tasks.durable import STOP_SIGNALS, finish_steps_first

#: After Ctrl-C, how long a run may take to stop before the process exits anyway, s. The run records itself
#: interrupted at once (local writes); what takes longer is Prefect reporting the crash, with retries, to an
#: embedded server that the same Ctrl-C stopped (minutes). The catalog is safe to leave at any point: batches are
#: committed whole, the published copy is replaced atomically, and the next run resumes.
INTERRUPT_GRACE_S = 10.0
#: How long an exit after a stop waits for a step worth finishing (a publish of the catalog) to end, s.
STEP_WAIT_S = 120.0
INTERRUPTED_MESSAGE = (
    "interrupted: what was analysed is in the catalog; the same command goes on from there (exit code 130)\n"
).encode()
#: The exit that does not wait for the run (a second Ctrl-C): batches committed since the
#: catalog was last published (at most PUBLISH_MAX_AGE_S of work) are not in it, and the next run redoes them.
STOPPED_AT_ONCE_MESSAGE = (
    "stopped without waiting for the run: the catalog keeps what was published (up to a minute of analysis may "
    "be redone); "
    "the same command goes on from there (exit code 130)\n"
).encode()


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux ``/proc``; none found elsewhere)."""
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue  # gone meanwhile
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            if int(stat[stat.rindex(b")") + 2 :].split()[1]) == pid:
                found.append(int(entry))
    return found


def _exit_interrupted(message: bytes = INTERRUPTED_MESSAGE) -> None:
    # A copy of the catalog into place under way is finished first (up to STEP_WAIT_S): cut, it lost what the run
    # had done since its last publish, while the message below says it is in the catalog.
    finish_steps_first(STEP_WAIT_S)
    # os.write, not the console: this may run on a timer thread while the main thread holds the console's lock.
    # The progress bar hid the cursor; exiting here skips its clean-up, so show the cursor and clear its line.
    try:
        os.write(2, (b"\x1b[?25h\r\x1b[2K" if os.isatty(2) else b"") + message)
    except OSError:  # a stderr that cannot be written (2>/dev/full) must not keep the process from ending
        pass
    # os._exit skips every clean-up: the embedded Prefect server would outlive us (a SIGINT sent to this process
    # alone, not to its group as a terminal's Ctrl-C is, never reached it), and so could a worker.
    for child in child_pids(os.getpid()):
        try:
            os.kill(child, signal.SIGTERM)
        except OSError:
            pass
    os._exit(ExitCode.INTERRUPTED)


def exit_at_once(signum: int, frame: Any) -> None:
    """A stop signal while the process exits (Prefect stopping its embedded server): end it now, children first."""
    _exit_interrupted(b"")


@contextmanager
def bounded_interrupt(grace_s: float = INTERRUPT_GRACE_S) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as usual, and the process exits with code 130 at most ``grace_s`` later (and
    at most ``grace_s`` after leaving this context, for the process's own exit); a second Ctrl-C exits at once,
    or, during a copy of the catalog into place, as soon as the copy is done.
    SIGHUP (a closed terminal) and SIGTERM (``timeout``, ``kill``, a service manager) are a Ctrl-C too: Python's
    default for them ended the process on the spot, and the embedded Prefect server outlived it. During the flow
    Prefect turns SIGTERM into its TerminationSignal, then sends it again to the handler it found, this one."""
    if threading.current_thread() is not threading.main_thread():  # signals reach the main thread only
        yield
        return
    hit: list[threading.Timer] = []
    lock = threading.Lock()

    def start_grace() -> None:
        with lock:
            if hit:
                return
            # Prefect's clients complain about the server this stop ended: in its loggers, and its log shipper on
            # stderr (half a line, unless logging errors are not to be reported).
            quiet_prefect_shutdown()
            logging.raiseExceptions = False
            timer = threading.Timer(grace_s, _exit_interrupted)
            timer.daemon = True
            hit.append(timer)
            timer.start()

    seen: list[int] = []

    def on_sigint(signum: int, frame: Any) -> None:
        # The second signal this handler sees: the run may not have recorded itself yet. (A SIGTERM that Prefect's
        # handler caught first, and sent again once the flow had recorded itself, is the first one it sees.)
        if seen:
            _exit_interrupted(STOPPED_AT_ONCE_MESSAGE)
        seen.append(signum)
        interrupt.request()  # starts the grace period (start_grace)
        raise KeyboardInterrupt

    interrupt.clear()
    # A SIGTERM during the flow reaches Prefect's handler, not on_sigint; the flow requests the stop then, and the
    # grace period starts all the same (a SIGTERM to the whole group, as `timeout` sends, ended the embedded server
    # too, and Prefect's teardown retried it for minutes).
    forget = interrupt.on_request(start_grace)
    previous = {sig: signal.signal(sig, on_sigint) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        forget()
        for timer in hit:
            timer.cancel()
        if hit:
            # Stopped: the process exits next, and Prefect stops its embedded server while the interpreter exits,
            # which under load hung for over a minute after the run had recorded itself. That exit gets the same
            # bound (the timer is a daemon thread, which runs on through the exit's clean-up).
            bound = threading.Timer(grace_s, _exit_interrupted, args=(b"",))
            bound.daemon = True
            bound.start()


def quiet_prefect_shutdown() -> None:
    # Prefect's ephemeral server logs CancelledError tracebacks while it stops at interpreter exit;
    # they say nothing about the run, so they are silenced on a normal exit.
    for name in ("prefect", "uvicorn", "uvicorn.error", "httpx", "asyncio", "prefect.server"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # Prefect's internal loggers take their level from PREFECT_LOGGING_INTERNAL_LEVEL, not from setLevel.
    for name in ("prefect._internal.concurrency", "prefect.events.clients"):
        logging.getLogger(name).disabled = True
