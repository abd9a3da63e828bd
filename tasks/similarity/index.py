"""What sounds like this? Nearest neighbours over the catalog's versioned ``embedding``.

:func:`refresh_similarity_index` learns per-dimension standardisation from the catalog and
materialises one weighted vector per analysed track in ``similarity_index`` (``vec FLOAT[D]``,
``norm``), with the statistics in ``similarity_stats`` and the SQL macros installed beside them, so
``SELECT * FROM similar_tracks('<path or track_id>', 10)`` works in plain SQL. :func:`similar_tracks`
answers the same question from Python with one matrix-vector product over the same vectors (the
SQL macro scans with DuckDB's array functions, exact but slower at a million tracks).

Vector of track t, dimension i in embedding group g::

    vec[i] = clip((embedding[i] - mean[i]) / std[i], -Z_CLIP, Z_CLIP) * sqrt(share[g] / n_dims[g])

so every standardised dimension has unit variance and group g contributes ``share[g]`` of the
expected squared distance whatever its size (:data:`GROUP_WEIGHTS`). ``cosine`` is
``1 - cos(vec_a, vec_b)``, ``euclidean`` is ``|vec_a - vec_b|``.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import duckdb
import numpy as np
import polars as pl

from tasks.similarity.query import SimilarityError, TrackNotFoundError, resolve_query
from tasks.similarity.rules import COMPAT_TABLE, RULE_MACROS_SQL, tempo_mask
from tasks.similarity.sql import install_sql_macros, table_exists
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


def refresh_similarity_index(con: duckdb.DuckDBPyConnection, *, force: bool = False) -> dict[str, Any]:
    """Relearn the standardisation and rebuild ``similarity_index`` and the SQL macros, in one transaction.

    Only analysed tracks with the newest ``embedding_version`` (and finite values) are indexed.
    Skipped when nothing changed since the last refresh (unless ``force``). Call it after every
    analysis run. Returns ``{'tracks', 'dim', 'embedding_version', 'generation', 'skipped'}``.
    """
    from tasks.features.embedding import EMBEDDING_GROUPS

    version, dim = _embedding_source(con)
    # Anything the index copies changes one of these: (re)analysis, a new/missing track, a move.
    signature = str(
        _one(
            con,
            f"""SELECT count(*), max(f.analyzed_at), sum(f.track_id), sum(hash(t.path) >> 8)
                                    FROM {ANALYSED_SQL} AND f.embedding_version IS NOT DISTINCT FROM ?""",
            [version],
        )
    )
    if not force and table_exists(con, "similarity_stats"):
        old = _one(con, "SELECT signature, generation, n_tracks, dim FROM similarity_stats")
        if old is not None and old[0] == signature and table_exists(con, "similarity_index"):
            return {
                "tracks": old[2],
                "dim": old[3],
                "embedding_version": version,
                "generation": old[1],
                "skipped": True,
            }
    con.execute(RULE_MACROS_SQL)  # the query below uses cratedig_camelot_code
    table = _arrow(
        con.sql(
            f"""
        SELECT f.track_id, f.embedding, f.bpm, f.key_camelot, cratedig_camelot_code(f.key_camelot) AS camelot,
               hash(t.fingerprint) AS fp, {TA_KEY_SQL} AS ta, t.path, t.title, t.artist, f."key"
        FROM {ANALYSED_SQL} AND f.embedding_version IS NOT DISTINCT FROM ? AND len(f.embedding) = ?
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
    generation = uuid.uuid4().hex
    import pyarrow as pa

    arrow = (
        table.drop_columns(["embedding"])
        .append_column("vec", pa.FixedSizeListArray.from_arrays(pa.array(vec.ravel(), pa.float32()), dim))
        .append_column("norm", pa.array(np.linalg.norm(vec, axis=1).astype(np.float32), pa.float32()))
    )
    with transaction(con):
        con.register("_simidx", arrow)
        # What a query filters on and returns sits beside the vectors: one table scan answers it.
        con.execute(f"""CREATE OR REPLACE TABLE similarity_index AS
                        SELECT track_id, vec::FLOAT[{dim}] AS vec, norm, bpm, camelot::TINYINT AS camelot,
                               fp, ta, path, title, artist, "key", key_camelot FROM _simidx""")
        con.unregister("_simidx")
        con.execute("""CREATE OR REPLACE TABLE similarity_stats (
            generation VARCHAR, embedding_version INTEGER, dim INTEGER, n_tracks BIGINT, mean DOUBLE[],
            std DOUBLE[], weight DOUBLE[], group_weights VARCHAR, z_clip DOUBLE, signature VARCHAR,
            refreshed_at TIMESTAMP)""")
        con.execute(
            "INSERT INTO similarity_stats VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [
                generation,
                version,
                dim,
                len(ids),
                mean.tolist(),
                std.tolist(),
                weights.tolist(),
                repr(GROUP_WEIGHTS),
                Z_CLIP,
                signature,
            ],
        )
        install_sql_macros(con)
    return {"tracks": len(ids), "dim": dim, "embedding_version": version, "generation": generation, "skipped": False}


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """First row of a query, or None; drains the result (DuckDB 2 refuses new work until it is)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def _arrow(rel: duckdb.DuckDBPyRelation) -> Any:
    """A relation as a ``pyarrow.Table`` (DuckDB renamed the method in 1.4)."""
    return (getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table)()


@dataclass
class _Index:
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


_CACHE: OrderedDict[str, _Index] = OrderedDict()


def load_index(con: duckdb.DuckDBPyConnection) -> _Index:
    """The in-memory index of the catalog's current ``similarity_index`` (cached per refresh)."""
    try:
        generation, dim = _one(con, "SELECT generation, dim FROM similarity_stats")
    except (duckdb.CatalogException, TypeError):
        raise IndexMissingError(
            "the catalog has no similarity index yet: run `cratedig analyze` "
            "(or tasks.similarity.index.refresh_similarity_index)"
        ) from None
    if generation in _CACHE:
        _CACHE.move_to_end(generation)
        return _CACHE[generation]
    t = _arrow(con.sql("SELECT * FROM similarity_index"))  # written in track_id order; ORDER BY costs seconds
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
    index = _Index(
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
    _CACHE[generation] = index
    while len(_CACHE) > 2:  # a million-track index is ~300 MB: keep the current one and one other
        _CACHE.popitem(last=False)
    return index


# ---------------------------------------------------------------- queries


def _seed_ids(con: duckdb.DuckDBPyConnection, query: Any, index: _Index) -> list[int]:
    items = list(query) if isinstance(query, (list, tuple, set, np.ndarray, pl.Series)) else [query]
    if not items:
        raise TrackNotFoundError("no seed tracks given")
    ids: list[int] = []
    for q in items:
        s = str(q).strip()
        if isinstance(q, (int, np.integer)) or s.isdigit():  # an indexed id needs no catalog round trip
            pos = np.searchsorted(index.ids, int(s))
            if pos < len(index.ids) and index.ids[pos] == int(s):
                ids.append(int(s))
                continue
        ids.extend(resolve_query(con, q))
    return list(dict.fromkeys(ids))


def _rows(index: _Index, ids: Sequence[int]) -> np.ndarray:
    """Positions of track ids in the index; raises :class:`NotIndexedError` for any missing."""
    ids = np.asarray(ids, dtype=np.int64)
    pos = np.clip(np.searchsorted(index.ids, ids), 0, max(len(index.ids) - 1, 0))
    missing = ids[(len(index.ids) == 0) | (index.ids[pos] != ids)] if len(ids) else ids
    if len(missing):
        raise NotIndexedError(
            f"track(s) {missing.tolist()} have no similarity vector (not analysed, or "
            "analysed with an older embedding; re-run `cratedig analyze`)"
        )
    return pos


def _rank_keys(index: _Index, q: np.ndarray, metric: str) -> np.ndarray:
    """(N,) float32, increasing with the distance from ``q`` (D,): ``-cos`` or ``|v|^2 - 2 v.q``.

    One pass over the matrix plus one in-place pass: at a million tracks the scan is memory-bound.
    """
    q = q.astype(np.float32)
    # Below ~200k tracks numpy's own loop is fast enough, and it never waits for BLAS threads to
    # wake up (milliseconds on a busy machine); above, BLAS's threads win on memory bandwidth.
    keys = np.einsum("i,ij->j", q, index.vt) if index.vt.shape[1] < 200_000 else q @ index.vt
    if metric == "cosine":
        keys *= index.neg_inv_norms
    else:
        keys *= -2.0
        keys += index.sq_norms
    return keys


def _smallest(keys: np.ndarray, m: int) -> np.ndarray:
    """Positions of (at least) the ``m`` smallest keys, unordered.

    The m-th smallest of a strided sample is never below the m-th smallest of all, so thresholding
    at it keeps every one of the m smallest (about ``m * stride`` in all) in one pass, instead of a
    full ``argpartition``.
    """
    n = len(keys)
    if m >= n:
        return np.arange(n)
    stride = 16
    if n < 64 * m:
        return np.argpartition(keys, m - 1)[:m]
    sample = keys[::stride]
    threshold = np.partition(sample, m - 1)[m - 1]
    near = np.flatnonzero(keys <= threshold)
    return near if len(near) <= 4 * m * stride else near[np.argpartition(keys[near], m - 1)[:m]]


def _exact(index: _Index, q: np.ndarray, metric: str, cols: np.ndarray) -> np.ndarray:
    """Distances of a few candidates by the direct formula in float64 (no cancellation near 0).

    Row-wise sums, not a matrix product: BLAS may sum a row differently depending on where it sits,
    and identical tracks must tie exactly (ties go to the lower track_id, as in SQL).
    """
    v = index.vt[:, cols].T.astype(np.float64)
    q = q.astype(np.float64)
    if metric == "euclidean":
        d = v - q
        return np.sqrt((d * d).sum(axis=1))
    denom = np.sqrt((v * v).sum(axis=1)) * np.sqrt((q * q).sum())
    return np.where(denom > 0, 1.0 - (v * q).sum(axis=1) / np.where(denom > 0, denom, 1.0), 1.0)


def query_vector(index: _Index, rows: np.ndarray, metric: str) -> np.ndarray:
    """The query point of seed rows: the seed's vector, or the centroid of several seeds (for cosine,
    of their unit vectors, so a loud-featured seed does not outweigh the others)."""
    v = index.vt[:, rows].T.astype(np.float64)
    if metric == "cosine" and len(rows) > 1:
        n = np.linalg.norm(v, axis=1, keepdims=True)
        v = np.divide(v, n, out=np.zeros_like(v), where=n > 0)
    return v.mean(axis=0)


def similar_tracks(
    con: duckdb.DuckDBPyConnection,
    query: Any,
    k: int = 10,
    *,
    metric: str = "cosine",
    bpm_window: float | None = None,
    harmonic: bool = False,
    exclude_duplicates: bool = True,
    exclude: Iterable[int] = (),
) -> pl.DataFrame:
    """The ``k`` tracks nearest to ``query`` (exact search), nearest first.

    Parameters
    ----------
    query : str, int, Path or list of them
        A path, a track id or a title/artist substring (see :func:`resolve_query`); several seeds
        query their centroid.
    metric : {'cosine', 'euclidean'}
    bpm_window : float, optional
        Keep tracks whose BPM is within this many percent of every seed's tempo, its half or its
        double (:func:`tempo_compatible`); tracks without a BPM are dropped.
    harmonic : bool
        Keep tracks whose key is Camelot-compatible with every seed (:func:`camelot_compatible`).
    exclude_duplicates : bool
        Drop tracks with a seed's fingerprint or a seed's title and artist. Seeds are always dropped.
    exclude : iterable of int
        More track ids to leave out (and, with ``exclude_duplicates``, their duplicates).

    Returns
    -------
    polars.DataFrame
        ``track_id, path, title, artist, bpm, key, key_camelot, distance`` (fewer than ``k`` rows
        when the filters leave fewer).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")
    index = load_index(con)
    seeds = _seed_ids(con, query, index)
    rows = _rows(index, seeds)
    q = query_vector(index, rows, metric)
    keys = _rank_keys(index, q, metric)
    others = np.asarray(list(exclude), dtype=np.int64)
    pos = np.clip(np.searchsorted(index.ids, others), 0, max(len(index.ids) - 1, 0))
    drop = np.unique(np.concatenate([rows, pos[index.ids[pos] == others]])) if len(others) else rows
    dup_fp = index.fp[drop] if exclude_duplicates else np.zeros(0, np.uint64)
    dup_ta = index.ta[drop][index.ta[drop] != 0] if exclude_duplicates else np.zeros(0, np.uint64)

    def keep(c: np.ndarray) -> np.ndarray:
        ok = np.isfinite(keys[c]) & ~np.isin(c, drop) & ~np.isin(index.fp[c], dup_fp) & ~np.isin(index.ta[c], dup_ta)
        for r in rows:
            if bpm_window is not None:
                ok &= tempo_mask(index.bpm[r], index.bpm[c], bpm_window)
            if harmonic:
                ok &= COMPAT_TABLE[index.camelot[r]][index.camelot[c]]
        return ok

    # Filter the nearest candidates, looking further while too few pass: a full pass per filter
    # over a million tracks would cost more than the search. The margin beyond k absorbs float32
    # rank errors before the exact re-rank.
    want = k + min(32, k)
    m = (want + len(drop)) * (8 if bpm_window is not None else 1) * (6 if harmonic else 1)
    while True:
        cand = _smallest(keys, m)
        cand = cand[keep(cand)]
        if len(cand) >= want or m >= len(keys):
            break
        m *= 4
    exact = _exact(index, q, metric, cand)
    order = np.lexsort((index.ids[cand], exact))[:k]
    rows_out = index.meta.take(cand[order]).to_pydict()  # a few rows: plain lists beat Arrow conversion
    return pl.DataFrame({**rows_out, "distance": exact[order].tolist()}, schema=RESULT_SCHEMA)


def library_map(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """A 2-D map of the library: the unit index vectors on their first two principal axes.

    Returns ``track_id, x, y`` (neighbours by cosine sit close together).
    """
    index = load_index(con)
    if len(index.ids) == 0:
        return pl.DataFrame(schema={"track_id": pl.Int64, "x": pl.Float64, "y": pl.Float64})
    v = index.vt.T * -index.neg_inv_norms[:, None]  # unit rows, float32: (N, D)
    v -= v.mean(axis=0)
    _, axes = np.linalg.eigh((v.T @ v).astype(np.float64))  # D x D: cheap at a million tracks
    xy = v @ axes[:, ::-1][:, :2].astype(np.float32)
    return pl.DataFrame({"track_id": index.ids, "x": xy[:, 0].astype(np.float64), "y": xy[:, 1].astype(np.float64)})
