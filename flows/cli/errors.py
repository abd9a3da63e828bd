"""Errors in one line: every command's exceptions become a message on stderr and a documented exit code.

:class:`OneLineErrors` is the typer group of :data:`flows.cli.app.app`: it runs the command, and turns an
exception into ``error: <what happened>`` plus the exit code of :data:`EXIT_CODES`. ``cratedig --debug ...``
or ``CRATEDIG_DEBUG=1`` shows the traceback as well. Commands raise :class:`UsageError` (or
:class:`~tasks.errors.CratedigError` subclasses) for the user's mistakes; anything else is a bug (code 1).
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from enum import IntEnum
from typing import Any, NoReturn

import typer
from rich.console import Console
from typer.core import TyperGroup

from tasks.errors import (
    CatalogLockedError,
    CatalogReadOnlyError,
    CratedigError,
    NotACatalogError,
    OutputNotWritableError,
)


class ExitCode(IntEnum):
    """Exit codes of every ``cratedig`` command (also in ``cratedig --help`` and the README)."""

    OK = 0
    ERROR = 1  # a refused write, nothing to act on, a failed run or an unexpected error (--debug: traceback)
    USAGE = 2  # a bad option or argument: unknown option, bad cron or interval, ambiguous query
    BUSY = 3  # the catalog is being written by another run (the message names it)
    NOT_A_CATALOG = 4  # no catalog there, or the file is not a DuckDB catalog
    NOT_WRITABLE = 5  # the catalog or an output file cannot be written there (read-only folder...)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it): what a run stored is kept
    BROKEN_PIPE = 141  # the output's reader went away (`| head`; 128 + SIGPIPE, as shells report it)


#: What each exit code means, as shown by ``cratedig --help``.
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.OK: "done",
    ExitCode.ERROR: "a refused write or nothing to act on (no such track or crate, a file not tagged), a failed run, "
    "or an unexpected error (--debug or CRATEDIG_DEBUG=1 shows the traceback)",
    ExitCode.USAGE: "bad option or argument (bad cron or interval, ambiguous query...)",
    ExitCode.BUSY: "the catalog is being written by another run (named in the message)",
    ExitCode.NOT_A_CATALOG: "no catalog there, or not a DuckDB catalog",
    ExitCode.NOT_WRITABLE: "the catalog or an output file cannot be written there",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); what a run analysed is kept and the same command goes on",
    ExitCode.BROKEN_PIPE: "the program reading the output stopped reading (| head)",
}


def exit_codes_help() -> str:
    return "Exit codes: " + "; ".join(f"{int(code)} {text}" for code, text in EXIT_CODES.items()) + "."


def devnull_onto(fd: int) -> None:
    """Point descriptor ``fd`` (stdout, stderr) at /dev/null: what is still to be written there, the interpreter's
    own flush at exit included, goes nowhere instead of failing again."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def reader_gone() -> NoReturn:
    """The program reading stdout stopped (``| head``): no error of ours. stdout goes to /dev/null, so that the
    exit's flush cannot fail too, and the command ends with :attr:`ExitCode.BROKEN_PIPE`, quietly."""
    devnull_onto(sys.stdout.fileno())
    raise SystemExit(int(ExitCode.BROKEN_PIPE))


def standard_streams_open() -> None:
    """Give a closed stdin, stdout or stderr (``cratedig ... >&-``) /dev/null: otherwise the next file opened takes
    that descriptor, and output meant for stdout (``--m3u /dev/stdout``) would be written into it, the catalog
    included."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:  # the lowest free one is fd itself, as the lower ones are open by now; in case not
                os.dup2(opened, fd)
                os.close(opened)


def _file_id(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_dev, stat.st_ino


def _stdout_file() -> tuple[int, int] | None:
    """What stdout's descriptor is open on (None where stdout has none, as under a test runner's capture)."""
    try:
        return _file_id(os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):  # io.UnsupportedOperation is both an OSError and a ValueError
        return None


class CliConsole(Console):
    """A rich console whose broken pipe ends the command as any other output's does (rich's own exits 1), and
    whose width follows ``COLUMNS`` when it prints, not when it was made (rich reads it once, at import)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if kwargs.get("width") is None:
            self._width = None  # rich's size reads COLUMNS (and the terminal) each time

    def on_broken_pipe(self) -> None:
        self.quiet = True
        reader_gone()


#: Errors go to stderr, like the progress bar (:data:`flows.cli.app.console`).
console = CliConsole(stderr=True, emoji=False)  # ":x:" in a file name or an error is text


class ForgivingStderr:
    """``sys.stderr`` for a command: a write that fails (``2>/dev/full``) loses its text, and stderr goes to /dev/null
    from then on. Progress and report lines are not the command's work: an export was written, then exited 5 because
    its "wrote" line could not be; an ``analyze`` stopped before it began."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _lost(self) -> None:
        try:
            devnull_onto(self._stream.fileno())
        except (OSError, ValueError, AttributeError):  # no descriptor (a test runner's capture): nothing to move
            pass

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError:
            self._lost()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError:
            self._lost()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def say_error(text: str, *, style: str | None = "red") -> None:
    """Print ``text`` (literally) on stderr. During a command stderr is a :class:`ForgivingStderr`: one that cannot
    be written (``2>/dev/full``) loses the line, not the command's exit code."""
    console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


class UsageError(CratedigError):
    """A user's mistake in an option or argument (exit code 2)."""


_NOT_WRITABLE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EISDIR})


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code and the one-line message of an exception."""
    if isinstance(exc, CatalogLockedError):
        return ExitCode.BUSY, str(exc)
    if isinstance(exc, NotACatalogError):
        return ExitCode.NOT_A_CATALOG, str(exc)
    if isinstance(exc, (CatalogReadOnlyError, OutputNotWritableError)):
        return ExitCode.NOT_WRITABLE, str(exc)
    if isinstance(exc, UsageError):
        return ExitCode.USAGE, str(exc)
    if isinstance(exc, OSError) and exc.errno in _NOT_WRITABLE_ERRNOS:
        return ExitCode.NOT_WRITABLE, f"cannot write {exc.filename or 'the output'}: {exc.strerror}"
    if isinstance(exc, OSError) and exc.filename:
        return ExitCode.ERROR, f"{exc.filename}: {exc.strerror}"
    if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):  # duckdb.Error, without importing duckdb
        return ExitCode.ERROR, f"catalog error: {' '.join(str(exc).split())}"
    if isinstance(exc, CratedigError):
        return ExitCode.ERROR, str(exc)
    gone = _server_gone(exc)
    if gone is not None:
        # The server went away (`cratedig server stop`, a crash) or was never there: what was stored is kept.
        return ExitCode.ERROR, (
            f"the Prefect server does not answer ({type(gone).__name__}: {' '.join(str(gone).split())[:200]}): start "
            "it (`cratedig server start`) and rerun; the catalog keeps every batch stored before"
        )
    return ExitCode.ERROR, f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _server_gone(exc: BaseException, depth: int = 0) -> BaseException | None:
    """The error in ``exc`` (itself, what caused it, or a member of its group) that says the Prefect server did not
    answer: an HTTP transport error, or Prefect's own "Failed to reach API"."""
    if depth > 8:
        return None
    if type(exc).__module__.split(".")[0] in ("httpx", "httpcore") and type(exc).__name__.endswith(
        ("ConnectError", "ConnectTimeout", "ReadError", "ReadTimeout", "RemoteProtocolError", "WriteError")
    ):
        return exc
    if isinstance(exc, RuntimeError) and "Failed to reach API" in str(exc):
        return exc
    inner = [*getattr(exc, "exceptions", ()), exc.__cause__, exc.__context__]
    return next((g for e in inner if e is not None and (g := _server_gone(e, depth + 1)) is not None), None)


#: Typer's own (vendored) click exceptions, reached through its public BadParameter: a bad option or argument,
#: and any error click reports itself.
_UsageError = typer.BadParameter.__bases__[0]
_ClickException = _UsageError.__bases__[0]


class OneLineErrors(TyperGroup):
    """The ``cratedig`` group: a command's exception becomes one line and an exit code."""

    debug: bool = False

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        """Click's main, with a bad option or argument reported in one line (exit 2) instead of a usage box, and a
        stderr that cannot be written costing its lines only (:class:`ForgivingStderr`). The process's stop signals
        belong to the entry point (:func:`flows.cli.main`)."""
        stderr = sys.stderr
        if not isinstance(stderr, ForgivingStderr):
            sys.stderr = ForgivingStderr(stderr)
        try:
            return self._main(*args, standalone_mode=standalone_mode, **kwargs)
        finally:
            sys.stderr = stderr

    def _main(self, *args, standalone_mode: bool = True, **kwargs):
        standard_streams_open()
        stdout_before = _stdout_file()
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except SystemExit as exc:
            # Typer prints the help with a rich console of its own, whose broken pipe (`cratedig --help | head`)
            # puts /dev/null on stdout and exits 1. Only that exit leaves stdout changed to /dev/null.
            if exc.code == 1 and stdout_before != _stdout_file() == _file_id(os.stat(os.devnull)):
                reader_gone()
            raise
        except _ClickException as exc:
            command = exc.ctx.command_path if getattr(exc, "ctx", None) else "cratedig"
            hint = f" (see '{command} --help')" if isinstance(exc, _UsageError) else ""
            if exc.format_message():  # no message: click printed the help itself (no arguments at all)
                message = f"error: {exc.format_message()}{hint}"
                say_error(message)
            rv = ExitCode.USAGE if isinstance(exc, _UsageError) else exc.exit_code
            if not standalone_mode:
                raise
        except typer.Abort:
            if not standalone_mode:
                raise
            say_error("aborted")
            rv = ExitCode.ERROR
        except BrokenPipeError:  # `cratedig --help | head`: click prints the help before any command runs
            reader_gone()
        except OSError as exc:  # the help could not be written (`cratedig --help > /dev/full`)
            if not standalone_mode:
                raise
            devnull_onto(sys.stdout.fileno())  # the exit's flush would fail again
            rv, message = classify(exc)
            say_error(f"error: {message}")
        if not standalone_mode:
            return rv
        sys.exit(int(rv) if isinstance(rv, int) else 0)

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except BrokenPipeError:  # `cratedig sql ... | head`: nobody reads on, which is no error of ours
            reader_gone()
        except Exception as exc:  # noqa: BLE001  (every error ends as one line and a documented code)
            code, message = classify(exc)
            if OneLineErrors.debug:
                say_error(traceback.format_exc(), style=None)
            hint = "" if OneLineErrors.debug or code != ExitCode.ERROR else " (--debug shows the traceback)"
            say_error(f"error: {message}{hint}")
            raise typer.Exit(int(code)) from None
