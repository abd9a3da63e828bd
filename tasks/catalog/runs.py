"""Runs in the catalog: start one, finish it with its counts, and what ``status`` and the run reports show."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from schemas.tables import RunCounts, RunRow
from tasks.catalog.corrections import curation_counts
from tasks.catalog.store import now
from tasks.vocabulary import OUTCOMES, RunStatus

#: Summary counts stored in ``runs`` as ``n_<name>`` columns.
RUN_COUNTS: tuple[str, ...] = (
    "files",
    "new",
    "changed",
    "unchanged",
    "moved",
    "missing",
    "ignored",
    "analyzed",
    "rejected",
    "failed",
)


def start_run(
    con: duckdb.DuckDBPyConnection, run_id: str, library: str, *, analyzer_version: int, flow_run_id: str | None = None
) -> None:
    """Insert the ``runs`` row of a run that starts now (status ``running``); runs still marked running hold no
    lock any more (the caller has it): they become ``interrupted``."""
    close_stopped_runs(con)
    row = RunRow.validate(
        pl.DataFrame(
            [[run_id, flow_run_id, library, now(), analyzer_version, RunStatus.RUNNING.value]],
            schema=["run_id", "flow_run_id", "library", "started_at", "analyzer_version", "status"],
            orient="row",
        )
    )
    con.register("_run", row)
    con.execute("INSERT INTO runs BY NAME SELECT * FROM _run")
    con.unregister("_run")


def close_stopped_runs(con: duckdb.DuckDBPyConnection) -> int:
    """Record runs still marked ``running`` as ``interrupted`` (killed, or stopped by a second Ctrl-C), with what
    each stored and, as its end, the time of its last stored outcome (unknown when it stored none); the caller
    holds the catalog's lock, so none of them runs. Returns how many there were."""
    stopped = [
        r for (r,) in con.execute("SELECT run_id FROM runs WHERE status = ?", [RunStatus.RUNNING.value]).fetchall()
    ]
    for run_id in stopped:
        record_counts(con, run_id, stored_outcomes(con, run_id), status=RunStatus.INTERRUPTED)
        con.execute(
            "UPDATE runs SET status = ?, error = 'interrupted', finished_at = (SELECT max(event_at) FROM track_events "
            "WHERE run_id = ? AND event IN (?, ?, ?)) WHERE run_id = ?",
            [RunStatus.INTERRUPTED.value, run_id, *(str(s) for s in OUTCOMES), run_id],
        )
    return len(stopped)


def finish_run(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    counts: dict[str, int],
    *,
    status: RunStatus = RunStatus.COMPLETED,
    error: str | None = None,
) -> None:
    """Record a run's end: its counts, ``status`` and, for a failed run, ``error`` (one line)."""
    record_counts(con, run_id, counts, status=status)
    con.execute(
        "UPDATE runs SET finished_at = ?, status = ?, error = ? WHERE run_id = ?",
        [now(), RunStatus(status).value, error, run_id],
    )


def record_counts(
    con: duckdb.DuckDBPyConnection, run_id: str, counts: dict[str, int], *, status: RunStatus = RunStatus.RUNNING
) -> None:
    """Record a run's counts so far (those of :data:`RUN_COUNTS` in ``counts``): a run records its scan's as soon
    as it has them, so that one killed later still says what it found."""
    cols = {k: v for k, v in counts.items() if k in RUN_COUNTS}
    RunCounts.validate(pl.DataFrame([{"status": RunStatus(status).value} | cols]))
    if cols:
        sets = ", ".join(f"n_{k} = ?" for k in cols)  # column names from RUN_COUNTS only; values are bound
        con.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*cols.values(), run_id])


def stored_outcomes(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Files analysed, rejected and failed so far by run ``run_id`` (its outcome events): what an interrupted run
    stored before it stopped."""
    got = dict(
        con.execute(
            "SELECT event, count(*) FROM track_events WHERE run_id = ? AND event IN (?, ?, ?) GROUP BY ALL",
            [run_id, *(str(s) for s in OUTCOMES)],
        ).fetchall()
    )
    return {str(s): int(got.get(str(s), 0)) for s in OUTCOMES}


def catalog_counts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Tracks by status, features by analyzer version and by tempo range, rejects by reason, corrected tracks,
    crates, the last run."""
    by_status = dict(con.execute("SELECT status, count(*) FROM tracks GROUP BY ALL ORDER BY 1").fetchall())
    by_version = {
        str(k): v
        for k, v in con.execute("SELECT analyzer_version, count(*) FROM features GROUP BY ALL ORDER BY 1").fetchall()
    }
    # The tempo range each row was made with ("70-180"): a run with another range redoes the rows. A catalog from
    # before the range columns (schema version 3), read without migrating, has none to count.
    has_range = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'features' AND column_name = 'bpm_range_lo' "
        "AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()[0][0]
    ranges = (
        con.execute("SELECT bpm_range_lo, bpm_range_hi, count(*) FROM features GROUP BY ALL ORDER BY 1, 2").fetchall()
        if has_range
        else []
    )
    by_range = {"unknown" if lo is None else f"{lo:g}-{hi:g}": n for lo, hi, n in ranges}
    by_reason = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY ALL ORDER BY 2 DESC").fetchall())
    n_corrected, n_crates = curation_counts(con)
    last = next(
        iter(
            con.execute(
                "SELECT run_id, started_at, finished_at, status FROM runs ORDER BY started_at DESC LIMIT 1"
            ).fetchall()
        ),
        None,
    )
    return {
        "tracks": sum(by_status.values()),
        "by_status": by_status,
        "features_by_version": by_version,
        "features_by_bpm_range": by_range,
        "rejects_by_reason": by_reason,
        "corrected_tracks": n_corrected,
        "crates": n_crates,
        "last_run": None
        if last is None
        else {
            "run_id": last[0],
            "started_at": str(last[1]),
            "finished_at": None if last[2] is None else str(last[2]),  # None while it runs (or if it was killed)
            "status": last[3],
        },
    }


def run_failures_by_reason(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, int]:
    """Rejected and failed files of one run, counted by reason code."""
    return dict(
        con.execute(
            "SELECT reason, count(*) FROM rejects WHERE run_id = ? GROUP BY ALL ORDER BY 2 DESC", [run_id]
        ).fetchall()
    )


def run_rejects(con: duckdb.DuckDBPyConnection, run_id: str, limit: int = 1000) -> list[tuple[str, str, str | None]]:
    """``(reason, path, detail)`` of one run's rejected and failed files, grouped by reason."""
    return con.execute(
        "SELECT reason, path, detail FROM rejects WHERE run_id = ? ORDER BY reason, path LIMIT ?", [run_id, limit]
    ).fetchall()
