"""The whole analyze flow under the Prefect test harness: catalog row by row, incremental runs, Parquet."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tasks.catalog.store import open_catalog

pytestmark = pytest.mark.slow

#: Tolerances of the analysis-quality issue for clean synthesized songs.
BPM_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def run_flow(prefect_harness):
    from flows.analyze import analyze_library

    def run(library: Path, catalog: Path, **kw):
        return analyze_library(str(library), catalog_path=str(catalog), **kw)

    return run


@pytest.fixture(scope="module")
def analysed(run_flow, format_library, tmp_path_factory):
    src, truth = format_library
    library = tmp_path_factory.mktemp("flowlib") / "music"
    shutil.copytree(src, library)
    truth = {str(library / Path(p).relative_to(src)): spec for p, spec in truth.items()}
    catalog = library.parent / "catalog.duckdb"
    summary = run_flow(library, catalog, workers=2, batch_size=2)
    return library, catalog, truth, summary


def rows(catalog: Path, sql: str) -> list[dict]:
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.sql(sql).pl().to_dicts()
    finally:
        con.close()


def test_first_run_accounts_for_every_file(analysed):
    library, catalog, truth, summary = analysed
    assert summary["files"] == len(truth) + 2  # the jpg is ignored, not a file of the library
    assert summary["ignored"] == 1
    assert summary["new"] == len(truth) + 2
    assert summary["analyzed"] == len(truth)
    assert summary["rejected"] == 2
    assert summary["failed"] == 0
    rejects = {Path(r["path"]).name: r["reason"] for r in rows(catalog, "SELECT * FROM rejects")}
    assert rejects == {"not_audio.mp3": "NOT_AUDIO", "empty.flac": "EMPTY"}
    runs = rows(catalog, "SELECT * FROM runs")
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["n_analyzed"] == len(truth)


def test_catalog_matches_the_songs_row_by_row(analysed):
    library, catalog, truth, _ = analysed
    got = {
        r["path"]: r
        for r in rows(
            catalog,
            """
        SELECT t.*, f.bpm, f."key", f.key_camelot, f.loudness_lufs, f.embedding, f.analyzer_version
        FROM tracks t JOIN features f USING (track_id)""",
        )
    }
    assert set(got) == set(truth)
    for path, spec in truth.items():
        row = got[path]
        assert row["status"] == "analyzed"
        assert row["format"] == {".m4a": "m4a/aac", ".ogg": "ogg"}.get(Path(path).suffix, Path(path).suffix[1:])
        assert row["codec"] in {"flac", "vorbis", "opus", "mp3", "aac", "pcm_16"}, row["codec"]
        assert abs(row["duration_s"] - spec.duration_s) < 0.2, path
        assert row["title"] and row["artist"] == "cratedig tests"
        assert abs(row["bpm"] - spec.bpm) <= BPM_TOLERANCE, (path, row["bpm"], spec.bpm)
        assert row["key"] == spec.key, (path, row["key"], spec.key)
        assert -40 < row["loudness_lufs"] < 0
        assert len(row["embedding"]) > 10
        assert os.path.isabs(row["path"])


def test_parquet_export(analysed):
    library, catalog, truth, _ = analysed
    tracks = pl.read_parquet(catalog.parent / "parquet" / "tracks.parquet")
    features = pl.read_parquet(catalog.parent / "parquet" / "features.parquet")
    assert tracks.height == len(truth) + 2
    assert features.height == len(truth)
    assert set(features["track_id"]) <= set(tracks["track_id"])


def test_incremental_runs(analysed, run_flow):
    library, catalog, truth, _ = analysed
    again = run_flow(library, catalog, workers=0)
    assert again["analyzed"] == again["rejected"] == again["failed"] == 0
    assert again["unchanged"] == len(truth) + 2

    paths = sorted(truth)
    touched, moved, deleted = Path(paths[0]), Path(paths[1]), Path(paths[2])
    before = {
        r["path"]: r
        for r in rows(
            catalog, "SELECT t.path, t.track_id, f.analyzed_at FROM tracks t JOIN features f USING (track_id)"
        )
    }
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    renamed = moved.with_name("renamed " + moved.name)
    moved.rename(renamed)
    deleted.unlink()

    third = run_flow(library, catalog, workers=0)
    assert (third["changed"], third["moved"], third["missing"], third["analyzed"]) == (1, 1, 1, 1)
    after = {
        r["path"]: r
        for r in rows(
            catalog,
            "SELECT t.path, t.track_id, t.status, f.analyzed_at FROM tracks t LEFT JOIN features f USING (track_id)",
        )
    }
    assert after[str(renamed)]["track_id"] == before[str(moved)]["track_id"]
    assert after[str(renamed)]["analyzed_at"] == before[str(moved)]["analyzed_at"]  # features kept, not redone
    assert after[str(deleted)]["status"] == "missing"
    assert after[str(deleted)]["analyzed_at"] == before[str(deleted)]["analyzed_at"]  # row and features kept
    assert after[str(touched)]["analyzed_at"] > before[str(touched)]["analyzed_at"]
    events = rows(catalog, "SELECT event, count(*) AS n FROM track_events GROUP BY ALL")
    counts = {e["event"]: e["n"] for e in events}
    assert counts["moved"] == 1 and counts["missing"] == 1 and counts["analyzed"] == len(truth) + 1


def test_analyzer_version_bump_reanalyses_only_older_rows(analysed, run_flow):
    # A bump is simulated by aging rows: the next run must redo exactly the row older than the last version that
    # changed default-range results of tracks with a tempo, not the row of a version whose successors reached
    # only other ranges or only ARHYTHMIC tracks, and that version's ARHYTHMIC row when a successor reached those.
    from tasks.catalog.scan import required_version
    from tasks.constants import ANALYZER_VERSION

    library, catalog, truth, _ = analysed
    analysed_ids = "SELECT track_id FROM features JOIN tracks USING (track_id) WHERE status = 'analyzed' ORDER BY 1"
    con = open_catalog(catalog)
    first, second, third = [r[0] for r in con.execute(analysed_ids).fetchall()[:3]]
    with_tempo = required_version(ANALYZER_VERSION, at_default=True, arhythmic=False)
    redo_arhythmic = required_version(ANALYZER_VERSION, at_default=True, arhythmic=True) > with_tempo
    con.execute("UPDATE features SET analyzer_version = ? WHERE track_id = ?", [with_tempo - 1, first])
    con.execute("UPDATE features SET analyzer_version = ? WHERE track_id = ?", [with_tempo, second])
    con.execute(
        "UPDATE features SET analyzer_version = ?, bpm = NULL, tempo_reason = 'ARHYTHMIC' WHERE track_id = ?",
        [with_tempo, third],
    )
    con.close()
    summary = run_flow(library, catalog, workers=0)
    assert summary["outdated"] == 1 + redo_arhythmic and summary["analyzed"] == 1 + redo_arhythmic
    versions = {r["track_id"]: r["analyzer_version"] for r in rows(catalog, "SELECT * FROM features")}
    assert versions[first] == ANALYZER_VERSION and versions[second] == with_tempo
    assert versions[third] == (ANALYZER_VERSION if redo_arhythmic else with_tempo)
    if redo_arhythmic:  # analysed again, the song gets its tempo back
        assert rows(catalog, f"SELECT tempo_reason FROM features WHERE track_id = {third}") == [{"tempo_reason": None}]


def test_another_bpm_range_reanalyses_every_row_and_is_recorded(analysed, run_flow):
    library, catalog, _, _ = analysed
    present = "FROM features JOIN tracks USING (track_id) WHERE status = 'analyzed'"  # not the missing file's
    n = rows(catalog, f"SELECT count(*) AS n {present}")[0]["n"]
    summary = run_flow(library, catalog, workers=0, bpm_range=(55.0, 150.0))
    assert summary["outdated"] == n and summary["analyzed"] == n
    assert rows(catalog, f"SELECT DISTINCT bpm_range_lo, bpm_range_hi {present}") == [
        {"bpm_range_lo": 55.0, "bpm_range_hi": 150.0}
    ]
    again = run_flow(library, catalog, workers=0, bpm_range=(55.0, 150.0))
    assert again["outdated"] == 0 and again["analyzed"] == 0
