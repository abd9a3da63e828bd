"""The DuckDB catalog: open (with lock wait and migrations), apply a scan plan, store batches, export Parquet.

Every write is one transaction: a batch is in the catalog whole or not at all, so a killed run leaves
no partial rows and the next run analyses only what is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import duckdb
import polars as pl

from schemas.tables import FeatureRow, RejectRow, TrackEventRow, TrackRow, split_valid
from tasks.audio.identity import path_to_text
from tasks.catalog.corrections import clear_for_new_audio, clear_for_other_bytes
from tasks.catalog.migrations import prepare
from tasks.catalog.writer import connect, open_reader, wait_for_file_lock
from tasks.constants import LOCK_TIMEOUT_S
from tasks.errors import CatalogReadOnlyError
from tasks.transactions import now, transaction
from tasks.vocabulary import OUTCOMES, Reason, TrackEvent, TrackStatus

#: Track columns a file's own content fills in (the decoder's and the tags'); a row that fails
#: :class:`TrackRow` is stored without them, as a ``SCHEMA`` failure.
MEASURED_COLUMNS = tuple("format codec duration_s sample_rate channels title artist album genre tag_bpm".split())
#: The ``tracks`` columns a batch writes, in the table's order.
TRACK_COLUMNS = [
    "track_id",
    "path",
    "size_bytes",
    "mtime_ns",
    "fingerprint",
    *MEASURED_COLUMNS,
    "tag_key",
    "status",
    "reason",
]


def open_catalog(
    path: str | Path, *, lock_timeout_s: float = LOCK_TIMEOUT_S, read_only: bool = False
) -> duckdb.DuckDBPyConnection:
    """Open the catalog file at ``path`` directly; writable: create or migrate it, waiting for DuckDB's file lock.

    Readers use ``read_only=True`` (a run never holds the published file open, so they never wait). Writing
    goes through :class:`tasks.catalog.writer.CatalogWriter` during a run; a direct writable open is for
    tests and tools that know no run is going (a run publishing later would replace their changes).

    Raises
    ------
    CatalogLockedError
        When another process still holds the file after ``lock_timeout_s`` seconds.
    NotACatalogError
        When ``path`` is not a DuckDB file.
    """
    path = Path(path)
    if read_only:
        return open_reader(path, wait_s=lock_timeout_s)
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CatalogReadOnlyError(f"cannot create the catalog's folder {path.parent}: {exc.strerror}") from None

    def connect_writable() -> duckdb.DuckDBPyConnection:
        try:
            return connect(path)
        except duckdb.IOException as exc:
            text = str(exc).lower()
            if "permission denied" in text or "read-only file system" in text:
                raise CatalogReadOnlyError(f"cannot write the catalog {path}: permission denied") from None
            raise

    con = wait_for_file_lock(
        connect_writable, wait_s=lock_timeout_s, busy=f"catalog {path} is in use by another cratedig run", poll_s=0.25
    )
    if not read_only:
        prepare(con)
    return con


def known_tracks(con: duckdb.DuckDBPyConnection, library: str | None = None) -> pl.DataFrame:
    """The catalog's tracks (under ``library`` when given) with their analysed version: the input of
    :func:`tasks.catalog.scan.plan_scan`. Filtering by library lets several libraries share one catalog without
    marking each other's files missing."""
    prefix = None if library is None else path_to_text(library).rstrip("/") + "/"
    return con.sql(
        """
        SELECT t.track_id, t.path, t.size_bytes, t.mtime_ns, t.fingerprint, t.status, f.analyzer_version,
               f.bpm_range_lo, f.bpm_range_hi, f.tempo_reason, f.embedding_version
        FROM tracks t LEFT JOIN features f USING (track_id)
        WHERE $prefix IS NULL OR starts_with(t.path, $prefix)""",
        params={"prefix": prefix},
    ).pl()


def tracks_elsewhere(con: duckdb.DuckDBPyConnection, library: str | Path, sizes: list[int]) -> pl.DataFrame:
    """The catalog's tracks outside ``library`` with one of these sizes, as :func:`known_tracks` gives them, with the
    root of the library each lies in (the longest ``runs.library`` above it; null when none): where a file new to
    ``library`` may have come from (:func:`tasks.catalog.scan.plan_scan`'s ``elsewhere``)."""
    prefix = path_to_text(library).rstrip("/") + "/"
    return con.sql(
        """
        WITH libraries AS (SELECT DISTINCT rtrim(library, '/') || '/' AS root FROM runs WHERE library IS NOT NULL)
        SELECT t.track_id, t.path, t.size_bytes, t.mtime_ns, t.fingerprint, t.status, f.analyzer_version,
               (SELECT max_by(l.root, length(l.root)) FROM libraries l WHERE starts_with(t.path, l.root)) AS library
        FROM tracks t LEFT JOIN features f USING (track_id)
        WHERE NOT starts_with(t.path, $prefix) AND t.size_bytes IN (SELECT unnest($sizes::BIGINT[]))""",
        params={"prefix": prefix, "sizes": sizes},
    ).pl()


def _events(con: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> None:
    """Append events; ``rows`` has ``track_id``, ``path``, ``event``, ``detail``, ``run_id``, ``event_at``."""
    if rows.height:
        rows = TrackEventRow.validate(rows)
        con.register("_ev", rows)
        con.execute(
            "INSERT INTO track_events (track_id, path, event, detail, run_id, event_at) "
            "SELECT track_id, path, event, detail, run_id, event_at FROM _ev"
        )
        con.unregister("_ev")


def apply_plan(con: duckdb.DuckDBPyConnection, plan: Any, run_id: str) -> None:
    """Record what the walk found without analysis: moves, missing files, and ``last_seen`` of the rest.

    ``plan`` is a :class:`tasks.catalog.scan.ScanPlan`. One transaction.
    """
    at = now()
    with transaction(con):
        clear_for_other_bytes(con, plan.other_audio, at)  # before the analysis: nothing may export them meanwhile
        if plan.moved.height:
            con.register("_moved", plan.moved)
            # A missing track found moved was analysed when it has no reason; one that was rejected or failed
            # (it keeps its reason) is tried again by the next run, which finds it as it was.
            con.execute(
                """UPDATE tracks SET path = m.path, mtime_ns = m.mtime_ns, last_seen = ?,
                           status = CASE WHEN tracks.status <> ? THEN tracks.status
                                         WHEN tracks.reason IS NULL THEN ? ELSE ? END
                           FROM _moved m WHERE tracks.track_id = m.track_id""",
                [at, TrackStatus.MISSING.value, TrackStatus.ANALYZED.value, TrackStatus.FAILED.value],
            )
            # A rejected file's reason goes with it (rejects are kept by path); what was recorded at its new path
            # (a dangling link it replaced) is about a file that is not there any more.
            con.execute("DELETE FROM rejects WHERE path IN (SELECT path FROM _moved)")
            con.execute("UPDATE rejects SET path = m.path FROM _moved m WHERE rejects.path = m.old_path")
            # One that went missing lost its reject then: listed again until the next run retries it.
            con.execute(
                "INSERT OR IGNORE INTO rejects (path, reason, detail, run_id, seen_at) SELECT t.path, t.reason, "
                "'found again after it went missing; the next run tries it again', ?, ? "
                "FROM tracks t JOIN _moved m USING (track_id) WHERE t.status = ?",
                [run_id, at, TrackStatus.FAILED.value],
            )
            con.unregister("_moved")
            _events(
                con,
                plan.moved.select(
                    "track_id",
                    "path",
                    pl.lit(TrackEvent.MOVED.value).alias("event"),
                    pl.format("from {}", "old_path").alias("detail"),
                    pl.lit(run_id).alias("run_id"),
                    pl.lit(at).alias("event_at"),
                ),
            )
        if plan.missing.height:
            con.register("_missing", plan.missing)
            con.execute(
                "UPDATE tracks SET status = ? FROM _missing m WHERE tracks.track_id = m.track_id",
                [TrackStatus.MISSING.value],
            )
            con.unregister("_missing")
            _events(
                con,
                plan.missing.select(
                    "track_id",
                    "path",
                    pl.lit(TrackEvent.MISSING.value).alias("event"),
                    pl.lit(None, pl.Utf8).alias("detail"),
                    pl.lit(run_id).alias("run_id"),
                    pl.lit(at).alias("event_at"),
                ),
            )
        if plan.unchanged.height:
            con.register("_seen", plan.unchanged.select("track_id"))
            con.execute("UPDATE tracks SET last_seen = ? FROM _seen s WHERE tracks.track_id = s.track_id", [at])
            con.unregister("_seen")


def record_problems(con: duckdb.DuckDBPyConnection, problems: Iterable[tuple[str, Reason, str]], run_id: str) -> int:
    """Store walk problems (dangling links, unreadable entries) as rejects; returns how many."""
    rows = [(p, str(r), d, run_id, now()) for p, r, d in problems]
    if rows:
        con.executemany(
            "INSERT OR REPLACE INTO rejects (path, reason, detail, run_id, seen_at) VALUES (?, ?, ?, ?, ?)", rows
        )
    return len(rows)


def _track_frame(results: list[dict[str, Any]]) -> pl.DataFrame:
    tracks = pl.DataFrame(
        [{c: r.get(c) for c in TRACK_COLUMNS} | {"track_id": r["track_id"] or 1} for r in results],
        schema_overrides={
            "tag_bpm": pl.Float64,
            "duration_s": pl.Float64,
            "fingerprint": pl.Utf8,
            "format": pl.Utf8,
            "codec": pl.Utf8,
            "reason": pl.Utf8,
            "sample_rate": pl.Int64,
            "channels": pl.Int64,
        },
        infer_schema_length=None,
    )
    return tracks.with_columns(pl.col("fingerprint").fill_null(pl.format("{}-unread", "size_bytes")))


def stale_rejects(
    con: duckdb.DuckDBPyConnection,
    library: str,
    files: Iterable[str],
    problems: Iterable[str],
    *,
    unreadable_dirs: Iterable[str] = (),
    delete: bool = False,
) -> int:
    """Count (or, with ``delete``, delete) the rejects under ``library`` (a path text) that no longer hold: the
    walk finds neither the file nor a problem at its path (files deleted, dangling links removed, folders
    readable again), or it finds a readable file whose track is analysed (a link that works again: its
    "dangling symlink" stayed). ``files`` and ``problems`` are the walk's path texts; rejects under
    ``unreadable_dirs`` stay, as nothing is known about them now. The history stays in ``track_events``.
    """
    prefix = library.rstrip("/") + "/"
    kept = [d.rstrip("/") + "/" for d in unreadable_dirs]
    problems = list(problems)
    con.register("_files", pl.DataFrame({"path": list(files)}, schema={"path": pl.Utf8}))
    con.register("_problems", pl.DataFrame({"path": problems}, schema={"path": pl.Utf8}))
    try:
        return con.execute(
            f"""{"DELETE" if delete else "SELECT count(*)"} FROM rejects WHERE starts_with(path, $prefix)
               AND NOT list_bool_or([starts_with(path, d) for d in $kept::VARCHAR[]] || [false])
               AND path NOT IN (SELECT path FROM _problems)
               AND (path NOT IN (SELECT path FROM _files)
                    OR path IN (SELECT path FROM tracks WHERE status = 'analyzed'))""",
            {"prefix": prefix, "kept": kept},
        ).fetchall()[0][0]
    finally:
        con.unregister("_files")
        con.unregister("_problems")


def clear_stale_rejects(
    con: duckdb.DuckDBPyConnection,
    library: str,
    files: Iterable[str],
    problems: Iterable[str],
    *,
    unreadable_dirs: Iterable[str] = (),
) -> int:
    """Delete the rejects :func:`stale_rejects` counts; returns how many."""
    return stale_rejects(con, library, files, problems, unreadable_dirs=unreadable_dirs, delete=True)


def _schema_failures(results: list[dict[str, Any]]) -> None:
    """Turn results whose features fail :class:`FeatureRow`, or whose track columns fail :class:`TrackRow`,
    into ``SCHEMA`` failures of their own file, in place: one odd file never fails a batch."""
    analysed = [r for r in results if r["status"] == TrackStatus.ANALYZED]
    if analysed:
        frame = pl.DataFrame(
            [{**r["features"], "track_id": r["track_id"] or 1} for r in analysed], infer_schema_length=None
        )
        _, failed = split_valid(frame, FeatureRow)
        for i, why in failed.items():
            analysed[i].update(
                status=TrackStatus.FAILED.value, reason=Reason.SCHEMA.value, detail=why[:500], features=None
            )
    if results:
        _, failed = split_valid(_track_frame(results), TrackRow)
        for i, why in failed.items():
            results[i].update(
                {c: None for c in MEASURED_COLUMNS},
                status=TrackStatus.FAILED.value,
                reason=Reason.SCHEMA.value,
                detail=why[:500],
                features=None,
            )


def store_results(con: duckdb.DuckDBPyConnection, results: list[dict[str, Any]], run_id: str) -> dict[str, int]:
    """Write one batch of :func:`tasks.features.analyze.analyze_file` results in a single transaction.

    Tracks are upserted (new ones get an id), features replaced, rejects set or cleared, and events
    appended. Rows that fail the schemas become ``SCHEMA`` failures instead of bad catalog rows.

    Returns
    -------
    dict
        Counts by status: ``analyzed``, ``rejected``, ``failed``.
    """
    results = [dict(r) for r in results]  # never mutate the caller's rows
    _schema_failures(results)
    at = now()
    with transaction(con):
        # A correction of the audio a path held before is wrong for what it holds now. (Before the tracks' upsert:
        # a correction without audio_duration_s goes by the track's duration before this analysis.)
        durations = {r["track_id"]: r["duration_s"] for r in results if r["track_id"] is not None}
        clear_for_new_audio(con, {t: d for t, d in durations.items() if d is not None}, at)
        unnumbered = [r for r in results if r["track_id"] is None]
        if unnumbered:
            ids = con.execute("SELECT nextval('track_id_seq') FROM range(?)", [len(unnumbered)]).fetchall()
            for r, (track_id,) in zip(unnumbered, ids):
                r["track_id"] = track_id
        tracks, bad = split_valid(_track_frame(results), TrackRow)
        if bad:  # _schema_failures left only rows that pass: a bug, never a file's fault
            raise ValueError(f"track rows failed the schema: {bad}")
        con.register("_tracks", tracks)
        con.execute(
            """
            INSERT INTO tracks BY NAME
            SELECT *, ?::TIMESTAMP AS first_seen, ?::TIMESTAMP AS last_seen FROM _tracks
            ON CONFLICT (track_id) DO UPDATE SET
                path = excluded.path, size_bytes = excluded.size_bytes, mtime_ns = excluded.mtime_ns,
                fingerprint = excluded.fingerprint, format = excluded.format, codec = excluded.codec,
                duration_s = excluded.duration_s,
                sample_rate = excluded.sample_rate, channels = excluded.channels, title = excluded.title,
                artist = excluded.artist, album = excluded.album, genre = excluded.genre,
                tag_bpm = excluded.tag_bpm, tag_key = excluded.tag_key, status = excluded.status,
                reason = excluded.reason, last_seen = excluded.last_seen""",
            [at, at],
        )
        con.unregister("_tracks")
        analysed = [
            {**r["features"], "track_id": r["track_id"]} for r in results if r["status"] == TrackStatus.ANALYZED
        ]
        ids = [r["track_id"] for r in results]
        con.execute("DELETE FROM features WHERE track_id IN (SELECT unnest(?::BIGINT[]))", [ids])
        if analysed:
            con.register("_features", pl.DataFrame(analysed, infer_schema_length=None))
            con.execute("INSERT INTO features BY NAME SELECT * FROM _features")
            con.unregister("_features")
        ok_paths = [r["path"] for r in results if r["status"] == TrackStatus.ANALYZED]
        if ok_paths:
            con.execute("DELETE FROM rejects WHERE path IN (SELECT unnest(?::VARCHAR[]))", [ok_paths])
        bad_rows = [
            (r["path"], r["reason"], r["detail"], run_id, at) for r in results if r["status"] != TrackStatus.ANALYZED
        ]
        if bad_rows:
            RejectRow.validate(
                pl.DataFrame(bad_rows, schema=["path", "reason", "detail", "run_id", "seen_at"], orient="row")
            )
            con.executemany(
                "INSERT OR REPLACE INTO rejects (path, reason, detail, run_id, seen_at) VALUES (?, ?, ?, ?, ?)",
                bad_rows,
            )
        _events(
            con,
            pl.DataFrame(
                {
                    "track_id": [r["track_id"] for r in results],
                    "path": [r["path"] for r in results],
                    "event": [r["status"] for r in results],
                    "detail": [r["reason"] for r in results],
                    "run_id": [run_id] * len(results),
                    "event_at": [at] * len(results),
                },
                schema={
                    "track_id": pl.Int64,
                    "path": pl.Utf8,
                    "event": pl.Utf8,
                    "detail": pl.Utf8,
                    "run_id": pl.Utf8,
                    "event_at": pl.Datetime,
                },
            ),
        )
    counts = {str(s): 0 for s in OUTCOMES}
    for r in results:
        counts[r["status"]] += 1
    return counts
