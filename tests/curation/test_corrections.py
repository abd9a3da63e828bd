"""Manual corrections: checked, logged, laid over the analysis by ``effective_tracks``, never touched by a
re-analysis (forced or after an ``analyzer_version`` bump), counted by ``status``."""

from __future__ import annotations

import os

import pytest

from tasks.catalog import migrations
from tasks.catalog.corrections import Correction, CorrectionError, clear_corrections, set_correction
from tasks.catalog.runs import catalog_counts
from tasks.catalog.scan import plan_scan
from tasks.catalog.store import known_tracks, open_catalog, store_results
from tasks.catalog.walk import walk_library


def _effective(con, track_id):
    return con.execute(
        'SELECT bpm, "key", key_camelot, key_open, beat_offset_s, beats_per_bar, analyzed_bpm, corrected '
        "FROM effective_tracks WHERE track_id = ?",
        [track_id],
    ).fetchall()[0]


def test_set_is_checked_logged_and_effective(catalog_copy):
    con = open_catalog(catalog_copy)
    analysed_bpm = con.execute("SELECT bpm FROM features WHERE track_id = 1").fetchall()[0][0]
    changed = set_correction(con, 1, Correction(bpm=62.0, key="8A"), by="dj")
    assert changed["bpm"] == (analysed_bpm, 62.0)
    set_correction(con, 1, Correction(beat_offset_s=0.25, beats_per_bar=3), by="dj")  # adds, keeps the bpm
    bpm, key, cam, ok, offset, bar, analyzed, corrected = _effective(con, 1)
    assert (bpm, key, cam, ok, offset, bar, corrected) == (62.0, "A minor", "8A", "1m", 0.25, 3, True)
    assert analyzed == analysed_bpm
    assert con.execute("SELECT bpm FROM features WHERE track_id = 1").fetchall()[0][0] == analysed_bpm
    log = con.execute("SELECT field, old_value, new_value, set_by FROM correction_log ORDER BY rowid").fetchall()
    assert log[0] == ("bpm", str(analysed_bpm), "62.0", "dj")
    assert [r[0] for r in log] == ["bpm", "key", "beat_offset_s", "beats_per_bar"]
    set_correction(con, 1, Correction(key="Am", beats_per_bar=4), by="dj")  # the key is A minor already
    log = con.execute("SELECT field, old_value, new_value FROM correction_log ORDER BY rowid").fetchall()
    assert log[4:] == [("beats_per_bar", "3", "4")]  # nothing logged for what did not change
    set_correction(con, 1, Correction(key="Am", bpm=62.0), by="dj")  # nothing at all changes: fine, no row
    assert con.execute("SELECT count(*) FROM correction_log").fetchall() == [(5,)]
    assert clear_corrections(con, 2, by="dj") == []  # a track with nothing to clear
    assert catalog_counts(con)["corrected_tracks"] == 1
    assert clear_corrections(con, 1, by="dj") == ["bpm", "key", "beat_offset_s", "beats_per_bar"]
    assert _effective(con, 1)[0] == analysed_bpm and _effective(con, 1)[-1] is False
    assert catalog_counts(con)["corrected_tracks"] == 0
    con.close()


@pytest.mark.parametrize(
    "bad, message",
    [
        (Correction(), "nothing to set"),
        (Correction(bpm=500.0), "bpm"),
        (Correction(bpm=float("nan")), "bpm"),
        (Correction(key="H minor"), "not a key"),
        (Correction(beat_offset_s=-1.0), "beat_offset_s"),
        (Correction(beat_offset_s=1e9), "the track lasts"),  # past the end: a grid and a cue nowhere
        (Correction(beats_per_bar=0), "beats_per_bar"),
    ],
)
def test_bad_values_are_refused_and_nothing_stored(catalog_copy, bad, message):
    con = open_catalog(catalog_copy)
    with pytest.raises(CorrectionError, match=message):
        set_correction(con, 1, bad, by="dj")
    assert con.execute("SELECT count(*) FROM corrections").fetchall() == [(0,)]
    with pytest.raises(CorrectionError, match="no analysis"):
        set_correction(con, 999, Correction(bpm=120.0), by="dj")
    con.close()


def _reanalyse(con, library, *, analyzer_version, force):
    """What a run does, without Prefect: walk, plan, analyse what the plan says, store."""
    from tasks.features.analyze import analyze_file

    plan = plan_scan(walk_library(library).files, known_tracks(con), analyzer_version=analyzer_version, force=force)
    jobs = plan.to_analyze.to_dicts()
    results = [analyze_file(j["path"], j["size_bytes"], j["mtime_ns"], track_id=j["track_id"]) for j in jobs]
    store_results(con, results, f"rerun-{analyzer_version}")
    return len(jobs)


def test_corrections_survive_forced_reanalysis_and_version_bump(dj_catalog, catalog_copy, monkeypatch):
    import tasks.features.analyze as analyze

    _, library = dj_catalog
    con = open_catalog(catalog_copy)
    set_correction(con, 2, Correction(bpm=63.0, key="Ebm", beat_offset_s=1.5), by="dj")
    before = con.execute("SELECT analyzed_at FROM features WHERE track_id = 2").fetchall()[0][0]
    assert _reanalyse(con, library, analyzer_version=store_version(), force=True) == 5
    bumped = store_version() + 1
    monkeypatch.setattr(analyze, "ANALYZER_VERSION", bumped)
    assert _reanalyse(con, library, analyzer_version=bumped, force=False) == 5  # every row outdated
    version, analysed_at = con.execute(
        "SELECT analyzer_version, analyzed_at FROM features WHERE track_id = 2"
    ).fetchall()[0]
    assert version == bumped and analysed_at > before  # really re-analysed
    bpm, key, _, _, offset, _, analysed_bpm, corrected = _effective(con, 2)
    assert (bpm, key, offset, corrected) == (63.0, "D# minor", 1.5, True)
    assert analysed_bpm != 63.0
    con.close()


def test_an_embedding_version_bump_re_analyses_every_analysed_track(dj_catalog, catalog_copy, monkeypatch):
    # The similarity index holds only the newest embedding version: a bump that re-analysed nothing left a
    # catalog whose index held only the tracks analysed after it, and `similar` found none of the others.
    import tasks.features.analyze as analyze
    from tasks.constants import EMBEDDING_VERSION
    from tasks.similarity.index import refresh_similarity_index

    _, library = dj_catalog
    con = open_catalog(catalog_copy)
    analysed = {p for (p,) in con.execute("SELECT path FROM tracks WHERE status = 'analyzed'").fetchall()}
    files = walk_library(library).files
    current = plan_scan(files, known_tracks(con), analyzer_version=store_version())
    assert current.outdated.height == 0
    monkeypatch.setattr(analyze, "EMBEDDING_VERSION", EMBEDDING_VERSION + 1)
    bumped = plan_scan(
        files, known_tracks(con), analyzer_version=store_version(), embedding_version=EMBEDDING_VERSION + 1
    )
    assert set(bumped.outdated["path"]) == analysed  # rejected files stay as they are
    # An older install sharing the catalog leaves rows of a newer embedding alone, as for analyzer_version.
    older = plan_scan(
        files, known_tracks(con), analyzer_version=store_version(), embedding_version=EMBEDDING_VERSION - 1
    )
    assert older.outdated.height == 0
    jobs = bumped.to_analyze.to_dicts()
    store_results(
        con,
        [analyze.analyze_file(j["path"], j["size_bytes"], j["mtime_ns"], track_id=j["track_id"]) for j in jobs],
        "bump",
    )
    assert refresh_similarity_index(con)["tracks"] == len(analysed)
    con.close()


def store_version() -> int:
    from tasks.constants import ANALYZER_VERSION

    return ANALYZER_VERSION


def test_older_catalog_gets_curation_objects(tmp_path):
    import duckdb

    path = tmp_path / "v4.duckdb"
    con = open_catalog(path)
    con.execute("DROP VIEW effective_tracks")
    for table in ("corrections", "correction_log", "crate_tracks", "crates"):
        con.execute(f"DROP TABLE {table}")
    con.execute("DELETE FROM schema_version")  # as cratedig's schema version 4 left it
    con.execute("INSERT INTO schema_version (version) VALUES (4)")
    con.close()
    ro = duckdb.connect(str(path), read_only=True)
    assert catalog_counts(ro)["corrected_tracks"] == 0  # status on a catalog not migrated yet
    ro.close()
    con = open_catalog(path)
    assert con.execute("SELECT count(*) FROM effective_tracks").fetchall() == [(0,)]
    assert migrations.SCHEMA_VERSION >= 5
    con.close()
    assert os.path.exists(path)


def test_a_correction_set_before_schema_9_gets_the_duration_of_its_audio(catalog_copy):
    """Without it, a broken file in between (no duration) would let the correction follow the next recording."""
    con = open_catalog(catalog_copy)
    set_correction(con, 1, Correction(bpm=62.0), by="dj")
    con.execute("ALTER TABLE corrections DROP COLUMN audio_duration_s")  # as schema 8 left it
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (8)")
    con.close()
    con = open_catalog(catalog_copy)
    made_for, duration = con.execute(
        "SELECT c.audio_duration_s, t.duration_s FROM corrections c JOIN tracks t USING (track_id)"
    ).fetchall()[0]
    assert made_for == duration and duration > 0
    con.close()


def test_similarity_filters_on_corrected_values(catalog_copy):
    from tasks.similarity.index import refresh_similarity_index
    from tasks.similarity.search import similar_tracks

    con = open_catalog(catalog_copy)
    near = similar_tracks(con, 1, k=4, bpm_window=4)  # 124 BPM: 126 and 128 pass, 92 and 100 do not
    assert set(near["track_id"]) == {2, 3}
    set_correction(con, 2, Correction(bpm=100.0, key="Gm"), by="dj")
    assert refresh_similarity_index(con)["skipped"] is False  # a correction changes the index
    near = similar_tracks(con, 1, k=4, bpm_window=4)
    assert set(near["track_id"]) == {3}
    row = similar_tracks(con, 5, k=4, bpm_window=4).row(0, named=True)  # 100 BPM: finds the corrected track
    assert (row["track_id"], row["bpm"], row["key"], row["key_camelot"]) == (2, 100.0, "G minor", "6A")
    assert con.execute("SELECT * FROM similar_tracks('5', 1, bpm_window := 4)").fetchall()[0][0] == 2  # SQL too
    con.close()


def test_parquet_export_has_the_effective_values(catalog_copy, tmp_path):
    import polars as pl

    from tasks.catalog.parquet import export_is_current, export_parquet

    con = open_catalog(catalog_copy)
    export_parquet(con, tmp_path / "parquet")
    set_correction(con, 3, Correction(bpm=64.0), by="dj")
    assert not export_is_current(con, tmp_path / "parquet")  # the next `analyze`, idle or not, exports again
    written = export_parquet(con, tmp_path / "parquet")
    assert export_is_current(con, tmp_path / "parquet")
    con.close()
    assert [p.name for p in written] == ["tracks.parquet", "features.parquet", "effective_tracks.parquet"]
    effective = pl.read_parquet(tmp_path / "parquet" / "effective_tracks.parquet")
    row = effective.filter(pl.col("track_id") == 3).row(0, named=True)
    assert row["bpm"] == 64.0 and row["corrected"] and row["analyzed_bpm"] != 64.0


def test_a_correction_updates_the_index_in_place_as_a_rebuild_would(dj_catalog, catalog_copy, tmp_path):
    import shutil

    from tasks.similarity.index import (
        apply_corrections,
        index_is_current,
        index_signature,
        load_index,
        refresh_similarity_index,
    )

    other = tmp_path / "other.duckdb"
    shutil.copy(dj_catalog[0], other)
    cols = 'SELECT track_id, bpm, camelot, "key", key_camelot, vec FROM similarity_index ORDER BY track_id'
    results = []
    for path, in_place in ((catalog_copy, True), (other, False)):
        con = open_catalog(path)
        before = index_signature(con)
        load_index(con)  # cached by generation: the update must not leave a stale copy in use
        set_correction(con, 4, Correction(bpm=128.5, key="Fm"), by="dj")
        if in_place:
            assert apply_corrections(con, [4], signature_before=before) is True
            assert load_index(con).bpm[list(load_index(con).ids).index(4)] == 128.5
            assert refresh_similarity_index(con)["skipped"] is True  # nothing left to rebuild
            assert index_is_current(con)  # so an idle `analyze` starts no run for it
        else:
            refresh_similarity_index(con, force=True)
        results.append(con.execute(cols).fetchall())
        con.close()
    assert results[0] == results[1]
    con = open_catalog(catalog_copy)  # an index already out of date before the correction is rebuilt whole
    con.execute("UPDATE tracks SET path = path || '.moved' WHERE track_id = 1")  # a move the index missed
    assert not index_is_current(con)
    before = index_signature(con)
    set_correction(con, 4, Correction(bpm=129.0), by="dj")
    assert apply_corrections(con, [4], signature_before=before) is False
    assert refresh_similarity_index(con)["skipped"] is True
    con.close()


def test_a_correction_does_not_follow_a_name_onto_other_audio(tmp_path):
    """Tags edited: the audio is the same, the correction stays. Another recording under the name (two files
    swapped): the correction was for the audio that left, so it is cleared, and the log keeps it."""
    from tasks.catalog.corrections import NEW_AUDIO_BY
    from tasks.constants import ANALYZER_VERSION, SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import SongSpec, render_song

    library = tmp_path / "lib"
    library.mkdir()
    songs = {
        "a.flac": render_song(SongSpec(bpm=124.0, tonic=9, mode="minor", duration_s=8.0, seed=1), sr=SR),
        "b.flac": render_song(SongSpec(bpm=100.0, tonic=2, mode="major", duration_s=12.0, seed=2), sr=SR),
    }
    for name, y in songs.items():
        write_audio(library / name, y, SR, title=name)
    con = open_catalog(tmp_path / "c.duckdb")
    paths = sorted(library.iterdir())
    store_results(con, [analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths], "r1")
    (a_id,) = con.execute("SELECT track_id FROM tracks WHERE path LIKE '%a.flac'").fetchall()[0]
    set_correction(con, a_id, Correction(bpm=62.0, key="Am"), by="dj")

    write_audio(library / "a.flac", songs["a.flac"], SR, title="a, retitled")  # the same audio, other tags
    os.utime(library / "a.flac", ns=(1, 2))
    assert _reanalyse(con, library, analyzer_version=ANALYZER_VERSION, force=False) == 1
    assert _effective(con, a_id)[0] == 62.0  # kept

    (library / "a.flac").rename(library / "t.flac")  # swapped
    (library / "b.flac").rename(library / "a.flac")
    (library / "t.flac").rename(library / "b.flac")
    _reanalyse(con, library, analyzer_version=ANALYZER_VERSION, force=False)
    bpm, _, _, _, _, _, analysed_bpm, corrected = _effective(con, a_id)
    assert not corrected and bpm == analysed_bpm
    log = con.execute("SELECT field, old_value, new_value, set_by FROM correction_log WHERE set_by <> 'dj'").fetchall()
    assert sorted(log) == [("bpm", "62.0", None, NEW_AUDIO_BY), ("key", "A minor", None, NEW_AUDIO_BY)]
    # A broken file in between (a half-copied replacement, rejected, no duration) does not hide the change.
    set_correction(con, a_id, Correction(bpm=99.0), by="dj")  # for the 12 s song now under a.flac
    (library / "a.flac").write_bytes(b"\x00" * 4096)
    _reanalyse(con, library, analyzer_version=ANALYZER_VERSION, force=False)
    assert con.execute("SELECT status FROM tracks WHERE track_id = ?", [a_id]).fetchall() == [("rejected",)]
    write_audio(library / "a.flac", songs["a.flac"], SR, title="the 8 s song again")
    _reanalyse(con, library, analyzer_version=ANALYZER_VERSION, force=False)
    assert con.execute("SELECT count(*) FROM corrections WHERE track_id = ?", [a_id]).fetchall() == [(0,)]
    con.close()


def test_a_correction_does_not_follow_a_name_swapped_with_a_recording_of_the_same_length(tmp_path):
    """Two 8 s songs swap names: the durations cannot tell, the bytes can (each file now holds what the other track
    held). As the flow runs it: the plan is applied (moves, missing, such swaps), then the files are analysed."""
    from tasks.catalog.corrections import NEW_AUDIO_BY
    from tasks.catalog.store import apply_plan
    from tasks.constants import ANALYZER_VERSION, SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio
    from tasks.synth.songs import SongSpec, render_song

    library = tmp_path / "lib"
    library.mkdir()
    specs = {
        "a.flac": SongSpec(bpm=124.0, tonic=9, duration_s=8.0, seed=1),
        "b.flac": SongSpec(bpm=100.0, tonic=2, duration_s=8.0, seed=2),
    }
    for name, spec in specs.items():
        write_audio(library / name, render_song(spec, sr=SR), SR)
    con = open_catalog(tmp_path / "c.duckdb")
    paths = sorted(library.iterdir())
    store_results(con, [analyze_file(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths], "r1")
    ids = dict(con.execute("SELECT path, track_id FROM tracks").fetchall())
    a_id, b_id = ids[str(library / "a.flac")], ids[str(library / "b.flac")]
    set_correction(con, a_id, Correction(bpm=62.0), by="dj")
    set_correction(con, b_id, Correction(key="Am"), by="dj")
    (library / "a.flac").rename(library / "t.flac")
    (library / "b.flac").rename(library / "a.flac")
    (library / "t.flac").rename(library / "b.flac")
    plan = plan_scan(walk_library(library).files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
    assert sorted(plan.other_audio) == sorted([(a_id, b_id), (b_id, a_id)]) and plan.changed.height == 2
    apply_plan(con, plan, "r2")
    jobs = plan.to_analyze.to_dicts()
    store_results(
        con, [analyze_file(j["path"], j["size_bytes"], j["mtime_ns"], track_id=j["track_id"]) for j in jobs], "r2"
    )
    assert con.execute("SELECT count(*) FROM corrections").fetchall() == [(0,)]
    cleared = con.execute("SELECT track_id, field FROM correction_log WHERE set_by = ?", [NEW_AUDIO_BY]).fetchall()
    assert sorted(cleared) == sorted([(a_id, "bpm"), (b_id, "key")])
    con.close()


def test_identical_copies_retagged_alike_in_two_runs_keep_their_corrections(tmp_path):
    """Two copies of one recording, each corrected; one is retagged, then the other the same way: the second now
    holds the bytes the first holds, but the same audio (their analyses agree), so its corrections stay."""
    from tasks.catalog.store import apply_plan
    from tasks.constants import ANALYZER_VERSION, SR
    from tasks.features.analyze import analyze_file
    from tasks.synth.files import write_audio, write_tags
    from tasks.synth.songs import SongSpec, render_song

    library = tmp_path / "lib"
    library.mkdir()
    y = render_song(SongSpec(bpm=118.0, tonic=4, duration_s=8.0, seed=3), sr=SR)
    for name in ("a.flac", "copy.flac"):
        write_audio(library / name, y, SR)
    con = open_catalog(tmp_path / "c.duckdb")

    def run(tag: str) -> None:
        plan = plan_scan(walk_library(library).files, known_tracks(con), analyzer_version=ANALYZER_VERSION)
        apply_plan(con, plan, tag)
        jobs = plan.to_analyze.to_dicts()
        rows = [analyze_file(j["path"], j["size_bytes"], j["mtime_ns"], track_id=j["track_id"]) for j in jobs]
        store_results(con, rows, tag)

    run("r1")
    for track_id, bpm in con.execute("SELECT track_id, 59.0 + track_id FROM tracks").fetchall():
        set_correction(con, track_id, Correction(bpm=bpm), by="dj")
    write_tags(library / "copy.flac", title="Retagged")
    run("r2")
    write_tags(library / "a.flac", title="Retagged")  # now byte for byte what copy.flac holds
    run("r3")
    assert con.execute("SELECT count(*) FROM corrections").fetchall() == [(2,)]
    con.close()


def test_a_track_rejected_in_between_loses_corrections_when_it_holds_another_tracks_bytes(catalog_copy):
    """A corrected file broken (rejected: its features row goes), then replaced by a copy of another track's file:
    with no analysis of its own to compare, the audio is taken for other audio."""
    from datetime import datetime

    from tasks.catalog.corrections import clear_for_other_bytes

    con = open_catalog(catalog_copy)
    set_correction(con, 1, Correction(bpm=150.0), by="dj")
    con.execute("DELETE FROM features WHERE track_id = 1")
    assert clear_for_other_bytes(con, [(1, 2)], datetime(2026, 1, 1)) == [1]
    assert con.execute("SELECT count(*) FROM corrections").fetchall() == [(0,)]
    con.close()
