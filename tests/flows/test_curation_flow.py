"""Corrections and tag write-back through the real flow: a forced run and an ``analyzer_version`` bump
re-analyse every file and keep the correction; a run after a tag write analyses nothing."""

from __future__ import annotations

import pytest

from tasks.catalog.corrections import Correction, set_correction
from tasks.catalog.store import open_catalog
from tasks.constants import ANALYZER_VERSION, SR
from tasks.synth.files import write_audio
from tasks.synth.songs import SongSpec, render_song

pytestmark = pytest.mark.slow


def _effective(catalog, track_id):
    con = open_catalog(catalog, read_only=True)
    try:
        return con.execute(
            'SELECT bpm, "key", e.analyzer_version, corrected FROM effective_tracks e WHERE track_id = ?', [track_id]
        ).fetchall()[0]
    finally:
        con.close()


def test_corrections_and_tag_writes_through_the_flow(prefect_harness, tmp_path, monkeypatch):
    import flows.analyze
    import tasks.features.analyze
    from flows.analyze import analyze_library
    from tasks.catalog.tag_sync import apply, tag_jobs

    library, catalog = tmp_path / "music", tmp_path / "catalog.duckdb"
    library.mkdir()
    for i, (fmt, bpm) in enumerate((("flac", 124.0), ("mp3", 100.0))):
        spec = SongSpec(bpm=bpm, tonic=9, mode="minor", duration_s=8.0, seed=40 + i)
        write_audio(library / f"s{i}.{fmt}", render_song(spec, sr=SR), SR, title=f"S{i}")

    def run(**kw):
        return analyze_library(str(library), catalog_path=str(catalog), workers=0, **kw)

    assert run()["analyzed"] == 2
    con = open_catalog(catalog)
    track_id = con.execute("SELECT track_id FROM tracks WHERE path LIKE '%s0.flac'").fetchall()[0][0]
    set_correction(con, track_id, Correction(bpm=62.0, key="C major"), by="dj")
    con.close()
    assert run(force=True)["analyzed"] == 2
    assert _effective(catalog, track_id) == (62.0, "C major", ANALYZER_VERSION, True)
    monkeypatch.setattr(flows.analyze, "ANALYZER_VERSION", ANALYZER_VERSION + 1)
    monkeypatch.setattr(tasks.features.analyze, "ANALYZER_VERSION", ANALYZER_VERSION + 1)
    summary = run()
    assert summary["outdated"] == 2 and summary["analyzed"] == 2
    assert _effective(catalog, track_id) == (62.0, "C major", ANALYZER_VERSION + 1, True)
    con = open_catalog(catalog)
    jobs, _ = tag_jobs(con, [str(library)], fields=["bpm", "key", "replaygain"])
    assert all(apply(con, job) for job in jobs)
    con.close()
    summary = run()
    assert summary["changed"] == 0 and summary["to_analyze"] == 0 and summary["analyzed"] == 0
