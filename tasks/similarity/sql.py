"""The SQL side of similarity: the ``similar_tracks()`` table macro stored in every catalog.

It reads the same standardised vectors as :func:`tasks.similarity.search.similar_tracks`, so SQL and Python agree.
"""

from __future__ import annotations

import duckdb

from tasks.similarity.rules import RULE_MACROS_SQL


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return (
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' "
            "AND database_name = current_database()",
            [name],
        ).fetchall()[0][0]
        > 0
    )


_TABLE_MACROS = """
CREATE OR REPLACE MACRO similar_tracks(query, k := 10, metric := 'cosine', bpm_window := NULL,
                                       harmonic := false, exclude_duplicates := true) AS TABLE
    WITH args AS MATERIALIZED (  -- refused, as the Python similar_tracks refuses them, before any seed is looked up
        SELECT CASE WHEN metric IS NULL OR metric NOT IN ('cosine', 'euclidean')
                    THEN error('metric must be cosine or euclidean, not ' || coalesce(CAST(metric AS VARCHAR), 'NULL'))
                    WHEN k IS NULL OR k < 1 OR k <> floor(k)
                    THEN error('k must be a whole number of at least 1, not ' || coalesce(CAST(k AS VARCHAR), 'NULL'))
                    WHEN harmonic IS NULL THEN error('harmonic must be true or false, not NULL')
                    WHEN exclude_duplicates IS NULL THEN error('exclude_duplicates must be true or false, not NULL')
                    WHEN bpm_window < 0 OR isnan(bpm_window)
                    THEN error('bpm_window must be a number of at least 0 (percent), or NULL for any tempo')
               END AS refused),
    seed AS MATERIALIZED (
        SELECT i.* FROM similarity_index i, args
        WHERE args.refused IS NULL  -- (used, so that no optimizer drops the check: a stored macro loses MATERIALIZED)
          AND i.track_id = coalesce(
            (SELECT track_id FROM similarity_index WHERE track_id = TRY_CAST(trim(CAST(query AS VARCHAR)) AS BIGINT)),
            (SELECT min(track_id) FROM similarity_index WHERE path = CAST(query AS VARCHAR)))),
    top AS MATERIALIZED (
        SELECT i.track_id,
               CAST(CASE WHEN metric = 'euclidean' THEN array_distance(i.vec, s.vec)
                         WHEN i.norm = 0 OR s.norm = 0 THEN 1.0
                         ELSE array_cosine_distance(i.vec, s.vec) END AS DOUBLE) AS distance
        FROM similarity_index i, seed s
        WHERE i.track_id <> s.track_id
          AND NOT (exclude_duplicates AND (i.fp = s.fp OR (i.ta <> 0 AND i.ta = s.ta)))
          AND (bpm_window IS NULL OR cratedig_tempo_compatible(s.bpm, i.bpm, bpm_window))
          AND (NOT harmonic OR cratedig_camelot_code_compatible(s.camelot, i.camelot))
        ORDER BY distance, i.track_id
        LIMIT greatest(k, 1))  -- (LIMIT 0 or a negative one ended the query before the check on k could refuse it)
    SELECT i.track_id, i.path, i.title, i.artist, i.bpm, i."key", i.key_camelot, top.distance
    FROM top JOIN similarity_index i USING (track_id)
    ORDER BY top.distance, i.track_id;
"""


#: Columns of ``similarity_stats``: one row, written by each refresh of the index.
SIMILARITY_STATS_COLUMNS = (
    "generation VARCHAR, embedding_version INTEGER, dim INTEGER, n_tracks BIGINT, mean DOUBLE[], std DOUBLE[], "
    "weight DOUBLE[], group_weights VARCHAR, z_clip DOUBLE, signature VARCHAR, refreshed_at TIMESTAMP"
)


def ensure_similarity_objects(con: duckdb.DuckDBPyConnection) -> None:
    """Create an empty ``similarity_index`` and ``similarity_stats`` (if missing) and the SQL macros, so that
    ``similar_tracks()`` and the documented tables are there in every catalog, without rows until the first
    :func:`refresh_similarity_index` (a first run killed before it, or one still under way)."""
    from tasks.features.embedding import EMBEDDING_DIM

    con.execute(f"CREATE TABLE IF NOT EXISTS similarity_stats ({SIMILARITY_STATS_COLUMNS})")
    if not table_exists(con, "similarity_index"):
        con.execute(f"""CREATE TABLE similarity_index (track_id BIGINT, vec FLOAT[{EMBEDDING_DIM}], norm FLOAT,
                        bpm DOUBLE, camelot TINYINT, fp UBIGINT, ta UBIGINT, path VARCHAR, title VARCHAR,
                        artist VARCHAR, "key" VARCHAR, key_camelot VARCHAR)""")
    install_sql_macros(con)


def install_sql_macros(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)create ``similar_tracks(query, k, metric, bpm_window, harmonic, exclude_duplicates)`` and the
    rule macros of :data:`tasks.similarity.rules.RULE_MACROS_SQL` (``cratedig_camelot_compatible(a, b)``, ...).

    They are stored in the catalog file, so every connection (read-only ones too) can call them.
    """
    con.execute(RULE_MACROS_SQL)
    con.execute(_TABLE_MACROS)


def ensure_sql_macros(con: duckdb.DuckDBPyConnection) -> None:
    """Make this cratedig's macros the ones any connection calls: as ``TEMP`` macros of this connection only,
    which come before those stored in the catalog (a catalog may lack them, read-only and so not migrated, or hold
    an older cratedig's until its next write: one that read ``'Am'`` as no key)."""
    # similar_tracks() reads the similarity index, which a catalog older than it lacks: the rules still come.
    has_index = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'similarity_index'").fetchall()
    for sql in (RULE_MACROS_SQL, _TABLE_MACROS) if has_index[0][0] else (RULE_MACROS_SQL,):
        con.execute(sql.replace("CREATE OR REPLACE MACRO", "CREATE OR REPLACE TEMP MACRO"))
