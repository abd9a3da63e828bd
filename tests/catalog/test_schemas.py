"""The catalog's vocabulary is one: the enums, the pandera models and the DDL's documented values agree."""

from __future__ import annotations

import re
from datetime import datetime

import pandera.polars as pa
import polars as pl
import pytest

from schemas.tables import RejectRow, RunCounts, TrackEventRow, split_valid
from tasks.catalog.migrations import ddl
from tasks.vocabulary import Reason, RunStatus, TrackEvent, TrackStatus


def _documented(column_comment: str) -> set[str]:
    """Values listed (``a | b | c``) in the DDL comment of a column."""
    match = re.search(column_comment + r"[^\n]*--\s*([a-z_ |]+)\n", ddl())
    assert match, column_comment
    return {v.strip() for v in match.group(1).split("|")}


def test_ddl_documents_the_enums():
    assert _documented(r"status\s+VARCHAR NOT NULL,") == set(TrackStatus)
    assert _documented(r"status\s+VARCHAR NOT NULL\s") >= {str(s) for s in RunStatus}


def test_models_refuse_unknown_codes_and_columns():
    at = datetime(2026, 1, 1)
    ok = pl.DataFrame(
        {"path": ["/a.flac"], "reason": [Reason.EMPTY.value], "detail": [None], "run_id": ["r"], "seen_at": [at]}
    )
    assert RejectRow.validate(ok).height == 1
    with pytest.raises(pa.errors.SchemaError):
        RejectRow.validate(ok.with_columns(reason=pl.lit("NOT_A_REASON")))
    with pytest.raises(pa.errors.SchemaError):  # strict: a column the table does not have
        RejectRow.validate(ok.with_columns(extra=pl.lit(1)))
    events = pl.DataFrame(
        {
            "track_id": [1, 2],
            "path": ["/a", "/b"],
            "event": [TrackEvent.MOVED.value, "exploded"],
            "detail": [None, None],
            "run_id": ["r", "r"],
            "event_at": [at, at],
        }
    )
    good, bad = split_valid(events, TrackEventRow)
    assert good.height == 1 and list(bad) == [1] and "event" in bad[1]


def test_run_counts_are_never_negative():
    assert RunCounts.validate(pl.DataFrame([{"status": RunStatus.COMPLETED.value, "files": 3}])).height == 1
    with pytest.raises(pa.errors.SchemaError):
        RunCounts.validate(pl.DataFrame([{"status": RunStatus.COMPLETED.value, "files": -1}]))
    with pytest.raises(pa.errors.SchemaError):
        RunCounts.validate(pl.DataFrame([{"status": "exploded"}]))
