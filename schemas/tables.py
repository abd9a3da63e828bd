"""pandera (polars) schemas of every frame cratedig writes: one model per table, checked before each write.

A row that fails never reaches the catalog: :func:`split_valid` separates it and names the failed check,
and the caller records the file as a ``SCHEMA`` reject.
"""
from __future__ import annotations

from datetime import datetime
from typing import Optional

import pandera.polars as pa
import polars as pl

from tasks.constants import N_MFCC
from tasks.key import KEY_NAMES

#: Native sample rates a decoder may report, Hz.
SAMPLE_RATES = [8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000,
                176400, 192000, 352800, 384000]
TRACK_STATUSES = ["analyzed", "rejected", "failed", "missing"]
REASONS = ["EMPTY", "TOO_LARGE", "NOT_AUDIO", "UNREADABLE", "TRUNCATED", "DECODE_ERROR", "TOO_SHORT",
           "TOO_LONG", "TIMEOUT", "WORKER_CRASH", "SCHEMA", "STALE", "INTERNAL"]


def _finite(data: pa.PolarsData) -> pl.LazyFrame:
    """Floats are finite (nulls are judged by ``nullable``)."""
    c = pl.col(data.key)
    return data.lazyframe.select(c.is_finite() | c.is_null())


def _finite_list(length: int | None = None):
    def check(data: pa.PolarsData) -> pl.LazyFrame:
        c = pl.col(data.key)
        ok = c.list.eval(pl.element().is_finite()).list.all()
        if length is not None:
            ok = ok & (c.list.len() == length)
        return data.lazyframe.select(ok | c.is_null())
    check.__name__ = f"finite_list{'' if length is None else f'_len_{length}'}"
    return pa.Check(check)


FINITE = pa.Check(_finite, name="finite")


class InventoryRow(pa.DataFrameModel):
    """A file found by the walk (``tasks.scan.walk_library``)."""

    path: str = pa.Field(str_length={"min_value": 1})
    size_bytes: int = pa.Field(ge=0)
    mtime_ns: int = pa.Field()

    class Config:
        strict = False
        coerce = True


class TrackRow(InventoryRow):
    """A ``tracks`` row as written by a batch."""

    track_id: int = pa.Field(ge=1)
    fingerprint: Optional[str] = pa.Field(nullable=True)
    format: Optional[str] = pa.Field(nullable=True)
    duration_s: Optional[float] = pa.Field(nullable=True, gt=0, checks=FINITE)
    sample_rate: Optional[int] = pa.Field(nullable=True, isin=SAMPLE_RATES)
    channels: Optional[int] = pa.Field(nullable=True, ge=1, le=64)
    tag_bpm: Optional[float] = pa.Field(nullable=True, checks=FINITE)
    status: str = pa.Field(isin=TRACK_STATUSES)
    reason: Optional[str] = pa.Field(nullable=True, isin=REASONS)


class FeatureRow(pa.DataFrameModel):
    """A ``features`` row: ranges a correct analysis can produce, finite floats only."""

    track_id: int = pa.Field(ge=1)
    analyzer_version: int = pa.Field(ge=1)
    bpm: Optional[float] = pa.Field(nullable=True, ge=30, le=300, checks=FINITE)
    bpm_confidence: float = pa.Field(ge=0, le=1, checks=FINITE)
    beat_offset_s: Optional[float] = pa.Field(nullable=True, ge=0, checks=FINITE)
    key: Optional[str] = pa.Field(nullable=True, isin=list(KEY_NAMES))
    key_confidence: float = pa.Field(ge=0, le=1, checks=FINITE)
    tuning_cents: float = pa.Field(ge=-50, le=50, checks=FINITE)
    loudness_lufs: Optional[float] = pa.Field(nullable=True, ge=-70, le=5, checks=FINITE)
    loudness_range_lu: Optional[float] = pa.Field(nullable=True, ge=0, le=100, checks=FINITE)
    true_peak_dbtp: Optional[float] = pa.Field(nullable=True, le=30, checks=FINITE)
    replaygain_db: Optional[float] = pa.Field(nullable=True, checks=FINITE)
    mfcc_mean: list[float] = pa.Field(checks=_finite_list(N_MFCC))
    mfcc_std: list[float] = pa.Field(checks=_finite_list(N_MFCC))
    chroma_mean: list[float] = pa.Field(checks=_finite_list(12))
    spectral_contrast: list[float] = pa.Field(checks=_finite_list(7))
    spectral_centroid_hz: float = pa.Field(ge=0, checks=FINITE)
    spectral_bandwidth_hz: float = pa.Field(ge=0, checks=FINITE)
    spectral_rolloff_hz: float = pa.Field(ge=0, checks=FINITE)
    spectral_flatness: float = pa.Field(ge=0, le=1, checks=FINITE)
    zero_crossing_rate: float = pa.Field(ge=0, le=1, checks=FINITE)
    rms: float = pa.Field(ge=0, checks=FINITE)
    onset_rate: float = pa.Field(ge=0, checks=FINITE)
    pulse_clarity: float = pa.Field(ge=0, le=1, checks=FINITE)
    danceability: float = pa.Field(ge=0, le=1, checks=FINITE)
    embedding: list[float] = pa.Field(checks=_finite_list())
    embedding_version: int = pa.Field(ge=1)
    analyzed_at: datetime = pa.Field()

    class Config:
        strict = False
        coerce = True


class RejectRow(pa.DataFrameModel):
    """A ``rejects`` row."""

    path: str = pa.Field(str_length={"min_value": 1})
    reason: str = pa.Field(isin=REASONS)
    detail: Optional[str] = pa.Field(nullable=True)

    class Config:
        strict = False
        coerce = True


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
        failed[int(idx)] = (failed.get(int(idx), "") + f"{column}: {check}; ")
    bad = sorted(failed)
    good = df.with_row_index("_i").filter(~pl.col("_i").is_in(bad)).drop("_i")
    return model.validate(good), {i: s.rstrip("; ") for i, s in failed.items()}
