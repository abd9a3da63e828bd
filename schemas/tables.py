"""pandera (polars) schemas of every frame cratedig writes: one model per table, checked before each write.

A row that fails never reaches the catalog: :func:`split_valid` separates it and names the failed check,
and the caller records the file as a ``SCHEMA`` reject.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional

import pandera.polars as pa
import polars as pl

from tasks.audio.validate import MAX_CHANNELS, SAMPLE_RATE_RANGE
from tasks.constants import BPM_LIMITS, N_MFCC
from tasks.features.key.names import KEY_NAMES
from tasks.vocabulary import FeatureFlag, Reason, RunStatus, TempoReason, TrackEvent, TrackStatus


def _finite_floats(data: pa.PolarsData) -> pl.LazyFrame:
    """Floats are finite (nulls are judged by ``nullable``)."""
    c = pl.col(data.key)
    return data.lazyframe.select(c.is_finite() | c.is_null())


def _finite_lists(data: pa.PolarsData, length: int | None = None) -> pl.LazyFrame:
    """Every element of each list is finite, and the list has ``length`` elements when given."""
    c = pl.col(data.key)
    ok = c.list.eval(pl.element().is_finite()).list.all()
    if length is not None:
        ok = ok & (c.list.len() == length)
    return data.lazyframe.select(ok | c.is_null())


class InventoryRow(pa.DataFrameModel):
    """A file found by the walk (``tasks.catalog.scan.walk_library``)."""

    path: str = pa.Field(str_length={"min_value": 1})
    size_bytes: int = pa.Field(ge=0)
    mtime_ns: int = pa.Field()

    class Config:
        strict = True
        coerce = True


class TrackRow(InventoryRow):
    """A ``tracks`` row as written by a batch."""

    track_id: int = pa.Field(ge=1)
    fingerprint: str = pa.Field(str_length={"min_value": 1})  # NOT NULL in the DDL; an unread file's: "<size>-unread"
    format: Optional[str] = pa.Field(nullable=True)
    codec: Optional[str] = pa.Field(nullable=True)
    duration_s: Optional[float] = pa.Field(nullable=True, gt=0)
    sample_rate: Optional[int] = pa.Field(nullable=True, ge=SAMPLE_RATE_RANGE[0], le=SAMPLE_RATE_RANGE[1])
    channels: Optional[int] = pa.Field(nullable=True, ge=1, le=MAX_CHANNELS)
    title: Optional[str] = pa.Field(nullable=True)
    artist: Optional[str] = pa.Field(nullable=True)
    album: Optional[str] = pa.Field(nullable=True)
    genre: Optional[str] = pa.Field(nullable=True)
    tag_bpm: Optional[float] = pa.Field(nullable=True)
    tag_key: Optional[str] = pa.Field(nullable=True)
    status: str = pa.Field(isin=list(TrackStatus))
    reason: Optional[str] = pa.Field(nullable=True, isin=list(Reason))

    @pa.check("duration_s", "tag_bpm", name="finite")
    def finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_floats(data)


#: Float columns of ``features`` that must be finite (NULL is judged by each column's ``nullable``).
_FINITE_FEATURES = (
    "bpm",
    "bpm_confidence",
    "beat_offset_s",
    "key_confidence",
    "tuning_cents",
    "loudness_lufs",
    "loudness_range_lu",
    "true_peak_dbtp",
    "replaygain_db",
    "spectral_centroid_hz",
    "spectral_bandwidth_hz",
    "spectral_rolloff_hz",
    "spectral_flatness",
    "zero_crossing_rate",
    "rms",
    "onset_rate",
    "pulse_clarity",
    "danceability",
)


class FeatureRow(pa.DataFrameModel):
    """A ``features`` row: ranges a correct analysis can produce, finite floats only."""

    track_id: int = pa.Field(ge=1)
    analyzer_version: int = pa.Field(ge=1)
    bpm: Optional[float] = pa.Field(nullable=True, ge=BPM_LIMITS[0], le=BPM_LIMITS[1])
    bpm_confidence: float = pa.Field(ge=0, le=1)
    bpm_candidates: pl.List(pl.Struct({"bpm": pl.Float64, "score": pl.Float64})) = pa.Field()
    beat_offset_s: Optional[float] = pa.Field(nullable=True, ge=0)
    beats_per_bar: Optional[int] = pa.Field(nullable=True, isin=[3, 4])
    tempo_reason: Optional[str] = pa.Field(nullable=True, isin=list(TempoReason))
    bpm_range_lo: float = pa.Field(ge=BPM_LIMITS[0], le=BPM_LIMITS[1])
    bpm_range_hi: float = pa.Field(ge=BPM_LIMITS[0], le=BPM_LIMITS[1])
    key: Optional[str] = pa.Field(nullable=True, isin=list(KEY_NAMES))
    key_camelot: Optional[str] = pa.Field(nullable=True)
    key_open: Optional[str] = pa.Field(nullable=True)
    key_confidence: float = pa.Field(ge=0, le=1)
    tuning_cents: float = pa.Field(ge=-50, le=50)
    loudness_lufs: Optional[float] = pa.Field(nullable=True, ge=-70, le=5)
    loudness_range_lu: Optional[float] = pa.Field(nullable=True, ge=0, le=100)
    true_peak_dbtp: Optional[float] = pa.Field(nullable=True, le=30)
    replaygain_db: Optional[float] = pa.Field(nullable=True)
    mfcc_mean: list[float] = pa.Field()
    mfcc_std: list[float] = pa.Field()
    chroma_mean: list[float] = pa.Field()
    spectral_contrast: list[float] = pa.Field()
    spectral_centroid_hz: float = pa.Field(ge=0)
    spectral_bandwidth_hz: float = pa.Field(ge=0)
    spectral_rolloff_hz: float = pa.Field(ge=0)
    spectral_flatness: float = pa.Field(ge=0, le=1)
    zero_crossing_rate: float = pa.Field(ge=0, le=1)
    rms: float = pa.Field(ge=0)
    onset_rate: float = pa.Field(ge=0)
    pulse_clarity: float = pa.Field(ge=0, le=1)
    danceability: float = pa.Field(ge=0, le=1)
    flags: list[str] = pa.Field()
    embedding: list[float] = pa.Field()
    embedding_version: int = pa.Field(ge=1)
    analyzed_at: datetime = pa.Field()
    analysis_ms: Optional[float] = pa.Field(nullable=True, ge=0)

    @pa.check(*_FINITE_FEATURES, name="finite")
    def finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_floats(data)

    @pa.check("mfcc_mean", "mfcc_std", name="finite_list_of_n_mfcc")
    def mfcc_shape(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_lists(data, N_MFCC)

    @pa.check("chroma_mean", name="finite_list_of_12")
    def chroma_shape(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_lists(data, 12)

    @pa.check("spectral_contrast", name="finite_list_of_7")
    def contrast_shape(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_lists(data, 7)

    @pa.check("flags", name="known_flags")
    def known_flags(cls, data: pa.PolarsData) -> pl.LazyFrame:
        c = pl.col(data.key)
        return data.lazyframe.select(c.list.eval(pl.element().is_in(list(FeatureFlag))).list.all())

    @pa.check("embedding", name="finite_list")
    def embedding_finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_lists(data)

    class Config:
        strict = True
        coerce = True


class _PathNote(pa.DataFrameModel):
    """Columns shared by ``rejects`` and ``track_events``: a file, a note on it and the run that made it."""

    path: str = pa.Field(str_length={"min_value": 1})
    detail: Optional[str] = pa.Field(nullable=True)
    run_id: Optional[str] = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True


class RejectRow(_PathNote):
    """A ``rejects`` row."""

    reason: str = pa.Field(isin=list(Reason))
    seen_at: datetime = pa.Field()


class RunRow(pa.DataFrameModel):
    """A ``runs`` row as a run starts."""

    run_id: str = pa.Field(str_length={"min_value": 1})
    flow_run_id: Optional[str] = pa.Field(nullable=True)
    library: str = pa.Field(str_length={"min_value": 1})
    started_at: datetime = pa.Field()
    analyzer_version: int = pa.Field(ge=1)
    status: str = pa.Field(isin=list(RunStatus))

    class Config:
        strict = True
        coerce = True


class RunCounts(pa.DataFrameModel):
    """What a finished run stores in ``runs``: its final status and counts (``n_<name>``), never negative."""

    status: str = pa.Field(isin=list(RunStatus))
    files: Optional[int] = pa.Field(ge=0)
    new: Optional[int] = pa.Field(ge=0)
    changed: Optional[int] = pa.Field(ge=0)
    unchanged: Optional[int] = pa.Field(ge=0)
    moved: Optional[int] = pa.Field(ge=0)
    missing: Optional[int] = pa.Field(ge=0)
    ignored: Optional[int] = pa.Field(ge=0)
    analyzed: Optional[int] = pa.Field(ge=0)
    rejected: Optional[int] = pa.Field(ge=0)
    failed: Optional[int] = pa.Field(ge=0)

    class Config:
        strict = True
        coerce = True


class TrackEventRow(_PathNote):
    """A ``track_events`` row (append-only history)."""

    track_id: Optional[int] = pa.Field(nullable=True, ge=1)
    event: str = pa.Field(isin=list(TrackEvent))
    event_at: datetime = pa.Field()


def split_valid(df: pl.DataFrame, model: type[pa.DataFrameModel]) -> tuple[pl.DataFrame, dict[int, str]]:
    """Validate ``df`` against ``model``; return the valid rows and ``{row index: failed checks}`` of the rest.

    Never raises for bad rows: the caller decides what a failed row becomes (a ``SCHEMA`` reject).
    """
    try:
        return model.validate(df, lazy=True), {}
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    failed: dict[int, str] = {}
    whole_frame = cases.filter(pl.col("index").is_null())
    if whole_frame.height:  # a column-level problem (missing column, wrong type): every row fails
        why = "; ".join(f"{c}: {k}" for c, k in zip(whole_frame["column"], whole_frame["check"]))
        return df.clear(), {i: why for i in range(df.height)}
    for idx, column, check in cases.select("index", "column", "check").iter_rows():
        failed[int(idx)] = failed.get(int(idx), "") + f"{column}: {check}; "
    bad = sorted(failed)
    good = df.with_row_index("_i").filter(~pl.col("_i").is_in(bad)).drop("_i")
    return model.validate(good), {i: s.rstrip("; ") for i, s in failed.items()}


class CorrectionRow(pa.DataFrameModel):
    """A ``corrections`` row as a user sets it: the same ranges as :class:`FeatureRow` (NULL = not corrected)."""

    track_id: int = pa.Field(ge=1)
    bpm: Optional[float] = pa.Field(nullable=True, ge=30, le=300)
    key: Optional[str] = pa.Field(nullable=True, isin=list(KEY_NAMES))
    beat_offset_s: Optional[float] = pa.Field(nullable=True, ge=0)
    beats_per_bar: Optional[int] = pa.Field(nullable=True, ge=1, le=16)

    @pa.check("bpm", "beat_offset_s", name="finite")
    def finite(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return _finite_floats(data)

    class Config:
        strict = True
        coerce = True
