"""Prefect ``@task`` adapters around the plain functions: the only module of ``tasks`` that imports Prefect.

Each adapter opens the catalog by path (the run's working copy, :class:`tasks.catalog.writer.CatalogWriter`),
calls the plain functions, and returns counts or small rows. Waveforms and spectrograms never leave the worker
processes.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.tasks import exponential_backoff

from flows import progress
from schemas.tables import InventoryRow, split_valid
from tasks.audio.identity import path_to_text
from tasks.catalog import parquet, store
from tasks.catalog.scan import ScanPlan, plan_scan
from tasks.catalog.walk import walk_library
from tasks.catalog.writer import connect
from tasks.errors import TRANSIENT_ERRNOS
from tasks.features.workers import AnalysisOptions, AnalysisPool
from tasks.similarity.index import refresh_similarity_index
from tasks.vocabulary import Reason


def is_transient_io(task, task_run, state) -> bool:
    """``retry_condition_fn``: retry only transient I/O errors (a network share that hiccups)."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


@task(
    name="scan-library",
    task_run_name="scan library",
    cache_policy=NONE,
    retries=4,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=is_transient_io,
)
def scan_library(
    library: str,
    catalog: str,
    run_id: str,
    *,
    analyzer_version: int,
    force: bool = False,
    bpm_range: tuple[float, float] | None = None,
) -> tuple[ScanPlan, dict[str, int]]:
    """Walk ``library``, diff it against the catalog, and record moves, missing files and walk problems.

    Tracks under a folder that cannot be listed stay as they were (the folder is an ``UNREADABLE`` reject);
    rejects of paths the walk no longer finds are cleared.

    OSErrors can only happen before anything is written, so a retry is safe.
    """
    os.scandir(library).close()  # an unreachable root fails (and retries) here, before anything is marked missing
    walk = walk_library(library)
    files, bad = split_valid(walk.files, InventoryRow)
    walk.problems += [(walk.files["path"][i], Reason.SCHEMA, why) for i, why in bad.items()]
    with closing(connect(catalog)) as con:
        plan = plan_scan(
            files,
            store.known_tracks(con, library),
            analyzer_version=analyzer_version,
            force=force,
            bpm_range=bpm_range,
            unreadable_dirs=walk.unknown_dirs,
            elsewhere=lambda sizes: store.tracks_elsewhere(con, library, sizes),
        )
        store.apply_plan(con, plan, run_id)
        counts = plan.counts() | {
            "files": walk.files.height,
            "ignored": walk.n_ignored,
            "unreadable": store.record_problems(con, walk.problems, run_id),
        }
        store.clear_stale_rejects(
            con,
            path_to_text(library),
            walk.files["path"],
            [p for p, _, _ in walk.problems],
            unreadable_dirs=walk.unknown_dirs,
        )
    return plan, counts


#: The warm pools of the flows running in this process, by id: a task gets the id, never the live pool.
_POOLS: dict[str, AnalysisPool] = {}


@contextmanager
def analysis_pool(workers: int, options: AnalysisOptions) -> Iterator[str]:
    """Start ``workers`` warm analysis processes for the ``with`` block; yields the id :func:`analyze_batch` takes."""
    pool_id = uuid.uuid4().hex
    with AnalysisPool(workers, options) as pool:
        _POOLS[pool_id] = pool
        try:
            yield pool_id
        finally:
            del _POOLS[pool_id]


@task(
    name="analyze-batch",
    task_run_name="batch {index} ({size} files)",
    cache_policy=NONE,
    retries=1,
    retry_delay_seconds=2,
)
def analyze_batch(
    items: list[dict[str, Any]], options: AnalysisOptions, *, pool_id: str, index: int, size: int
) -> list[dict[str, Any]]:
    """Analyse one batch in the flow's warm worker pool (:func:`analysis_pool`); one result row per file, never an
    exception per file. Where the pool is not (a Dask worker), the batch is analysed in a child of this process."""
    pool = _POOLS.get(pool_id)
    if pool is None:  # a Dask worker: a warm child of this process, killed at each file's deadline if need be
        return AnalysisPool.in_child(options).analyze_batch(items)
    reporter = progress.current()  # per-file progress when the files are analysed for this process
    return pool.analyze_batch(items, on_result=reporter.advance if pool.workers > 0 else None)


@task(name="store-batch", task_run_name="store batch {index}", cache_policy=NONE)
def store_batch(catalog: str, results: list[dict[str, Any]], run_id: str, *, index: int) -> dict[str, int]:
    """Commit one batch's rows to the catalog in one transaction."""
    with closing(connect(catalog)) as con:
        return store.store_results(con, results, run_id)


@task(name="refresh-similarity-index", task_run_name="refresh similarity index", cache_policy=NONE)
def refresh_similarity(catalog: str) -> dict[str, Any]:
    """Relearn the similarity standardisation and rebuild the index (skipped when nothing changed)."""
    with closing(connect(catalog)) as con:
        return refresh_similarity_index(con)


@task(name="export-parquet", task_run_name="export parquet", cache_policy=NONE)
def export_parquet(catalog: str, out_dir: str) -> list[str]:
    """Rewrite the Parquet export of ``tracks`` and ``features``."""
    with closing(connect(catalog)) as con:
        return [str(p) for p in parquet.export_parquet(con, out_dir)]
