"""The catalog's schema: ``schemas/catalog.sql`` plus the steps that bring an older catalog up to date."""

from __future__ import annotations

from importlib import resources

import duckdb
import polars as pl

from tasks.audio.formats import codec_name, format_name
from tasks.audio.identity import legacy_text_to_text
from tasks.constants import BPM_RANGE
from tasks.similarity.sql import SIMILARITY_STATS_COLUMNS, ensure_similarity_objects
from tasks.transactions import transaction

#: Version of the catalog's tables and views; :data:`MIGRATIONS` has a step for every version after 1.
SCHEMA_VERSION: int = 9


def ddl() -> str:
    """The DDL of a version-1 catalog (every statement idempotent)."""
    return resources.files("schemas").joinpath("catalog.sql").read_text()


def _add_bpm_range(con: duckdb.DuckDBPyConnection) -> None:
    # Rows analysed before v3 used the default preferred tempo range.
    for column, value in zip(("bpm_range_lo", "bpm_range_hi"), BPM_RANGE):
        con.execute(f"ALTER TABLE features ADD COLUMN IF NOT EXISTS {column} DOUBLE")
        con.execute(f"UPDATE features SET {column} = ? WHERE {column} IS NULL", [value])


def _add_beats_per_bar(con: duckdb.DuckDBPyConnection) -> None:
    # Left NULL on older rows: their analyzer_version is older too, so the next run re-analyses them.
    con.execute("ALTER TABLE features ADD COLUMN IF NOT EXISTS beats_per_bar INTEGER")


def _add_curation_objects(con: duckdb.DuckDBPyConnection) -> None:
    # Tables and view of schemas/curation.sql (every statement idempotent).
    con.execute(resources.files("schemas").joinpath("curation.sql").read_text())


def _split_format_and_codec(con: duckdb.DuckDBPyConnection) -> None:
    # Before v6 ``format`` held the codec as decoded; it moves to ``codec`` and ``format`` gets the user's name.
    con.execute("ALTER TABLE tracks ADD COLUMN IF NOT EXISTS codec VARCHAR")
    rows = con.execute("SELECT DISTINCT path, format FROM tracks WHERE format IS NOT NULL AND codec IS NULL").fetchall()
    if rows:
        fixed = [(format_name(p, f), codec_name(f), p) for p, f in rows]
        con.executemany("UPDATE tracks SET format = ?, codec = ? WHERE path = ?", fixed)


def _add_run_error(con: duckdb.DuckDBPyConnection) -> None:
    # Why a run ended failed (one line); NULL for completed runs and runs of older versions.
    con.execute("ALTER TABLE runs ADD COLUMN IF NOT EXISTS error VARCHAR")


def _reencode_paths(con: duckdb.DuckDBPyConnection) -> None:
    # Paths with a backslash were ambiguous before v7 (tasks.audio.identity.legacy_text_to_text); the others
    # are the same text in both encodings. Stored paths, rejects and the event history all follow.
    old = [
        p
        for (p,) in con.execute(
            "SELECT DISTINCT path FROM (SELECT path FROM tracks UNION ALL SELECT path FROM rejects "
            "UNION ALL SELECT path FROM track_events) WHERE contains(path, chr(92))"
        ).fetchall()
    ]
    pairs = [(p, legacy_text_to_text(p)) for p in old]
    pairs = [(a, b) for a, b in pairs if a != b]
    if not pairs:
        return
    mapping = pl.DataFrame(pairs, schema=["old", "new"], orient="row")
    con.register("_paths", mapping)
    for table in ("tracks", "rejects", "track_events"):  # fixed names; the values come from the frame
        con.execute(f"UPDATE {table} SET path = m.new FROM _paths m WHERE {table}.path = m.old")
    con.unregister("_paths")


def _add_correction_audio(con: duckdb.DuckDBPyConnection) -> None:
    # The duration of the audio a correction was made for. For a correction set before v9, the track's duration
    # now is the best witness there is (a file replaced since was re-analysed, and its correction with it).
    con.execute("ALTER TABLE corrections ADD COLUMN IF NOT EXISTS audio_duration_s DOUBLE")
    con.execute(
        "UPDATE corrections SET audio_duration_s = t.duration_s FROM tracks t "
        "WHERE corrections.track_id = t.track_id AND corrections.audio_duration_s IS NULL"
    )


#: Steps that bring a catalog of version ``v - 1`` to version ``v`` (after ``catalog.sql``'s tables exist).
MIGRATIONS = {
    2: ensure_similarity_objects,  # v2: similarity_index + the similar_tracks() SQL macro in every catalog
    3: _add_bpm_range,  # v3: features.bpm_range_lo / _hi, the preferred tempo range of each row
    4: _add_beats_per_bar,  # v4: features.beats_per_bar; beat_offset_s is the first downbeat
    5: _add_curation_objects,  # v5: corrections, correction_log, crates, crate_tracks, view effective_tracks
    6: _split_format_and_codec,  # v6: tracks.format is wav/flac/m4a/aac...; tracks.codec the decoder's name
    7: _add_run_error,  # v7: runs.error, why a run failed
    8: _reencode_paths,  # v8: path texts reversible and collision-free (backslashes doubled)
    9: _add_correction_audio,  # v9: corrections.audio_duration_s, the audio a correction was made for
}


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a new or older catalog up to :data:`SCHEMA_VERSION`, step by step (inside the caller's transaction)."""
    current = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] or 1
    if current > SCHEMA_VERSION:
        raise duckdb.Error(f"catalog schema {current} is newer than this cratedig ({SCHEMA_VERSION})")
    for version in range(current + 1, SCHEMA_VERSION + 1):
        MIGRATIONS[version](con)
    if con.execute("SELECT count(*) FROM schema_version WHERE version = ?", [SCHEMA_VERSION]).fetchall()[0][0] == 0:
        con.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION])


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables of a new catalog, or migrate an older one, in one transaction."""
    with transaction(con):
        con.execute(ddl())
        migrate(con)
        # A catalog whose first run was stopped before its first index refresh, by a cratedig older than this
        # table's creation with the catalog, lacks it: the README documents it in every catalog.
        con.execute(f"CREATE TABLE IF NOT EXISTS similarity_stats ({SIMILARITY_STATS_COLUMNS})")
