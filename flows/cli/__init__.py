"""The ``cratedig`` command line (typer + rich): one module per command group, all on :data:`app`.

Settings are read here (options, environment) and passed down; the work is in :mod:`flows` and :mod:`tasks`.
"""

from __future__ import annotations

from flows.cli import analyze, catalog, curate, demo, export, serve, server, similar, sql, tags  # noqa: F401  (each module adds its commands to app)
from flows.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``cratedig`` command: :data:`app`, with SIGTERM and SIGHUP taken as Ctrl-C from the start to the very end.

    The embedded Prefect server is stopped after the command has returned, while the interpreter exits; a stop
    signal then (the second of two, or one that lands late) took Python's default and left the server running.
    During the exit a stop signal ends the process at once, its children (that server) first.
    """
    from flows import interrupt
    from flows.cli.interruption import exit_at_once

    interrupt.stop_signals_as_ctrl_c()
    try:
        app()
    finally:
        interrupt.on_stop_signals(exit_at_once)
