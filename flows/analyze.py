"""The ``analyze_library`` flow: scan → validate + analyse (batches in parallel) → store → index → export → report."""

# No ``from __future__ import annotations``: Prefect validates flow parameters from real annotations, and
# ``flow.serve`` pickles the flow by value, where postponed annotations cannot be resolved.
import os
import time
import uuid
from collections import deque
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled

from flows import artifacts, interrupt, progress
from flows.prefect_tasks import (
    analysis_pool,
    analyze_batch,
    export_parquet,
    refresh_similarity,
    scan_library,
    store_batch,
)
from flows.settings import DEFAULT_CATALOG, default_parquet_dir, default_workers
from tasks.catalog import runs
from tasks.catalog.writer import CatalogWriter
from tasks.constants import ANALYZER_VERSION, BPM_RANGE, LOCK_TIMEOUT_S, MAX_WORKERS_PER_CORE
from tasks.errors import CatalogLockedError, one_line
from tasks.features.workers import FILE_TIMEOUT_S, AnalysisOptions
from tasks.vocabulary import OUTCOMES, RunStatus


def _run_name() -> str:
    """``analyze <library> into <catalog folder>/<catalog file> <local date and time>``: unique and telling."""
    params = get_run_context().flow_run.parameters
    catalog = Path(params.get("catalog_path") or DEFAULT_CATALOG).absolute()
    return (
        f"analyze {Path(params['library']).name or params['library']} into {catalog.parent.name}/{catalog.name} "
        f"{datetime.now():%Y-%m-%d %H:%M:%S}"
    )


def auto_batch_size(n_files: int, workers: int) -> int:
    """Files per batch: about 8 batches per worker (balance, and progress in the UI), 4 to 64 files each.

    Every batch costs a Prefect task run, a store task and a schema validation in the flow process (~0.35 s
    CPU for the validation alone, whatever the batch's size), which competes with the workers for the cores:
    large libraries get large batches. A killed run loses at most the batches in flight.
    """
    return max(4, min(64, -(-n_files // (8 * max(1, workers)))))


def _analyze_and_store(
    batches: list[list[dict[str, Any]]],
    options: AnalysisOptions,
    workers: int,
    catalog: CatalogWriter,
    run_id: str,
    window: int,
    progress_id: Any,
) -> dict[str, int]:
    """Run the batch tasks with at most ``window`` in flight; commit each batch as it finishes, in order, and
    publish the catalog when due (readers see it at most a minute behind).

    Per-file progress needs the batch to run in this process; on a Dask cluster progress moves per batch.
    """
    reporter = progress.current()
    totals = {str(s): 0 for s in OUTCOMES}
    total_files = sum(len(b) for b in batches)
    in_flight: deque = deque()

    def drain_one() -> None:
        index, future = in_flight.popleft()
        counts = store_batch(str(catalog.work), future.result(), run_id, index=index)
        catalog.publish_due()
        for k, v in counts.items():
            totals[k] += v
        if workers == 0:  # analysed elsewhere (Dask): progress moves per batch
            for _ in range(sum(counts.values())):
                reporter.advance({})
        artifacts.report_progress(progress_id, sum(totals.values()), total_files)

    with analysis_pool(workers, options) as pool_id:
        for index, batch in enumerate(batches):
            in_flight.append(
                (index, analyze_batch.submit(batch, options, pool_id=pool_id, index=index, size=len(batch)))
            )
            if len(in_flight) >= window:
                drain_one()
        while in_flight:
            drain_one()
    return totals


@flow(name="analyze_library", flow_run_name=_run_name, log_prints=False)
def analyze_library(
    library: str,
    catalog_path: str = str(DEFAULT_CATALOG),
    parquet_dir: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    force: bool = False,
    since: datetime | None = None,
    paths: list[str] | None = None,
    file_timeout_s: float = FILE_TIMEOUT_S,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
    max_in_flight: int = 4,
    bpm_range: tuple[float, float] = BPM_RANGE,
) -> dict[str, Any]:
    """Analyse every new, changed or outdated audio file under ``library`` into the catalog.

    ``force`` re-analyses everything (rejected files excepted); ``since`` and ``paths`` restrict this run's
    analysis to files modified after a date and/or under some folders (moves and missing files are still recorded).
    ``workers=0`` analyses inside the batch tasks themselves: with a Dask task runner
    (:func:`with_dask`) the cluster's workers do the work and ``max_in_flight`` batches are in flight.
    ``batch_size`` (files per Prefect task) defaults to :func:`auto_batch_size`. ``bpm_range`` is the
    preferred tempo range of the octave choice, BPM; rows analysed with another one are redone.
    Returns the run summary: counts by outcome, seconds, tracks per minute.
    """
    options = AnalysisOptions(timeout_s=file_timeout_s, bpm_range=bpm_range)  # ValueError before any write
    bpm_range = options.bpm_range  # checked, as floats
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be >= 0 (0: analyse inside the batch tasks, e.g. on Dask), got {workers}")
    if workers is not None and workers > MAX_WORKERS_PER_CORE * (os.cpu_count() or 1):
        raise ValueError(
            f"workers must be at most {MAX_WORKERS_PER_CORE} per core ({os.cpu_count()} here), got {workers}"
        )
    logger = get_run_logger()
    started = time.perf_counter()
    library = str(Path(library).resolve())
    workers = default_workers() if workers is None else workers  # 0: batches analyse where they run (Dask)
    run_id = str(uuid.uuid4())
    flow_run_id = str(get_run_context().flow_run.id)
    writer = CatalogWriter(
        catalog_path, holder={"run_id": run_id, "flow_run_id": flow_run_id}, lock_timeout_s=lock_timeout_s
    )
    with ExitStack() as stack:
        stack.enter_context(interrupt.requested_on_sigterm())  # the flow below learns of a SIGTERM however it lands
        try:
            catalog = stack.enter_context(writer)
        except CatalogLockedError as exc:
            logger.info("Nothing analysed: %s.", exc)  # the run ends Cancelled with this message
            return Cancelled(message=f"catalog busy: {exc}")
        work = str(catalog.work)
        runs.start_run(catalog.con, run_id, library, analyzer_version=ANALYZER_VERSION, flow_run_id=flow_run_id)
        counts: dict[str, int] = {}
        try:
            plan, counts = scan_library(
                library, work, run_id, analyzer_version=ANALYZER_VERSION, force=force, bpm_range=bpm_range
            )
            if since is not None or paths:
                plan = plan.restricted(
                    modified_since_ns=None if since is None else int(since.timestamp() * 1e9),
                    under=[str(Path(p).resolve()) for p in paths or []],
                )
            batches = plan.batches(batch_size or auto_batch_size(plan.to_analyze.height, workers))
            counts["to_analyze"] = plan.to_analyze.height
            runs.record_counts(catalog.con, run_id, counts)  # a run killed from here on still says what it found
            catalog.publish_due()
            logger.info(
                "Found %d files in %s: %d to analyse in %d batches on %d workers.",
                counts["files"],
                library,
                counts["to_analyze"],
                len(batches),
                workers,
            )
            progress.current().start(counts["to_analyze"])
            progress_id = artifacts.start_progress(library, done=counts["to_analyze"] == 0)
            window = 2 * workers if workers else max_in_flight
            if batches:
                counts |= _analyze_and_store(batches, options, workers, catalog, run_id, window, progress_id)
            else:
                counts |= {str(s): 0 for s in OUTCOMES}
            refresh_similarity(work)
            parquet_dir = str(parquet_dir or default_parquet_dir(catalog_path))
            export_parquet(work, parquet_dir)
            counts["seconds"] = round(time.perf_counter() - started, 2)
            counts["tracks_per_min"] = round(60 * counts["analyzed"] / max(counts["seconds"], 1e-9), 1)
            runs.finish_run(catalog.con, run_id, counts)
            artifacts.publish_summary(library, counts, runs.run_failures_by_reason(catalog.con, run_id))
            artifacts.publish_rejects(
                library, str(Path(catalog_path).resolve()), runs.run_rejects(catalog.con, run_id), counts
            )
        except BaseException as exc:
            try:
                done = counts | runs.stored_outcomes(catalog.con, run_id)  # what it stored stays, and is counted
                # Ctrl-C, SIGHUP, or SIGTERM (which Prefect turns into TerminationSignal, and a DuckDB query it
                # lands in into RuntimeError('Query interrupted')): what was stored stays, and the command line
                # exits 130 for it (request), as for Ctrl-C.
                if (
                    isinstance(exc, (KeyboardInterrupt, TerminationSignal))
                    or interrupt.requested()
                    or (isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted"))
                ):
                    interrupt.request()
                    runs.finish_run(catalog.con, run_id, done, status=RunStatus.INTERRUPTED, error="interrupted")
                else:
                    runs.finish_run(catalog.con, run_id, done, status=RunStatus.FAILED, error=one_line(exc))
            except Exception:  # noqa: BLE001 - DuckDB refuses the connection after a fatal write error (a full
                pass  # disk): the original error is raised; the next run marks this one interrupted
            raise
    logger.info(
        "Run %s done in %.1f s: %d analysed, %d rejected, %d failed, %d unchanged, %d moved, %d missing.",
        run_id,
        counts["seconds"],
        counts["analyzed"],
        counts["rejected"],
        counts["failed"],
        counts.get("unchanged", 0),
        counts.get("moved", 0),
        counts.get("missing", 0),
    )
    return counts | {"run_id": run_id, "catalog": str(Path(catalog_path).resolve()), "parquet": parquet_dir}


def with_dask(address: str):
    """``analyze_library`` running its batch tasks on the Dask cluster at ``address`` (``tcp://host:8786``).

    Workers read files by path (the library must be on storage they share) and return rows; only the flow
    process writes the catalog. Call it with ``workers=0``.
    """
    from prefect_dask import DaskTaskRunner

    return analyze_library.with_options(task_runner=DaskTaskRunner(address=address))
