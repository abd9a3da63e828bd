"""Whether a run would have anything to do, decided without Prefect: the walk and a read of the catalog.

``cratedig analyze`` asks first and starts no Prefect server for a library that is empty or unchanged.
"""

from __future__ import annotations

from pathlib import Path

from tasks.catalog.scan import plan_scan, walk_library
from tasks.catalog.store import known_tracks, open_catalog
from tasks.similarity.index import index_is_current


def idle_run_counts(
    library: str | Path, catalog: str | Path, *, analyzer_version: int, bpm_range: tuple[float, float]
) -> dict[str, int] | None:
    """The summary counts of a run over ``library`` that would change nothing, or None if a run has work.

    Work is a file to analyse, a move, a newly missing file or an unreadable entry, or a similarity index behind
    the catalog (a run killed after it stored analyses). An empty library whose catalog knows none of its files
    has nothing to do either (``files`` is 0).
    """
    library = str(Path(library).resolve())
    walk = walk_library(library)
    if walk.problems:
        return None
    catalog = Path(catalog)
    if not catalog.exists():
        if walk.files.height:
            return None
        known = None
    else:
        con = open_catalog(catalog, read_only=True)
        try:
            known = known_tracks(con, library)
            if not index_is_current(con):
                return None
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
        "analyzed": 0,
        "rejected": 0,
        "failed": 0,
        "to_analyze": 0,
    }
