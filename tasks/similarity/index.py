"""What sounds like this? Nearest neighbours over the catalog's versioned ``embedding``.

:func:`refresh_similarity_index` learns per-dimension standardisation from the catalog and
materialises one weighted vector per analysed track in ``similarity_index`` (``vec FLOAT[D]``,
``norm``), with the statistics in ``similarity_stats`` and the SQL macros installed beside them, so
``SELECT * FROM similar_tracks('<path or track_id>', 10)`` works in plain SQL.
:func:`tasks.similarity.search.similar_tracks` answers the same question from Python with one matrix-vector
product over the same vectors (the SQL macro scans with DuckDB's array functions, exact but slower at a million
tracks).

Vector of track t, dimension i in embedding group g::

    vec[i] = clip((embedding[i] - mean[i]) / std[i], -Z_CLIP, Z_CLIP) * sqrt(share[g] / n_dims[g])

so every standardised dimension has unit variance and group g contributes ``share[g]`` of the
expected squared distance whatever its size (:data:`GROUP_WEIGHTS`). ``cosine`` is
``1 - cos(vec_a, vec_b)``, ``euclidean`` is ``|vec_a - vec_b|``.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import polars as pl

from tasks.similarity.query import SimilarityError
from tasks.similarity.rules import RULE_MACROS_SQL
from tasks.similarity.sql import SIMILARITY_STATS_COLUMNS, install_sql_macros, table_exists
from tasks.transactions import transaction

#: Share of the expected squared distance each embedding group gets (they sum to 1): the sound
#: (timbre 0.30 + spectral shape 0.15) 45 %, rhythm 25 %, tonality 20 %, loudness 10 %. On the
#: synthesized families of ``bench/similarity.py`` any split from equal shares to this one scores
#: precision@5 0.86-0.89; timbre-heavy splits (0.70 sound) drop to 0.74, and so do raw per-dimension
#: weights (timbre's 40 dimensions then swamp the rest). Groups not listed here get 0.10.
GROUP_WEIGHTS: dict[str, float] = {"timbre": 0.30, "spectral": 0.15, "rhythm": 0.25, "tonality": 0.20, "loudness": 0.10}
#: Standardised values are clipped to +-this many standard deviations: one freak value (a silent
#: intro, a clipped master) must not decide a track's neighbours alone.
Z_CLIP: float = 5.0
METRICS: tuple[str, ...] = ("cosine", "euclidean")
RESULT_SCHEMA: dict[str, Any] = {
    "track_id": pl.Int64,
    "path": pl.Utf8,
    "title": pl.Utf8,
    "artist": pl.Utf8,
    "bpm": pl.Float64,
    "key": pl.Utf8,
    "key_camelot": pl.Utf8,
    "distance": pl.Float64,
}
RESULT_COLUMNS: tuple[str, ...] = tuple(RESULT_SCHEMA)
#: Analysed tracks with their features (aliases t, f): what gets indexed.
ANALYSED_SQL = "tracks t JOIN features f USING (track_id) WHERE t.status = 'analyzed'"
#: The same with their manual corrections (alias c; ``schemas/curation.sql``).
CORRECTED_SQL = (
    "tracks t JOIN features f USING (track_id) LEFT JOIN corrections c USING (track_id) WHERE t.status = 'analyzed'"
)
#: Duplicate key of title + artist: case and surrounding space do not make a different recording.
TA_KEY_SQL = (
    "CASE WHEN nullif(trim(t.title), '') IS NULL OR nullif(trim(t.artist), '') IS NULL THEN 0::UBIGINT "
    "ELSE hash(lower(trim(t.title)) || chr(31) || lower(trim(t.artist))) END"
)


class NotIndexedError(SimilarityError):
    """The seed has no vector (not analysed, or analysed with another embedding version)."""


class IndexMissingError(NotIndexedError):
    """The catalog has no similarity index yet (:func:`refresh_similarity_index` never ran on it)."""


# ---------------------------------------------------------------- the index


def dimension_weights(
    groups: dict[str, slice], dim: int, *, live: np.ndarray | None = None, weights: dict[str, float] = GROUP_WEIGHTS
) -> np.ndarray:
    """Per-dimension weights, shape ``(dim,)``: ``sqrt(share[g] / n_live[g])`` for dimension i of group g.

    ``live`` (bool, shape ``(dim,)``) marks dimensions that vary in the catalog; constant ones get 0
    and do not dilute their group. Dimensions in no group form a group ``other`` (share 0.10).
    """
    live = np.ones(dim, dtype=bool) if live is None else live
    owner = np.full(dim, "other", dtype=object)
    for name, sl in groups.items():
        owner[sl] = name
    names = [g for g in dict.fromkeys(owner) if live[owner == g].any()]
    share = np.array([weights.get(g, 0.10) for g in names], dtype=np.float64)
    share /= share.sum() if share.sum() > 0 else 1.0
    w = np.zeros(dim, dtype=np.float64)
    for g, s in zip(names, share):
        members = (owner == g) & live
        w[members] = np.sqrt(s / members.sum())
    return w


def standardise(embedding: np.ndarray, mean: np.ndarray, std: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index vectors of embeddings, shape ``(n, D)`` float32 (module docstring); ``std == 0`` -> 0."""
    inv = np.divide(1.0, std, out=np.zeros_like(std, dtype=np.float64), where=std > 0)
    z = np.clip((np.asarray(embedding, dtype=np.float64) - mean) * inv, -Z_CLIP, Z_CLIP)
    return (z * weights).astype(np.float32)


def _embedding_source(con: duckdb.DuckDBPyConnection) -> tuple[int | None, int]:
    """(embedding_version, dimension) of the newest embedding among analysed tracks."""
    row = _one(
        con,
        f"""SELECT f.embedding_version, len(f.embedding) AS d, count(*) AS n
                          FROM {ANALYSED_SQL} AND f.embedding IS NOT NULL
                          GROUP BY ALL ORDER BY 1 DESC NULLS LAST, 3 DESC LIMIT 1""",
    )
    return (None, 1) if row is None else (row[0], int(row[1]))


def _signature(con: duckdb.DuckDBPyConnection, version: int | None) -> str:
    # Anything the index copies changes one of these: (re)analysis, a new/missing track, a move, a correction.
    return str(
        _one(
            con,
            f"""SELECT count(*), max(f.analyzed_at), sum(f.track_id), sum(hash(t.path) >> 8),
                           (SELECT sum(hash(track_id, bpm, key_camelot) >> 8) FROM corrections)
                                    FROM {ANALYSED_SQL} AND f.embedding_version IS NOT DISTINCT FROM ?""",
            [version],
        )
    )


def index_signature(con: duckdb.DuckDBPyConnection) -> str:
    """What the index would be built from now (compared with the one ``similarity_stats`` records)."""
    return _signature(con, _embedding_source(con)[0])


def index_is_current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``similarity_index`` exists and was built from what the catalog holds now (a run killed after it
    stored analyses but before its refresh leaves it behind, or never built)."""
    try:
        return _current_stats(con, index_signature(con)) is not None
    except duckdb.Error:  # a catalog of an older schema, read before a run migrates it: the run will tell
        return False


def _current_stats(con: duckdb.DuckDBPyConnection, signature: str) -> tuple | None:
    """``(generation, n_tracks, dim)`` of the index when it exists and was built from ``signature``, else None."""
    if not (table_exists(con, "similarity_stats") and table_exists(con, "similarity_index")):
        return None
    old = _one(con, "SELECT signature, generation, n_tracks, dim FROM similarity_stats")
    return None if old is None or old[0] != signature else old[1:]


def apply_corrections(con: duckdb.DuckDBPyConnection, track_ids: list[int], *, signature_before: str) -> bool:
    """Give the index the corrected tempo and key of ``track_ids`` (after ``cratedig set``).

    When the index was up to date before the correction (``signature_before``: :func:`index_signature` taken
    before it was stored), only those rows change, since the embeddings and so the standardisation did not;
    otherwise the whole index is refreshed. A new generation makes cached copies reload. Returns whether the
    rows were updated in place.
    """
    stored = _one(con, "SELECT signature FROM similarity_stats") if table_exists(con, "similarity_stats") else None
    if stored is None or stored[0] != signature_before or not table_exists(con, "similarity_index"):
        refresh_similarity_index(con)
        return False
    con.execute(RULE_MACROS_SQL)  # cratedig_camelot_code
    with transaction(con):
        con.execute(
            f"""UPDATE similarity_index SET bpm = e.bpm, key_camelot = e.key_camelot, "key" = e."key",
                       camelot = cratedig_camelot_code(e.key_camelot)::TINYINT
                FROM (SELECT f.track_id, coalesce(c.bpm, f.bpm) AS bpm,
                             coalesce(c.key_camelot, f.key_camelot) AS key_camelot, coalesce(c."key", f."key") AS "key"
                      FROM {CORRECTED_SQL} AND f.track_id IN (SELECT unnest(?::BIGINT[]))) e
                WHERE similarity_index.track_id = e.track_id""",
            [list(track_ids)],
        )
        con.execute(
            "UPDATE similarity_stats SET generation = ?, signature = ?, refreshed_at = now()::TIMESTAMP",
            [uuid.uuid4().hex, index_signature(con)],
        )
    return True


def _standardised_rows(con: duckdb.DuckDBPyConnection, version: int | None, dim: int) -> tuple[Any, ...]:
    """The rows of ``similarity_index`` as a ``pyarrow.Table`` (track_id order), and the standardisation's mean,
    std and weights; reads only (the macro ``cratedig_camelot_code`` must be in the catalog)."""
    from tasks.features.embedding import EMBEDDING_GROUPS

    table = _arrow(
        con.sql(
            f"""
        SELECT f.track_id, f.embedding, coalesce(c.bpm, f.bpm) AS bpm,
               coalesce(c.key_camelot, f.key_camelot) AS key_camelot,
               cratedig_camelot_code(coalesce(c.key_camelot, f.key_camelot)) AS camelot,
               hash(t.fingerprint) AS fp, {TA_KEY_SQL} AS ta, t.path, t.title, t.artist,
               coalesce(c."key", f."key") AS "key"
        FROM {CORRECTED_SQL}
             AND f.embedding_version IS NOT DISTINCT FROM ? AND len(f.embedding) = ?
             AND list_bool_and([isfinite(x) for x in f.embedding])
        ORDER BY f.track_id""",
            params=[version, dim],
        )
    )
    ids = table.column("track_id").to_numpy()
    emb = (
        table.column("embedding")
        .combine_chunks()
        .flatten()
        .to_numpy(zero_copy_only=False)
        .astype(np.float64)
        .reshape(len(ids), dim)
    )
    mean = emb.mean(axis=0) if len(ids) else np.zeros(dim)
    std = emb.std(axis=0) if len(ids) else np.zeros(dim)
    std[std <= 1e-9 * np.maximum(1.0, np.abs(mean))] = 0.0  # constant up to float noise
    weights = dimension_weights(EMBEDDING_GROUPS, dim, live=std > 0)
    vec = standardise(emb, mean, std, weights)
    del emb
    import pyarrow as pa

    arrow = (
        table.drop_columns(["embedding"])
        .append_column("vec", pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel(), pa.float32()), dim))
        .append_column("norm", pa.array(np.linalg.norm(vec, axis=1).astype(np.float32), pa.float32()))
    )
    return arrow, mean, std, weights


def refresh_similarity_index(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> dict[str, Any]:
    """Relearn the standardisation and rebuild ``similarity_index`` and the SQL macros, in one transaction.

    The index's tempo and key (what ``bpm_window`` and ``harmonic`` filter on, and what results show) are
    the effective ones: a manual correction wins over the analysis. The embedding is the analysis's.

    Only analysed tracks with the newest ``embedding_version`` (and finite values) are indexed.
    Skipped when nothing changed since the last refresh (unless ``force``). Call it after every
    analysis run. Returns ``{'tracks', 'dim', 'embedding_version', 'generation', 'skipped'}``.
    """
    version, dim = _embedding_source(con)
    signature = _signature(con, version)
    current = None if force else _current_stats(con, signature)
    if current is not None:
        install_sql_macros(con)  # a newer cratedig's macros reach a catalog whose index has not changed
        generation, n_tracks, dim = current
        return {"tracks": n_tracks, "dim": dim, "embedding_version": version, "generation": generation, "skipped": True}
    con.execute(RULE_MACROS_SQL)  # the query below uses cratedig_camelot_code
    arrow, mean, std, weights = _standardised_rows(con, version, dim)
    generation = uuid.uuid4().hex
    with transaction(con):
        con.register("_simidx", arrow)
        # What a query filters on and returns sits beside the vectors: one table scan answers it.
        con.execute(f"""CREATE OR REPLACE TABLE similarity_index AS
                        SELECT track_id, vec::FLOAT[{dim}] AS vec, norm, bpm, camelot::TINYINT AS camelot,
                               fp, ta, path, title, artist, "key", key_camelot FROM _simidx""")
        con.unregister("_simidx")
        con.execute(f"CREATE OR REPLACE TABLE similarity_stats ({SIMILARITY_STATS_COLUMNS})")
        con.execute(
            "INSERT INTO similarity_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [
                generation,
                version,
                dim,
                arrow.num_rows,
                mean.tolist(),
                std.tolist(),
                weights.tolist(),
                json.dumps(GROUP_WEIGHTS),  # JSON, so SQL reads it: group_weights::JSON->>'timbre'
                Z_CLIP,
                signature,
            ],
        )
        install_sql_macros(con)
    return {
        "tracks": arrow.num_rows,
        "dim": dim,
        "embedding_version": version,
        "generation": generation,
        "skipped": False,
    }


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """First row of a query, or None; drains the result (DuckDB 2 refuses new work until it is)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def _arrow(rel: duckdb.DuckDBPyRelation) -> Any:
    """A relation as a ``pyarrow.Table`` (DuckDB renamed the method in 1.4)."""
    return (getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table)()


@dataclass
class SimilarityIndex:
    """The index in memory, rows sorted by ``ids``; ``vt`` is (D, N): a row vector times it is the
    fastest exact scan here (memory-bound, about 50 ms for 1M x 64 float32)."""

    ids: np.ndarray  # (N,) int64
    vt: np.ndarray  # (D, N) float32
    neg_inv_norms: np.ndarray  # (N,) float32, -1/|v| (0 for a zero vector: cosine distance 1)
    sq_norms: np.ndarray  # (N,) float32, |v|^2
    bpm: np.ndarray  # (N,) float64, NaN when unknown
    camelot: np.ndarray  # (N,) int8 code, 24 when unknown
    fp: np.ndarray  # (N,) uint64 hash of the fingerprint
    ta: np.ndarray  # (N,) uint64 hash of lower(title)/lower(artist); 0 when either is missing
    meta: Any  # pyarrow.Table (N,): RESULT_COLUMNS but distance (its take() uses no thread pool)


_CACHE: OrderedDict[str, SimilarityIndex] = OrderedDict()


def load_index(con: duckdb.DuckDBPyConnection) -> SimilarityIndex:
    """The in-memory index of the catalog's current ``similarity_index`` (cached per refresh).

    A catalog whose first run is still under way, or was stopped before its refresh, holds analyses but no index
    yet: the index is then built from them in memory, as a refresh would build it, without writing the catalog
    (a reader neither waits for the run's lock nor writes). :class:`IndexMissingError` when nothing is analysed.
    """
    try:
        generation, dim = _one(con, "SELECT generation, dim FROM similarity_stats")
    except (duckdb.CatalogException, TypeError):
        return _unrefreshed_index(con)
    if generation in _CACHE:
        _CACHE.move_to_end(generation)
        return _CACHE[generation]
    t = _arrow(con.sql("SELECT * FROM similarity_index"))  # written in track_id order; ORDER BY costs seconds
    return _cached(generation, _index_of(t, dim))


def _unrefreshed_index(con: duckdb.DuckDBPyConnection) -> SimilarityIndex:
    """:func:`load_index` of a catalog never refreshed: built in memory from its analyses, cached per signature."""
    if _one(con, f"SELECT 1 FROM {ANALYSED_SQL} AND f.embedding IS NOT NULL LIMIT 1") is None:
        raise IndexMissingError("the catalog has no analysed track yet: run `cratedig analyze PATH`")
    version, dim = _embedding_source(con)
    # The file too: two copies of a catalog (a notebook may open both) have the same signature.
    (where,) = _one(con, "SELECT path FROM duckdb_databases() WHERE database_name = current_database()")
    key = f"unrefreshed {where} {_signature(con, version)}"
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    return _cached(key, _index_of(_standardised_rows(con, version, dim)[0], dim))


def _cached(key: str, index: SimilarityIndex) -> SimilarityIndex:
    _CACHE[key] = index
    while len(_CACHE) > 2:  # a million-track index is ~300 MB: keep the current one and one other
        _CACHE.popitem(last=False)
    return index


def _index_of(t: Any, dim: int) -> SimilarityIndex:
    """A :class:`SimilarityIndex` of ``similarity_index`` rows (a ``pyarrow.Table``)."""
    ids = t.column("track_id").to_numpy()
    if len(ids) > 1 and not (np.diff(ids) > 0).all():
        t = t.take(np.argsort(ids, kind="stable"))
    vecs = t.column("vec").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(t.num_rows, dim)
    vt = np.empty((dim, t.num_rows), dtype=np.float32)
    for start in range(0, t.num_rows, 1 << 16):  # transposed in blocks that stay in cache
        vt[:, start : start + (1 << 16)] = vecs[start : start + (1 << 16)].T
    col = {
        name: t.column(name).to_numpy(zero_copy_only=False)
        for name in ("track_id", "norm", "bpm", "camelot", "fp", "ta")
    }
    norms = col["norm"].astype(np.float32)
    return SimilarityIndex(
        ids=col["track_id"].astype(np.int64),
        vt=vt,
        neg_inv_norms=-np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0),
        sq_norms=norms * norms,
        bpm=col["bpm"].astype(np.float64),
        camelot=col["camelot"].astype(np.int8),
        fp=col["fp"].astype(np.uint64),
        ta=col["ta"].astype(np.uint64),
        meta=t.select(list(RESULT_COLUMNS[:-1])).combine_chunks(),
    )


# ---------------------------------------------------------------- queries
