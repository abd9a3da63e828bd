"""``cratedig analyze`` and ``cratedig demo``: run the analysis flow with a progress bar and print its summary."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from flows import interrupt
from flows.cli.app import CatalogOpt, JsonOpt, app, console, out
from flows.cli.errors import ExitCode, say_error
from flows.cli.interruption import INTERRUPTED_MESSAGE, bounded_interrupt, quiet_prefect_shutdown
from flows.cli.options import bpm_range_opt, check_run_paths, dask_address_option, file_timeout_opt, workers_option
from flows.cli.support import finite_nonnegative
from flows.cli.text import literal
from tasks.constants import BPM_RANGE, LOCK_TIMEOUT_S
from tasks.features.workers import FILE_TIMEOUT_S


class RichProgress:
    """Progress bar fed by the flow's per-file results."""

    def __init__(self, progress: Any, waiting: str) -> None:
        self.progress = progress
        self.task = progress.add_task(waiting, total=None)

    def start(self, total: int) -> None:
        self.progress.update(self.task, total=total, description="analysing")

    def advance(self, result: dict) -> None:
        self.progress.advance(self.task)


class _NoRunFailureEcho(logging.Filter):
    """Keeps Prefect's flow/task-run ERROR records (their tracebacks) off the terminal: a failed run is told
    in one line by :func:`analyze`, and the records still reach the Prefect API (the UI shows them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno >= logging.ERROR and record.name.startswith(("prefect.flow_runs", "prefect.task_runs"))
        )


@contextmanager
def _one_line_failures() -> Iterator[None]:
    """While the flow runs, the terminal handlers of the root logger drop run-failure records."""
    quiet = _NoRunFailureEcho()
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    for h in handlers:
        h.addFilter(quiet)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(quiet)


SUMMARY_ROWS = [
    ("files", "files found"),
    ("new", "new"),
    ("changed", "changed"),
    ("outdated", "outdated analysis"),
    ("unchanged", "unchanged"),
    ("moved", "moved"),
    ("missing", "missing"),
    ("ignored", "ignored (not audio)"),
    ("analyzed", "analysed"),
    ("rejected", "rejected"),
    ("failed", "failed"),
    ("unreadable", "unreadable entries"),
    ("seconds", "seconds"),
    ("tracks_per_min", "tracks / minute"),
]


def print_summary(summary: dict[str, Any], library: Path, catalog: Path) -> None:
    table = Table(title="cratedig analyze", show_header=False)
    for key, label in SUMMARY_ROWS:
        if key in summary:
            table.add_row(label, str(summary[key]))
    out.print(table)
    unreadable = []
    if "seconds" in summary and summary.get("unreadable"):  # a run records each unreadable entry it finds
        n = summary["unreadable"]
        unreadable.append(f"{n} unreadable {'entry' if n == 1 else 'entries'}")
    if summary.get("files", 1) == 0 and summary.get("missing", 0) == 0:
        told = f"; recorded {unreadable[0]}" if unreadable else ""
        out.print(f"No audio files under {library}{told}.", markup=False, highlight=False)
    elif (
        summary.get("to_analyze", 1) == 0
        or (summary.get("analyzed", 0) + summary.get("rejected", 0) + summary.get("failed", 0)) == 0
    ):
        recorded = [f"{summary[k]} {k}" for k in ("moved", "missing") if summary.get(k)] + unreadable
        if recorded:  # the run changed the catalog all the same
            out.print(f"[green]Nothing to analyse; recorded {' and '.join(recorded)}.[/green]")
        else:
            out.print("[green]Nothing to analyse: the catalog is up to date.[/green]")
    if summary.get("catalog"):
        out.print(literal(f"catalog: {summary['catalog']}"))
    else:
        out.print(literal(f"no catalog written at {catalog.resolve()}: nothing to store"))
    if summary.get("parquet"):
        out.print(literal(f"parquet: {summary['parquet']}"))


@app.command()
def analyze(
    path: Path = typer.Argument(..., exists=True, file_okay=False, help="Library folder."),
    catalog: Path = CatalogOpt,
    workers: Optional[int] = typer.Option(
        None, "--workers", callback=workers_option, help="Worker processes, at least 1 (default: all cores)."
    ),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", min=1, help="Files per Prefect task (default: ~8 batches per worker, 4-64)."
    ),
    force: bool = typer.Option(False, "--force", help="Re-analyse every file."),
    bpm_range: tuple[float, float] = bpm_range_opt(
        BPM_RANGE,
        "Preferred tempo range for half/double choices, BPM, 30 <= LO < HI <= 300 (e.g. 55 150 for classical); "
        "spanning an octave or more, every BPM reported lies inside it (40 250: the model chooses freely); rows "
        "analysed with another range are redone.",
    ),
    file_timeout: float = file_timeout_opt(
        FILE_TIMEOUT_S,
        "Wall-clock limit per file; the worker analysing a file for longer is killed and the file recorded TIMEOUT.",
    ),
    lock_timeout: float = typer.Option(
        LOCK_TIMEOUT_S, "--lock-timeout", callback=finite_nonnegative, help="Seconds to wait for another run."
    ),
    dask_address: Optional[str] = typer.Option(
        None,
        "--dask-address",
        callback=dask_address_option,
        help="Run the batches on this Dask scheduler (tcp://HOST:8786).",
    ),
    parquet_dir: Optional[Path] = typer.Option(
        None,
        "--parquet-dir",
        file_okay=False,
        help="Parquet export folder (default: parquet/ beside catalog.duckdb, NAME_parquet/ beside NAME.duckdb).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Scan PATH, analyse what is new, changed or outdated, and update the catalog and Parquet export."""
    from flows.settings import default_parquet_dir
    from tasks.catalog.preview import idle_run_counts
    from tasks.constants import ANALYZER_VERSION

    check_run_paths(path, catalog, parquet_dir)  # before any Prefect start-up, not at the run's end
    idle = None
    if not force:
        idle = idle_run_counts(path, catalog, analyzer_version=ANALYZER_VERSION, bpm_range=bpm_range)
    if idle is not None:  # nothing to do: no Prefect server to start, no run to record
        _close_stopped_runs(catalog, lock_timeout)
        summary = idle | {"catalog": str(catalog.resolve()) if catalog.exists() else None}
        exported = _refresh_stale_export(catalog, parquet_dir or default_parquet_dir(catalog))
        if exported is not None:
            summary["parquet"] = str(exported.resolve())
    else:
        if not catalog.exists():  # published empty before Prefect starts (15-45 s): readers never see "no catalog"
            from tasks.catalog.writer import CatalogWriter

            with CatalogWriter(
                catalog, holder={"command": "analyze (creating the catalog)"}, lock_timeout_s=lock_timeout
            ):
                pass
        else:
            _wait_for_a_running_writer(catalog, lock_timeout)
        summary = _run_flow(
            path,
            catalog,
            workers,
            batch_size,
            force,
            bpm_range,
            file_timeout,
            lock_timeout,
            dask_address,
            as_json,
            parquet_dir=parquet_dir,
        )
    if as_json:
        out.print_json(json.dumps(summary, default=str))
    else:
        print_summary(summary, path, catalog)


def _refresh_stale_export(catalog: Path, parquet_dir: Path) -> Path | None:
    """Export the catalog to Parquet when its export is missing or holds other content; returns the folder.

    A run stopped after it stored analyses but before its export (Ctrl-C, a kill), or corrections made
    since, leave the export behind the catalog; a run with nothing to analyse starts no flow, so it is
    redone here, under the writer lock. A run holding the lock exports at its end, so it is left to it.
    """
    from tasks.catalog.parquet import export_is_current, export_parquet
    from tasks.catalog.writer import acquire_lock, open_reader
    from tasks.errors import CatalogLockedError

    if not catalog.exists():
        return None
    try:  # under the lock, no run publishes while the export is compared and written
        fd = acquire_lock(catalog, {"command": "analyze (refreshing the Parquet export)"}, timeout_s=0)
    except CatalogLockedError:
        return None
    try:
        con = open_reader(catalog)
        try:
            if export_is_current(con, parquet_dir):
                return None
            export_parquet(con, parquet_dir)
        finally:
            con.close()
    finally:
        os.close(fd)
    return parquet_dir


def _wait_for_a_running_writer(catalog: Path, lock_timeout: float) -> None:
    """Wait up to ``lock_timeout`` for a run that holds the catalog before Prefect starts (15-45 s); a run still
    holding it then ends the command with code 3 at once (the flow would wait for it again after its start-up)."""
    from tasks.catalog.writer import acquire_lock, current_writer

    if current_writer(catalog) is None:
        return
    console.print(f"waiting up to {lock_timeout:g} s for the run that is writing the catalog ...")
    os.close(acquire_lock(catalog, {"command": "analyze (waiting for another run)"}, timeout_s=lock_timeout))


def _close_stopped_runs(catalog: Path, lock_timeout: float) -> None:
    """A run killed (or stopped by a second Ctrl-C) stays ``running`` in the catalog until a run takes the catalog;
    an up-to-date library starts none, so it is recorded ``interrupted`` here, with the lock held."""
    from tasks.catalog.runs import close_stopped_runs
    from tasks.catalog.writer import CatalogWriter, current_writer, open_reader

    if not catalog.exists() or current_writer(catalog) is not None:  # none, or a run that is alive
        return
    con = open_reader(catalog)
    try:
        (running,) = con.execute("SELECT count(*) FROM runs WHERE status = 'running'").fetchall()[0]
    finally:
        con.close()
    if running:
        with CatalogWriter(
            catalog, holder={"command": "analyze (closing a stopped run)"}, lock_timeout_s=lock_timeout
        ) as w:
            close_stopped_runs(w.con)


def _run_flow(
    path: Path,
    catalog: Path,
    workers: Optional[int],
    batch_size: Optional[int],
    force: bool,
    bpm_range: tuple[float, float],
    file_timeout: float,
    lock_timeout: float,
    dask_address: Optional[str],
    as_json: bool,
    *,
    parquet_dir: Optional[Path] = None,
) -> dict[str, Any]:
    """Run the ``analyze_library`` flow with a progress bar; a run that found the catalog busy ends with code 3,
    one that failed (a full disk) with one line and code 1."""
    import duckdb
    from prefect import tags
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from flows import progress
    from flows.analyze import analyze_library, with_dask
    from flows.libraries import library_tags
    from flows.schedule import api_url
    from tasks.errors import one_line

    server = api_url()
    waiting = f"connecting to Prefect at {server} ..." if server else "starting Prefect (an embedded server) ..."
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=as_json or not console.is_terminal,
    ) as bar:
        if as_json or not console.is_terminal:
            console.print(waiting)
        try:
            with (
                progress.reporting(RichProgress(bar, waiting)),
                tags(*library_tags(str(path))),
                _one_line_failures(),
                bounded_interrupt(),
            ):
                run = with_dask(dask_address) if dask_address else analyze_library
                state = run(
                    str(path),
                    catalog_path=str(catalog),
                    workers=0 if dask_address else workers,
                    parquet_dir=str(parquet_dir) if parquet_dir else None,
                    batch_size=batch_size,
                    force=force,
                    lock_timeout_s=lock_timeout,
                    bpm_range=bpm_range,
                    file_timeout_s=file_timeout,
                    return_state=True,
                )
        except BaseException:
            if not interrupt.requested():
                raise
        if interrupt.requested():  # stopped within the grace period, as KeyboardInterrupt or as a query interrupted
            console.print(
                INTERRUPTED_MESSAGE.decode().strip(), style="red", markup=False, highlight=False, soft_wrap=True
            )
            raise typer.Exit(ExitCode.INTERRUPTED)
    quiet_prefect_shutdown()
    if state.is_cancelled():
        say_error(f"error: {state.message}")
        raise typer.Exit(ExitCode.BUSY)
    try:
        return state.result()
    except (OSError, duckdb.Error) as exc:  # a full disk, a catalog that cannot be written: one line, exit 1
        console.print(literal(f"cratedig analyze: the run failed: {one_line(exc)}", "red"), soft_wrap=True)
        raise typer.Exit(1)
