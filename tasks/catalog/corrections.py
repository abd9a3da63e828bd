"""Manual corrections (BPM, key, first downbeat, meter) that outlive every re-analysis.

A correction lives in ``corrections`` (one row per track, NULL = not corrected) with its history in
``correction_log``; the analysis writes neither, but for one case: a file whose audio was replaced under its
path (:func:`clear_for_new_audio`). The view ``effective_tracks`` (``schemas/curation.sql``)
lays the corrections over the analysis, and everything that hands values to a DJ reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import polars as pl
from pandera.errors import SchemaError, SchemaErrors

from schemas.tables import CorrectionRow
from tasks.errors import CratedigError
from tasks.features.key.names import KeyNameError, camelot, key_name, open_key
from tasks.transactions import now, transaction
from tasks.vocabulary import CorrectedField

#: Fields a user may correct, in the order they are shown.
FIELDS: tuple[str, ...] = tuple(f.value for f in CorrectedField)


class CorrectionError(CratedigError):
    """A correction that cannot be stored (a bad value, or a track without an analysis)."""


class NotAnalysedError(CorrectionError):
    """The track has no analysis to correct (rejected, failed, or unknown)."""


def curation_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """``(corrected tracks, crates)``; ``(0, 0)`` in a catalog not yet migrated to the curation tables."""
    present = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('corrections', 'crates') "
        "AND schema_name = 'main' AND database_name = current_database()"
    ).fetchall()[0][0]
    if present < 2:
        return 0, 0
    return con.execute("SELECT (SELECT count(*) FROM corrections), (SELECT count(*) FROM crates)").fetchall()[0]


@dataclass(frozen=True)
class Correction:
    """Values to correct; ``None`` leaves a field as it is.

    Attributes
    ----------
    bpm : float, optional
        Tempo, BPM (30-300).
    key : str, optional
        Any notation :func:`tasks.features.key.names.key_name` reads (``'A minor'``, ``'Am'``, ``'8A'``, ``'1m'``).
    beat_offset_s : float, optional
        Time of the first downbeat, s (>= 0, and before the end of the track: :func:`set_correction` checks).
    beats_per_bar : int, optional
        Beats in a bar (1-16).
    """

    bpm: float | None = None
    key: str | None = None
    beat_offset_s: float | None = None
    beats_per_bar: int | None = None

    def values(self) -> dict[str, Any]:
        """The fields given, checked and normalised (the key as a key name). Raises :class:`CorrectionError`."""
        given = {f: getattr(self, f) for f in FIELDS if getattr(self, f) is not None}
        if not given:
            raise CorrectionError("nothing to set: give --bpm, --key, --beat-offset or --beats-per-bar (or --clear)")
        if "key" in given:
            try:
                given["key"] = key_name(given["key"])
            except KeyNameError:
                raise CorrectionError(f"not a key: {self.key!r} (e.g. 'A minor', 'Am', '8A' or '1m')") from None
        row = pl.DataFrame([{**dict.fromkeys(FIELDS), **given, "track_id": 1}])
        try:
            CorrectionRow.validate(row)
        except (SchemaError, SchemaErrors) as exc:  # pandera's message names the check; ours names the field
            bad = [f for f in FIELDS if f in str(exc)] or list(given)
            raise CorrectionError(
                "bad value: " + ", ".join(f"{f} = {given[f]}" for f in bad if f in given) + " (BPM 30-300, "
                "first downbeat >= 0 s, 1-16 beats per bar)"
            ) from None
        return given


def _fields(con: duckdb.DuckDBPyConnection, relation: str, track_id: int) -> dict[str, Any]:
    """The track's :data:`FIELDS` in ``relation`` (a table or view name of this module, never the user's);
    ``{}`` when it has no row there."""
    cols = ", ".join(f'"{f}"' for f in FIELDS)
    rows = con.execute(f"SELECT {cols} FROM {relation} WHERE track_id = ?", [track_id]).fetchall()
    return dict(zip(FIELDS, rows[0])) if rows else {}


def _effective(con: duckdb.DuckDBPyConnection, track_id: int) -> dict[str, Any]:
    values = _fields(con, "effective_tracks", track_id)
    if not values:
        raise NotAnalysedError(f"track {track_id} has no analysis to correct (run `cratedig analyze` first)")
    return values


def _pinned(con: duckdb.DuckDBPyConnection, track_id: int) -> dict[str, Any]:
    """The track's stored corrections by field (None where a field is not corrected); ``{}`` without any."""
    return _fields(con, "corrections", track_id)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _log(con: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Append ``(track_id, field, old_value, new_value, set_by, set_at)`` rows to ``correction_log``."""
    if rows:  # DuckDB refuses executemany of nothing
        con.executemany(
            "INSERT INTO correction_log (track_id, field, old_value, new_value, set_by, set_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )


def set_correction(
    con: duckdb.DuckDBPyConnection, track_id: int, correction: Correction, *, by: str, at: Any = None
) -> dict[str, tuple[Any, Any]]:
    """Store ``correction`` for ``track_id`` (one transaction) and log it.

    Parameters
    ----------
    by : str
        Who sets it (a user name).
    at : datetime, optional
        When, UTC (naive, as the catalog stores timestamps); default now.

    Returns
    -------
    dict
        ``{field: (effective value before, value now)}`` for each field set.
    """
    values = correction.values()
    at = at or now()
    with transaction(con):
        before = _effective(con, track_id)
        _check_within_the_audio(con, track_id, values)
        pinned = _pinned(con, track_id)
        derived = {}
        if "key" in values:
            derived = {"key_camelot": camelot(values["key"]), "key_open": open_key(values["key"])}
        cols = {**values, **derived}
        names = ", ".join(f'"{c}"' for c in cols)  # column names come from FIELDS, never from the user
        updates = ", ".join(f'"{c}" = excluded."{c}"' for c in cols)
        # The audio it is made for: another recording put under the name later must not inherit it.
        con.execute(
            f"INSERT INTO corrections (track_id, {names}, audio_duration_s, set_by, set_at) "
            f"VALUES (?, {', '.join('?' * len(cols))}, (SELECT duration_s FROM tracks WHERE track_id = ?), ?, ?)"
            f" ON CONFLICT (track_id) DO UPDATE SET {updates}, audio_duration_s = excluded.audio_duration_s,"
            " set_by = excluded.set_by, set_at = excluded.set_at",
            [track_id, *cols.values(), track_id, by, at],
        )
        # A field already corrected to this value changes nothing: no log row (setting an analysed value does pin
        # it against re-analysis, which is logged).
        _log(con, [(track_id, f, _text(before[f]), _text(v), by, at) for f, v in values.items() if pinned.get(f) != v])
    return {f: (before[f], v) for f, v in values.items()}


def _check_within_the_audio(con: duckdb.DuckDBPyConnection, track_id: int, values: dict[str, Any]) -> None:
    """Refuse a first downbeat at or past the end of the track's audio (exports would place a grid and a cue
    there); raises :class:`CorrectionError`."""
    offset = values.get("beat_offset_s")
    if offset is None:
        return
    ((duration,),) = con.execute("SELECT duration_s FROM tracks WHERE track_id = ?", [track_id]).fetchall()
    if duration is not None and offset >= duration:
        raise CorrectionError(f"bad value: beat_offset_s = {offset} (the track lasts {duration:.2f} s)")


def clear_corrections(con: duckdb.DuckDBPyConnection, track_id: int, *, by: str, at: Any = None) -> list[str]:
    """Drop every correction of ``track_id`` (the analysis shows again); returns the fields that were corrected."""
    with transaction(con):
        return _drop(con, track_id, by=by, at=at or now())


def _drop(con: duckdb.DuckDBPyConnection, track_id: int, *, by: str, at: Any) -> list[str]:
    """Delete the track's corrections and log each as cleared by ``by``; returns the fields that were corrected."""
    pinned = {f: v for f, v in _pinned(con, track_id).items() if v is not None}
    _log(con, [(track_id, f, _text(v), None, by, at) for f, v in pinned.items()])
    con.execute("DELETE FROM corrections WHERE track_id = ?", [track_id])
    return list(pinned)


#: A re-analysed file whose decoded duration moved by more than this holds other audio, s. A tag edit (or a
#: cratedig tag write) changes size, mtime and fingerprint but never the duration.
NEW_AUDIO_S: float = 0.5
#: ``set_by`` of the log rows of corrections cleared because the audio under a path changed.
NEW_AUDIO_BY = "cratedig (the file's audio changed)"


def clear_for_new_audio(con: duckdb.DuckDBPyConnection, durations: dict[int, float], at: Any) -> list[int]:
    """Clear the corrections of tracks whose file now holds other audio, inside the caller's transaction.

    ``durations`` maps a re-analysed track to its new duration, s, which is compared with the duration of the
    audio each correction was made for (``audio_duration_s``; for a correction older than that column, the
    track's duration before this analysis, when there was one). A correction made for one recording (its
    tempo, key, grid) would be wrong for another put under the same name (a file replaced, two names swapped,
    even with a broken file in between), and would go into exports and tags; the cleared values stay in
    ``correction_log``, with :data:`NEW_AUDIO_BY` as who cleared them. Returns the tracks cleared.
    """
    if not durations:
        return []
    made_for = con.execute(
        "SELECT c.track_id, coalesce(c.audio_duration_s, t.duration_s) FROM corrections c JOIN tracks t "
        "USING (track_id) WHERE c.track_id IN (SELECT unnest(?::BIGINT[]))",
        [list(durations)],
    ).fetchall()
    new = [t for t, was in made_for if was is not None and abs(was - durations[t]) > NEW_AUDIO_S]
    return [t for t in new if _drop(con, t, by=NEW_AUDIO_BY, at=at)]


def clear_for_other_bytes(con: duckdb.DuckDBPyConnection, pairs: list[tuple[int, int]], at: Any) -> list[int]:
    """Clear the corrections of tracks whose file now holds another track's bytes (``(track, holder)`` pairs of
    :attr:`tasks.catalog.scan.ScanPlan.other_audio`: names swapped, a file copied over another), inside the
    caller's transaction, as :func:`clear_for_new_audio` does for a changed duration; unless the two tracks'
    analyses say they held the same audio (identical copies retagged alike: their embeddings agree to within
    :data:`SAME_AUDIO_DISTANCE`). Returns the tracks cleared."""
    if not pairs:
        return []
    other = con.execute(
        """SELECT p.t FROM (SELECT unnest(?::BIGINT[]) AS t, unnest(?::BIGINT[]) AS h) p
           LEFT JOIN features a ON a.track_id = p.t LEFT JOIN features b ON b.track_id = p.h
           WHERE a.embedding IS NULL OR b.embedding IS NULL OR len(a.embedding) <> len(b.embedding)
              OR list_distance(a.embedding, b.embedding) > ?""",  # nothing to compare: taken for other audio
        [[t for t, _ in pairs], [h for _, h in pairs], SAME_AUDIO_DISTANCE],
    ).fetchall()
    return [t for (t,) in other if _drop(con, t, by=NEW_AUDIO_BY, at=at)]


#: Two analyses of the same audio give the same embedding (the decoded samples are the same); this much apart
#: (Euclidean, in the embedding's units) they are two recordings.
SAME_AUDIO_DISTANCE: float = 1e-3


def corrections_frame(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Every corrected track: ``track_id, path, bpm, key, beat_offset_s, beats_per_bar`` (NULL = not corrected),
    the analysed values as ``analyzed_*``, ``set_by`` and ``set_at``."""
    return con.sql(
        """SELECT c.track_id, t.path, c.bpm, c."key", c.beat_offset_s, c.beats_per_bar, f.bpm AS analyzed_bpm,
                  f."key" AS analyzed_key, f.beat_offset_s AS analyzed_beat_offset_s,
                  f.beats_per_bar AS analyzed_beats_per_bar, c.set_by, c.set_at
           FROM corrections c JOIN tracks t USING (track_id) LEFT JOIN features f USING (track_id)
           ORDER BY c.track_id"""
    ).pl()
