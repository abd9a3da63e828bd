"""The ``reanalyze`` flow: what the ``nightly-reanalysis`` deployment runs on its schedule.

One run takes the library's concurrency slot, then runs :func:`flows.analyze.analyze_library` as a
subflow (incremental: new, changed and outdated files only; its last task rewrites the Parquet export),
and releases the slot. The slot is a Prefect global concurrency limit of one, named after the library's
resolved path, so two deployments (or a served schedule and a ``prefect deployment run``) never analyse
one library at the same time: the second waits for the first, up to ``lock_wait_s``. A run that finds the
library or its catalog busy after that long ends **Cancelled** ("catalog busy: ..."), not Failed: nothing
went wrong, the work is left for the next run.

The analyse subflow and its task runs carry the tags ``cratedig`` and ``library:<folder name>``; its
progress, summary and rejects artifacts are in the subflow run's Artifacts tab in the UI.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, tags
from prefect.context import get_run_context
from prefect.states import Cancelled

from flows.analyze import analyze_library
from flows.libraries import library_limit_name, library_tags
from flows.settings import DEFAULT_CATALOG, default_parquet_dir
from tasks.constants import BPM_RANGE
from tasks.features.workers import FILE_TIMEOUT_S

#: How long a run waits for another run of the same library to finish, s.
LOCK_WAIT_S = 3600.0


def ensure_library_limit(name: str, *, slots: int = 1) -> bool:
    """Create the global concurrency limit ``name`` with ``slots`` slots unless it exists; True if created.

    An existing limit is left as it is, so a limit the user raised, lowered or deactivated in the UI stays so.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return False
        except ObjectNotFound:
            pass
        try:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
        except ObjectAlreadyExists:  # another run created it between the read and the create
            return False
    return True


def _run_name() -> str:
    """``reanalyze <library> into <catalog folder>/<catalog file> <local date and time>``."""
    params = get_run_context().flow_run.parameters
    catalog = Path(params.get("catalog_path") or DEFAULT_CATALOG).absolute()
    return (
        f"reanalyze {Path(params['library']).name or params['library']} into {catalog.parent.name}/{catalog.name} "
        f"{datetime.now():%Y-%m-%d %H:%M:%S}"
    )


def _reanalyze(
    library: str,
    catalog_path: str = str(DEFAULT_CATALOG),
    parquet_dir: str | None = None,
    workers: int | None = None,
    batch_size: int | None = None,
    force: bool = False,
    since: datetime | None = None,
    paths: list[str] | None = None,
    file_timeout_s: float = FILE_TIMEOUT_S,
    lock_wait_s: float = LOCK_WAIT_S,
    bpm_range: tuple[float, float] = BPM_RANGE,
) -> dict[str, Any]:
    """Re-analyse ``library`` incrementally, one run per library at a time, and rewrite its Parquet export.

    Parameters are those of :func:`flows.analyze.analyze_library` (``force``: everything again;
    ``since``: only files modified after a date; ``paths``: only files under these folders; rows of an
    older ``analyzer_version`` are always redone, and only those, but for versions whose change reaches only
    ranges other than the default, :data:`~tasks.constants.RANGE_ONLY_VERSIONS`, or only rows given no tempo as
    ``ARHYTHMIC``, :data:`~tasks.constants.ARHYTHMIC_ONLY_VERSIONS`) plus ``lock_wait_s``: how long to wait,
    in s, for another run of the same library or another writer of the catalog; then the run ends Cancelled.

    Returns the analysis summary plus ``analyze_flow_run_id`` (the subflow run) and ``parquet_dir``.
    """
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.concurrency.sync import concurrency

    # Refused before any wait or write: an empty library (`prefect deploy` without CRATEDIG_LIBRARY) resolved to the
    # worker's working folder, and a negative wait ended the run Cancelled as if another run held the library.
    if not str(library).strip():
        raise ValueError("the library parameter is empty: give the folder (CRATEDIG_LIBRARY at `prefect deploy`)")
    if not Path(str(library)).expanduser().is_absolute():  # relative to the worker's working folder, not the user's
        raise ValueError(f"the library parameter must be an absolute path, got {library!r}")
    if not lock_wait_s >= 0:
        raise ValueError(f"lock_wait_s must be at least 0 s, got {lock_wait_s}")
    logger = get_run_logger()
    library = str(Path(str(library)).expanduser().resolve())
    limit = library_limit_name(library)
    if ensure_library_limit(limit):
        logger.info("Created the concurrency limit %s (1 slot) for %s.", limit, library)
    holder = ConcurrencyLeaseHolder(type="flow_run", id=get_run_context().flow_run.id)
    with ExitStack() as stack:
        started = time.monotonic()
        try:
            stack.enter_context(concurrency(limit, occupy=1, timeout_seconds=lock_wait_s, strict=True, holder=holder))
        except TimeoutError:
            message = (
                f"catalog busy: another run is analysing {library} (concurrency limit {limit}); "
                f"gave up after {lock_wait_s:.0f} s"
            )
            logger.info("Nothing analysed: %s.", message)  # the run ends Cancelled with this message
            return Cancelled(message=message)
        with tags(*library_tags(library)):
            state = analyze_library(
                library,
                catalog_path=catalog_path,
                parquet_dir=parquet_dir,
                workers=workers,
                batch_size=batch_size,
                force=force,
                since=since,
                paths=paths,
                file_timeout_s=file_timeout_s,
                bpm_range=bpm_range,
                lock_timeout_s=max(0.0, lock_wait_s - (time.monotonic() - started)),
                return_state=True,
            )
        if state.is_cancelled():  # the catalog was busy (another writer): nothing went wrong
            return Cancelled(message=state.message)
        summary = state.result()
    out = str(parquet_dir or default_parquet_dir(catalog_path))
    logger.info(
        "Re-analysed %s: %d analysed, %d rejected, %d failed; Parquet export in %s.",
        library,
        summary.get("analyzed", 0),
        summary.get("rejected", 0),
        summary.get("failed", 0),
        out,
    )
    return summary | {"analyze_flow_run_id": str(state.state_details.flow_run_id), "parquet_dir": out}


# The flow wraps a module-level function of its own name: the runner of ``flow.serve`` cloudpickles the flow
# into each run's subprocess, and a function reachable by module and name is pickled by reference (imported
# there with its module's globals) instead of by value, where the string annotations (``datetime``) of
# ``from __future__ import annotations`` no longer resolve and parameter validation fails.
def report_run(flow: Any, flow_run: Any, state: Any) -> None:
    """State hook: one line per finished run on the serving process's output (``cratedig serve``)."""
    from prefect.settings import PREFECT_UI_URL

    counts = ""
    if state.is_completed():
        try:
            summary = state.result(raise_on_failure=False)
            counts = ": " + ", ".join(f"{summary.get(k, 0)} {k}" for k in ("analyzed", "rejected", "failed"))
        except Exception:  # noqa: BLE001  (a line without counts rather than none)
            counts = ""
    elif state.message:
        counts = f": {state.message}"
    ui = PREFECT_UI_URL.value()
    link = f"  {ui}/runs/flow-run/{flow_run.id}" if ui else ""
    print(f"{datetime.now():%Y-%m-%d %H:%M:%S} {flow_run.name}: {state.name}{counts}{link}", flush=True)


reanalyze = flow(
    _reanalyze,
    name="reanalyze",
    flow_run_name=_run_name,
    log_prints=False,
    on_completion=[report_run],
    on_failure=[report_run],
    on_cancellation=[report_run],
    on_crashed=[report_run],
)
