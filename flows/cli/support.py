"""What the curation commands (``set``, ``crate``, ``export``, ``tags``) share: opening the catalog and
turning the errors a user can cause into one line and an exit code.

Exit codes (:class:`flows.cli.errors.ExitCode`): 1 = nothing to work on or a refused write (unknown track or
crate, a file that could not be tagged), 2 = a bad option or argument value (a bad ``--where`` clause, key, BPM,
an ambiguous query), 3 = the catalog is busy (another run holds it), 4 = no catalog there.
"""

from __future__ import annotations

import math
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer

from flows.cli.app import console
from flows.cli.errors import ExitCode, OneLineErrors, say_error
from flows.cli.text import literal, visible
from tasks.constants import LOCK_TIMEOUT_S


def finite_nonnegative(value: float | None) -> float | None:
    """Typer callback of a float option such as ``--bpm-window`` or ``--lock-timeout``: a usage error (exit 2)
    unless a finite number >= 0 (``inf`` and ``nan`` parse as floats but mean nothing here)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0, got {value}")
    return value


def output_path(text: str) -> Path:
    """Typer parser of an output file option or argument: ``-`` means stdout, as for most Unix tools, and ``./-``
    the file named ``-`` (a Path reads both as ``-``)."""
    if text == "-":
        return Path("/dev/stdout")
    return Path(os.path.abspath(text)) if os.path.normpath(text) == "-" else Path(text)


def prefect_paths(**paths: Path | None) -> None:
    """Refuse (exit 2) a path whose name holds bytes that are not UTF-8: a Prefect run's parameters are JSON, which
    cannot carry them (the run failed after the catalog was created). Files inside may have any name."""
    from flows.cli.errors import UsageError

    for what, path in paths.items():
        if path is None:
            continue
        try:
            os.fsencode(path.resolve()).decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(
                f"the {what} {visible(path.resolve())} has bytes in its name that are not UTF-8, which a Prefect run "
                f"cannot carry: rename it (files inside it may have any name)"
            ) from None


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` as one line (literally: no rich markup) on stderr and exit with ``code``."""
    fail_lines([message], code)


def fail_lines(lines: list[str], code: int = 1) -> NoReturn:
    """Print ``lines`` on stderr, each on its own line and literally (no markup; a line break inside one is
    escaped), the first after ``error:``, and exit with ``code``; with ``--debug``, after the traceback of the
    exception being handled, if any."""
    text = "\n".join(visible(line) for line in lines)
    if OneLineErrors.debug and sys.exc_info()[1] is not None:  # the error a command caught and put in words
        say_error(traceback.format_exc(), style=None)
    say_error(f"error: {text}")
    raise typer.Exit(code)


@contextmanager
def catalog_connection(
    catalog: Path, *, read_only: bool = False, lock_timeout: float = LOCK_TIMEOUT_S
) -> Iterator[Any]:
    """A catalog connection, closed on exit; a missing catalog and a busy one end the command in one line.

    Read-only: the published catalog, at once (a run never holds it). Writable: the catalog's writer
    (:class:`tasks.catalog.writer.CatalogWriter`: it waits up to ``lock_timeout`` for a run that writes, and
    publishes the change on exit), so a command's write is never lost to a run's publish. A catalog written by
    an older cratedig is migrated once by a writer.
    """
    import duckdb

    from tasks.catalog.migrations import SCHEMA_VERSION
    from tasks.catalog.writer import CatalogWriter, open_reader
    from tasks.errors import CatalogLockedError

    if not catalog.exists():
        fail(f"no catalog at {catalog} (run `cratedig analyze PATH` first)", int(ExitCode.NOT_A_CATALOG))
    writer = CatalogWriter(catalog, holder={"command": "a cratedig curation command"}, lock_timeout_s=lock_timeout)
    try:
        if read_only:
            con = open_reader(catalog)
            if con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] < SCHEMA_VERSION:
                con.close()
                with writer:  # migrates
                    pass
                con = open_reader(catalog)
        else:
            con = writer.__enter__().con
    except CatalogLockedError as exc:
        fail(str(exc), 3)
    except duckdb.Error as exc:
        fail(f"cannot open the catalog {catalog}: {' '.join(str(exc).split())}")
    if read_only:
        try:
            yield con
        finally:
            con.close()
        return
    try:  # the writer was entered above; leaving it publishes the committed writes and releases the lock
        yield con
    except BaseException as exc:
        writer.__exit__(type(exc), exc, exc.__traceback__)
        raise
    writer.__exit__(None, None, None)


def resolve_one(con: Any, query: str) -> int:
    """The track id a user's QUERY names (exit 2 with the candidates when ambiguous, 1 when none)."""
    from tasks.similarity.query import AmbiguousQueryError, TrackNotFoundError, resolve_query

    try:
        return resolve_query(con, query)[0]
    except AmbiguousQueryError as exc:
        fail_lines(exc.lines, 2)
    except TrackNotFoundError as exc:
        fail(str(exc))


def emit_rows(rows: Any, *, as_json: bool, m3u: Path | None) -> bool:
    """Write ``rows`` as an M3U playlist (when ``m3u``) and/or print them as JSON (when ``as_json``).

    Returns True when that was all (the caller prints no table): JSON was printed or a playlist written.
    """
    import json

    from tasks.similarity.mix import write_m3u

    if m3u is not None:
        playlist = write_m3u(rows, m3u)
        console.print(literal(f"wrote {playlist.written} tracks to {playlist.path}"))
        for skipped in playlist.skipped:
            console.print(literal(f"skipped (a line break in its name cannot be an M3U entry): {skipped}", "yellow"))
    if as_json:
        typer.echo(json.dumps(rows.to_dicts(), default=str))
    return as_json or m3u is not None
