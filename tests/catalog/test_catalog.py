"""Catalog opening: migrations of older catalogs, the SQL macro in every catalog, the lock."""

from __future__ import annotations

import subprocess
import sys
from importlib import resources

import duckdb
import pytest

from tasks.catalog.migrations import SCHEMA_VERSION
from tasks.catalog.runs import catalog_counts
from tasks.catalog.store import open_catalog
from tasks.constants import BPM_RANGE
from tasks.errors import CatalogLockedError


def test_version_1_catalog_is_migrated_on_open(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # a catalog as version 1 of cratedig wrote it
    con.execute(resources.files("schemas").joinpath("catalog.sql").read_text())
    con.execute("INSERT INTO schema_version (version) VALUES (1)")
    con.execute(
        "INSERT INTO tracks (track_id, path, size_bytes, mtime_ns, fingerprint, status, first_seen, "
        "last_seen) VALUES (1, '/x.flac', 1, 1, 'f', 'rejected', now(), now())"
    )
    con.close()
    con = open_catalog(path)
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("SELECT count(*) FROM tracks").fetchall() == [(1,)]  # data kept
    assert con.execute("SELECT * FROM similar_tracks('1', 5)").fetchall() == []  # the macro now exists
    con.close()
    con = open_catalog(path)  # idempotent: opening again changes nothing
    assert con.execute("SELECT count(*) FROM schema_version WHERE version = ?", [SCHEMA_VERSION]).fetchall() == [(1,)]
    con.close()


def test_newer_catalog_is_refused(tmp_path):
    con = open_catalog(tmp_path / "c.duckdb")
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION + 1])
    con.close()
    with pytest.raises(duckdb.Error, match="newer"):
        open_catalog(tmp_path / "c.duckdb")


def test_lock_timeout_names_the_problem(tmp_path):
    path = tmp_path / "c.duckdb"
    open_catalog(path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(30)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(CatalogLockedError, match="in use by another cratedig run"):
            open_catalog(path, lock_timeout_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    con = open_catalog(path, lock_timeout_s=5)
    assert catalog_counts(con)["tracks"] == 0
    con.close()


def _older_catalog(path, version: int, dropped: list[str], row: str) -> None:
    """A catalog as cratedig ``version`` left it: without the ``dropped`` features columns, holding ``row``."""
    con = open_catalog(path)
    for column in dropped:
        con.execute(f"ALTER TABLE features DROP COLUMN {column}")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
    con.execute(f"INSERT INTO features {row}")
    con.close()


def test_version_2_features_get_the_default_bpm_range(tmp_path):
    path = tmp_path / "v2.duckdb"
    _older_catalog(
        path,
        2,
        ["bpm_range_lo", "bpm_range_hi", "beats_per_bar"],
        "(track_id, analyzer_version, bpm, analyzed_at) VALUES (1, 1, 120.0, now())",
    )
    con = open_catalog(path)
    assert con.execute("SELECT bpm, bpm_range_lo, bpm_range_hi FROM features").fetchall() == [(120.0, *BPM_RANGE)]
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()


def test_version_3_catalog_gets_beats_per_bar(tmp_path):
    path = tmp_path / "v3.duckdb"
    _older_catalog(
        path,
        3,
        ["beats_per_bar"],
        "(track_id, analyzer_version, bpm, beat_offset_s, analyzed_at) VALUES (1, 5, 120.0, 0.1, now())",
    )
    con = open_catalog(path)
    assert con.execute("SELECT bpm, beat_offset_s, beats_per_bar FROM features").fetchall() == [(120.0, 0.1, None)]
    assert con.execute("SELECT max(version) FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    con.close()


def test_version_5_catalog_gets_user_format_names_and_the_codec(tmp_path):
    path = tmp_path / "v5.duckdb"
    con = open_catalog(path)
    con.execute("ALTER TABLE tracks DROP COLUMN codec")
    con.execute("DELETE FROM schema_version")
    con.execute("INSERT INTO schema_version (version) VALUES (5)")
    for i, (name, codec) in enumerate([("a.wav", "pcm_pcm_16"), ("b.m4a", "alac"), ("c.ogg", "vorbis")], 1):
        con.execute(
            "INSERT INTO tracks (track_id, path, size_bytes, mtime_ns, fingerprint, format, status, first_seen, "
            "last_seen) VALUES (?, ?, 1, 1, 'f', ?, 'analyzed', now(), now())",
            [i, f"/music/{name}", codec],
        )
    con.close()
    con = open_catalog(path)
    assert con.execute("SELECT format, codec FROM tracks ORDER BY track_id").fetchall() == [
        ("wav", "pcm_16"),
        ("m4a/alac", "alac"),
        ("ogg", "vorbis"),
    ]
    con.close()


def test_counts_of_a_catalog_from_before_the_tempo_range_columns(tmp_path):
    # status reads a catalog without migrating it: one made before schema version 3 has no range to count.
    path = tmp_path / "v2.duckdb"
    open_catalog(path).close()
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO features (track_id, analyzer_version, analyzed_at) VALUES (1, 2, now())")
    assert catalog_counts(con)["features_by_bpm_range"] == {"unknown": 1}  # a row whose range is NULL
    con.execute("ALTER TABLE features DROP COLUMN bpm_range_lo")
    con.execute("ALTER TABLE features DROP COLUMN bpm_range_hi")
    con.close()
    ro = duckdb.connect(str(path), read_only=True)
    counts = catalog_counts(ro)
    ro.close()
    assert counts["features_by_bpm_range"] == {} and counts["features_by_version"] == {"2": 1}
