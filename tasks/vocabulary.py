"""The catalog's vocabulary: every code stored in a status, reason, event or flag column, defined once.

They are :class:`~enum.StrEnum` members, so they compare equal to and are stored as their text. Never rename
a value: they are part of the catalog contract (README "The catalog"); add new ones at the end.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a file was rejected or failed (``rejects.reason``, ``tracks.reason``)."""

    EMPTY = "EMPTY"  # zero bytes
    TOO_LARGE = "TOO_LARGE"  # larger than the configured maximum size
    NOT_AUDIO = "NOT_AUDIO"  # content is not audio (HTML, executable, image, random bytes)
    UNREADABLE = "UNREADABLE"  # permission denied, vanished, not a regular file
    TRUNCATED = "TRUNCATED"  # container/stream ends early
    DECODE_ERROR = "DECODE_ERROR"  # decoder refused the stream
    TOO_SHORT = "TOO_SHORT"  # shorter than the minimum duration
    TOO_LONG = "TOO_LONG"  # longer than the maximum duration
    TIMEOUT = "TIMEOUT"  # per-file time limit hit
    WORKER_CRASH = "WORKER_CRASH"  # the worker process died while analysing this file
    SCHEMA = "SCHEMA"  # produced a row that failed the schema
    STALE = "STALE"  # file changed while it was analysed
    INTERNAL = "INTERNAL"  # a bug: unexpected exception, kept with its message
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"  # a sample rate or channel count no music file has


#: Reasons a later run retries by itself (the file may read fine next time); the others wait for a change.
RETRIED_REASONS: frozenset[Reason] = frozenset({Reason.STALE, Reason.UNREADABLE})


class TrackStatus(StrEnum):
    """State of a file in ``tracks.status``; also the outcome of analysing it."""

    ANALYZED = "analyzed"  # has a features row
    REJECTED = "rejected"  # the file itself is bad (reason); retried only when it changes
    FAILED = "failed"  # analysis failed (timeout, crash, stale...); retried by the next run
    MISSING = "missing"  # no longer found where it was


#: The outcomes of analysing one file, in the order summaries print them.
OUTCOMES: tuple[TrackStatus, ...] = (TrackStatus.ANALYZED, TrackStatus.REJECTED, TrackStatus.FAILED)


class RunStatus(StrEnum):
    """State of a run in ``runs.status``."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # stopped by Ctrl-C, or still running when the next run took the catalog (killed)


class TrackEvent(StrEnum):
    """Kinds of ``track_events.event``: what the scan saw, then the outcome of each analysis."""

    MOVED = "moved"
    MISSING = "missing"
    ANALYZED = "analyzed"
    REJECTED = "rejected"
    FAILED = "failed"


class TempoReason(StrEnum):
    """Why ``features.bpm`` is NULL (``features.tempo_reason``)."""

    SILENT = "SILENT"  # too quiet to hear a pulse
    ARHYTHMIC = "ARHYTHMIC"  # no periodic pulse clear enough
    TOO_SHORT = "TOO_SHORT"  # shorter than the minimum a tempo needs


class FeatureFlag(StrEnum):
    """Remarks on an analysis (``features.flags``)."""

    NON_FINITE = "NON_FINITE"  # the decoded samples held NaN or Inf (replaced by 0)
    SILENT = "SILENT"  # the track is silent
    SHORT = "SHORT"  # shorter than the minimum tempo duration
    LOUDNESS_UNSUPPORTED = "LOUDNESS_UNSUPPORTED"  # over 6 channels or a rate BS.1770 does not define


class CrateKind(StrEnum):
    """Kinds of ``crates.kind``."""

    SMART = "smart"  # a saved condition over effective_tracks, evaluated at each use
    STATIC = "static"  # a saved list of tracks (crate_tracks)


class CorrectedField(StrEnum):
    """Fields a user may correct (``corrections`` columns, ``correction_log.field``)."""

    BPM = "bpm"
    KEY = "key"
    BEAT_OFFSET_S = "beat_offset_s"
    BEATS_PER_BAR = "beats_per_bar"
