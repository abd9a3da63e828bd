"""Queries over the similarity index: nearest neighbours of one or several seeds (:func:`similar_tracks`),
with the tempo and key rules as filters, and a 2-D map of the library (:func:`library_map`).

One matrix-vector product over the index's vectors answers a query exactly; a partial sort keeps the
candidates, and the exact distances of those few order them.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import duckdb
import numpy as np
import polars as pl

from tasks.similarity.index import METRICS, RESULT_SCHEMA, NotIndexedError, SimilarityIndex, load_index
from tasks.similarity.query import TrackNotFoundError, describe_unanalysed, resolve_query
from tasks.similarity.rules import COMPAT_TABLE, tempo_mask
from tasks.vocabulary import TrackStatus


def _seed_ids(con: duckdb.DuckDBPyConnection, query: Any, index: SimilarityIndex) -> list[int]:
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


def _refuse_unanalysed(con: duckdb.DuckDBPyConnection, index: SimilarityIndex, ids: Sequence[int]) -> None:
    """A seed the analysis rejected or failed has no vector, and re-running the analysis would not give it one."""
    missing = [int(i) for i in np.asarray(ids, dtype=np.int64)[~np.isin(ids, index.ids)]]
    if not missing:
        return
    bad = con.execute(
        "SELECT track_id, status, reason FROM tracks WHERE track_id IN (SELECT unnest(?::BIGINT[])) "
        "AND status <> ? ORDER BY track_id",
        [missing, TrackStatus.ANALYZED.value],
    ).fetchall()
    if bad:
        raise NotIndexedError(f"no similarity for it: {describe_unanalysed(bad)}")


def _rows(index: SimilarityIndex, ids: Sequence[int]) -> np.ndarray:
    """Positions of track ids in the index; raises :class:`NotIndexedError` for any missing."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(index.ids) == 0:  # (index.ids[pos] on an empty index raised IndexError: every embedding non-finite)
        pos, missing = np.zeros(0, dtype=np.int64), ids
    else:
        pos = np.clip(np.searchsorted(index.ids, ids), 0, len(index.ids) - 1)
        missing = ids[index.ids[pos] != ids]
    if len(missing):
        raise NotIndexedError(
            f"track(s) {missing.tolist()} have no similarity vector (not analysed, or "
            "analysed with an older embedding; re-run `cratedig analyze`)"
        )
    return pos


def _rank_keys(index: SimilarityIndex, q: np.ndarray, metric: str) -> np.ndarray:
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


def _exact(index: SimilarityIndex, q: np.ndarray, metric: str, cols: np.ndarray) -> np.ndarray:
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


def query_vector(index: SimilarityIndex, rows: np.ndarray, metric: str) -> np.ndarray:
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
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ValueError(f"k must be a whole number of at least 1, not {k!r}")
    if bpm_window is not None and not bpm_window >= 0:  # NaN too (it matched no track); inf: any track with a tempo
        raise ValueError(f"bpm_window must be a number of at least 0 (percent), or None for any tempo: {bpm_window!r}")
    index = load_index(con)
    seeds = _seed_ids(con, query, index)
    _refuse_unanalysed(con, index, seeds)
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
