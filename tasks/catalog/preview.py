"""Whether a run would have anything to do, decided without Prefect: the walk and a read of the catalog.

``cratedig analyze`` asks first and starts no Prefect server for a library that is empty or unchanged.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from tasks.audio.identity import path_to_text
from tasks.catalog.scan import plan_scan
from tasks.catalog.store import known_tracks, open_catalog, stale_rejects
from tasks.catalog.walk import walk_library
from tasks.similarity.index import index_is_current
from tasks.vocabulary import Reason


def idle_run_counts(
    library: str | Path, catalog: str | Path, *, analyzer_version: int, bpm_range: tuple[float, float]
) -> dict[str, int] | None:
    """The summary counts of a run over ``library`` that would change nothing, or None if a run has work.

    Work is a file to analyse, a move, a newly missing file, an unreadable entry not already recorded as such
    (a dangling link left as it is is not), a reject that no longer holds, or a similarity index behind the
    catalog (a run killed after it stored analyses). An empty library whose catalog knows none of its files
    has nothing to do either (``files`` is 0).
    """
    library = str(Path(library).resolve())
    walk = walk_library(library)
    catalog = Path(catalog)
    if not catalog.exists():
        if walk.files.height or walk.problems:
            return None
        known = None
    else:
        con = open_catalog(catalog, read_only=True)
        try:
            known = known_tracks(con, library)
            if not index_is_current(con) or not _already_recorded(con, walk.problems):
                return None
            problems = [p for p, _, _ in walk.problems]
            unknown = walk.unknown_dirs
            if stale_rejects(con, path_to_text(library), walk.files["path"], problems, unreadable_dirs=unknown):
                return None  # a run clears them
        finally:
            con.close()
    if known is None or known.height == 0:
        if walk.files.height:
            return None
        plan_counts = dict.fromkeys(("new", "changed", "outdated", "unchanged", "moved", "missing"), 0)
    else:
        plan = plan_scan(
            walk.files, known, analyzer_version=analyzer_version, bpm_range=bpm_range, unreadable_dirs=walk.unknown_dirs
        )
        if plan.to_analyze.height or plan.moved.height or plan.missing.height:
            return None
        plan_counts = plan.counts()
    return {
        "files": walk.files.height,
        **plan_counts,
        "ignored": walk.n_ignored,
        "unreadable": len(walk.problems),
        "analyzed": 0,
        "rejected": 0,
        "failed": 0,
        "to_analyze": 0,
    }


def _already_recorded(con: duckdb.DuckDBPyConnection, problems: list[tuple[str, Reason, str]]) -> bool:
    """Whether every walk problem is in ``rejects`` already, with the same reason and detail."""
    if not problems:
        return True
    frame = pl.DataFrame([(p, str(r), d) for p, r, d in problems], schema=["path", "reason", "detail"], orient="row")
    con.register("_problems", frame)
    try:
        (new,) = con.execute(
            "SELECT count(*) FROM _problems p ANTI JOIN rejects r ON p.path = r.path AND p.reason = r.reason "
            "AND p.detail IS NOT DISTINCT FROM r.detail"
        ).fetchall()[0]
    finally:
        con.unregister("_problems")
    return new == 0
