"""The middle tier: each Prefect task called as a plain function (``task.fn``) on a catalog file, no flow and no
Prefect server. The tasks take paths and options and return counts or small rows."""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest

from flows.prefect_tasks import analyze_batch, export_parquet, refresh_similarity, scan_library, store_batch
from tasks.catalog.store import open_catalog
from tasks.constants import ANALYZER_VERSION
from tasks.features.workers import AnalysisOptions


@pytest.fixture()
def catalog(tmp_path) -> str:
    path = tmp_path / "catalog.duckdb"
    open_catalog(path).close()  # a new, migrated catalog
    return str(path)


def test_tasks_scan_analyse_store_index_and_export(format_library, catalog, tmp_path):
    library, truth = format_library
    run_id = str(uuid.uuid4())

    plan, counts = scan_library.fn(str(library), catalog, run_id, analyzer_version=ANALYZER_VERSION)
    assert counts["files"] == len(truth) + 2 and counts["new"] == counts["files"]  # the songs + 2 broken files
    assert counts["ignored"] == 1  # cover.jpg
    items = plan.to_analyze.to_dicts()

    results = analyze_batch.fn(items, AnalysisOptions(), pool_id="no pool here", index=0, size=len(items))
    assert [r["path"] for r in results] == [i["path"] for i in items]
    stored = store_batch.fn(catalog, results, run_id, index=0)
    assert stored == {"analyzed": len(truth), "rejected": 2, "failed": 0}

    index = refresh_similarity.fn(catalog)
    assert index["tracks"] == len(truth)
    written = [Path(p).name for p in export_parquet.fn(catalog, str(tmp_path / "parquet"))]
    assert {"tracks.parquet", "features.parquet"} <= set(written)
    tracks = pl.read_parquet(tmp_path / "parquet" / "tracks.parquet")
    assert tracks.height == len(truth) + 2

    # A second scan of the unchanged library finds nothing to do.
    plan, counts = scan_library.fn(str(library), catalog, str(uuid.uuid4()), analyzer_version=ANALYZER_VERSION)
    assert plan.to_analyze.height == 0 and counts["unchanged"] == len(truth) + 2  # rejects wait for a change
