"""The catalog's schema: ``schemas/catalog.sql`` plus the steps that bring an older catalog up to date."""

from __future__ import annotations

from importlib import resources

import duckdb

from tasks.audio.formats import codec_name, format_name
from tasks.constants import BPM_RANGE
from tasks.similarity.sql import ensure_similarity_objects
from tasks.transactions import transaction

#: Version of the catalog's tables and views; :data:`MIGRATIONS` has a step for every version after 1.
SCHEMA_VERSION: int = 6


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


#: Steps that bring a catalog of version ``v - 1`` to version ``v`` (after ``catalog.sql``'s tables exist).
MIGRATIONS = {
    2: ensure_similarity_objects,  # v2: similarity_index + the similar_tracks() SQL macro in every catalog
    3: _add_bpm_range,  # v3: features.bpm_range_lo / _hi, the preferred tempo range of each row
    4: _add_beats_per_bar,  # v4: features.beats_per_bar; beat_offset_s is the first downbeat
    5: _add_curation_objects,  # v5: corrections, correction_log, crates, crate_tracks, view effective_tracks
    6: _split_format_and_codec,  # v6: tracks.format is wav/flac/m4a/aac...; tracks.codec the decoder's name
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
