"""One track's whole analysis: decode once, one STFT, every feature from it -- block by block.

:func:`analyze_audio` is pure (decoded audio in, row out); :func:`analyze_file` streams a file through the
same :class:`~tasks.features.evidence.TrackEvidence` block by block (memory does not grow with the track's length),
adds tags, and turns every failure into a row with a reason code, so a batch never raises because of one file.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

from tasks.audio.decode import DecodedAudio, NativeStream, decode_with_fallback
from tasks.audio.formats import codec_name, format_name
from tasks.audio.identity import fingerprint, text_to_path
from tasks.audio.resample import MonoResampler, down_mix
from tasks.audio.tags import read_tags
from tasks.audio.validate import MAX_BYTES, check_file, check_format
from tasks.constants import (
    ANALYZER_VERSION,
    BPM_RANGE,
    MAX_DURATION_S,
    MIN_DURATION_S,
    MIN_TEMPO_DURATION_S,
    SILENCE_DBFS,
    SR,
)
from tasks.errors import RejectError
from tasks.features.embedding import EMBEDDING_VERSION, build_embedding
from tasks.features.evidence import TrackEvidence, TrackFeatures
from tasks.features.loudness.r128 import Loudness
from tasks.vocabulary import RETRIED_REASONS, FeatureFlag, Reason, TempoReason, TrackStatus


def _as_list(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32)]


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def analyze_audio(audio: DecodedAudio, *, bpm_range: tuple[float, float] = BPM_RANGE) -> dict[str, Any]:
    """Compute the ``features`` row (without ``track_id`` and timestamps) of decoded audio.

    Silent audio (peak below :data:`SILENCE_DBFS`) and clips under :data:`MIN_TEMPO_DURATION_S` get null
    tempo (and null key when silent) plus a flag, never an exception.
    """
    evidence = TrackEvidence(audio.native_sr, audio.channels, sr=audio.sr)
    evidence.add_native(audio.native)
    evidence.add_mono(audio.y)
    return features_row(evidence.finish(bpm_range=bpm_range), list(audio.flags))


def features_row(track: TrackFeatures, flags: list[str]) -> dict[str, Any]:
    """The ``features`` row (without ``track_id`` and timestamps) of a track's estimates; ``flags`` (the
    decoder's) are extended with ``SILENT``, ``SHORT`` and ``LOUDNESS_UNSUPPORTED`` as they apply."""
    flags = list(flags)
    silent = track.peak <= 10 ** (SILENCE_DBFS / 20)
    if silent:
        flags.append(FeatureFlag.SILENT.value)
    if track.duration_s < MIN_TEMPO_DURATION_S:
        flags.append(FeatureFlag.SHORT.value)
    tempo, key, timbre = track.tempo, track.key, track.timbre
    bpm, tempo_reason = tempo.bpm, tempo.reason
    if silent:
        bpm, tempo_reason = None, TempoReason.SILENT.value
    elif track.duration_s < MIN_TEMPO_DURATION_S:
        bpm, tempo_reason = None, TempoReason.TOO_SHORT.value
    has_key = key.key is not None and not silent
    if track.loudness is None:
        flags.append(FeatureFlag.LOUDNESS_UNSUPPORTED.value)
    loud = track.loudness or Loudness(None, None, None, None)

    row: dict[str, Any] = {
        "analyzer_version": ANALYZER_VERSION,
        "bpm": None if bpm is None else float(bpm),
        "bpm_confidence": float(tempo.confidence) if bpm is not None else 0.0,
        "bpm_candidates": [{"bpm": float(b), "score": float(s)} for b, s in tempo.candidates] if bpm else [],
        "beat_offset_s": tempo.beat_offset_s if bpm is not None else None,
        "beats_per_bar": tempo.beats_per_bar if bpm is not None else None,
        "tempo_reason": tempo_reason,
        "bpm_range_lo": track.bpm_range[0],
        "bpm_range_hi": track.bpm_range[1],
        "key": key.key if has_key else None,
        "key_camelot": key.camelot if has_key else None,
        "key_open": key.open_key if has_key else None,
        "key_confidence": float(key.confidence) if has_key else 0.0,
        "tuning_cents": float(key.tuning_cents),
        "loudness_lufs": _finite_or_none(loud.integrated_lufs),
        "loudness_range_lu": _finite_or_none(loud.range_lu),
        "true_peak_dbtp": _finite_or_none(loud.true_peak_dbtp),
        "replaygain_db": _finite_or_none(loud.replaygain_db),
        "mfcc_mean": _as_list(timbre.mfcc_mean),
        "mfcc_std": _as_list(timbre.mfcc_std),
        "chroma_mean": _as_list(key.chroma),
        "spectral_contrast": _as_list(timbre.spectral_contrast),
        "spectral_centroid_hz": float(timbre.spectral_centroid_hz),
        "spectral_bandwidth_hz": float(timbre.spectral_bandwidth_hz),
        "spectral_rolloff_hz": float(timbre.spectral_rolloff_hz),
        "spectral_flatness": float(timbre.spectral_flatness),
        "zero_crossing_rate": float(timbre.zero_crossing_rate),
        "rms": float(timbre.rms),
        "onset_rate": float(timbre.onset_rate),
        "pulse_clarity": float(tempo.pulse_clarity),
        "danceability": float(timbre.danceability),
        "flags": flags,
    }
    row["embedding"] = _as_list(build_embedding(row))
    row["embedding_version"] = EMBEDDING_VERSION
    return row


def _analyze_stream(
    stream: NativeStream, result: dict[str, Any], *, sr: int, bpm_range: tuple[float, float]
) -> dict[str, Any]:
    check_format(stream.sr, stream.channels)  # before a sample is decoded; the numbers stay in the detail only
    result.update(
        format=format_name(result["path"], stream.codec),
        codec=codec_name(stream.codec),
        sample_rate=stream.sr,
        channels=stream.channels,
        duration_s=stream.expected_frames / stream.sr if stream.expected_frames else None,
    )
    max_frames = MAX_DURATION_S * stream.sr
    if stream.expected_frames > max_frames:  # refused before decoding hours of audio
        raise RejectError(Reason.TOO_LONG, f"{stream.expected_frames / stream.sr:.0f} s > {MAX_DURATION_S:.0f} s")
    evidence = TrackEvidence(stream.sr, stream.channels, sr=sr)
    to_mono = MonoResampler(stream.sr, sr=sr)
    flags: list[str] = []
    for x in stream.blocks:
        mono = down_mix(x)
        # A NaN or Inf in any channel makes the down-mix's sum non-finite: one pass over the mono samples instead
        # of every channel's (a finite sum that overflows only costs the exact check).
        if not np.isfinite(np.sum(mono)) and not np.isfinite(x).all():
            # Replaced by 0 and flagged rather than rejected: the rest of the file is still worth analysing.
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
            mono = down_mix(x)
            flags = [FeatureFlag.NON_FINITE.value]
        evidence.add_native(x)
        if evidence.native_frames > max_frames:
            raise RejectError(Reason.TOO_LONG, f"longer than {MAX_DURATION_S:.0f} s")
        evidence.add_mono(to_mono.resample(mono))
    evidence.add_mono(to_mono.flush())
    duration_s = evidence.native_frames / stream.sr
    result["duration_s"] = duration_s
    if duration_s < MIN_DURATION_S:
        raise RejectError(Reason.TOO_SHORT, f"{duration_s:.3f} s < {MIN_DURATION_S} s")
    return features_row(evidence.finish(bpm_range=bpm_range), flags)


def _analyze_streamed(
    path: os.PathLike, result: dict[str, Any], *, sr: int, bpm_range: tuple[float, float]
) -> dict[str, Any]:
    """Decode and analyse ``path`` block by block (the next decoder starts from scratch if one fails)."""

    def reset() -> None:
        result.update(format=None, codec=None, duration_s=None, sample_rate=None, channels=None)

    return decode_with_fallback(path, lambda s: _analyze_stream(s, result, sr=sr, bpm_range=bpm_range), on_retry=reset)


def empty_result(
    path: str,
    size_bytes: int,
    mtime_ns: int,
    *,
    track_id: int | None = None,
    status: str = TrackStatus.REJECTED.value,
    reason: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """A result row of :func:`analyze_file` with nothing measured yet (also the row of a file that failed
    before it could be analysed, e.g. by a timeout or a worker crash)."""
    return {
        "path": path,
        "size_bytes": size_bytes,
        "mtime_ns": mtime_ns,
        "track_id": track_id,
        "fingerprint": None,
        "status": status,
        "reason": reason,
        "detail": detail,
        "format": None,
        "codec": None,
        "duration_s": None,
        "sample_rate": None,
        "channels": None,
        "features": None,
        "title": None,
        "artist": None,
        "album": None,
        "genre": None,
        "tag_bpm": None,
        "tag_key": None,
    }


def _fingerprint_anyway(result: dict[str, Any], fs_path: str | bytes, size_bytes: int) -> None:
    """Give a rejected file its content fingerprint too, so that a move of it is recognised as one (and not
    taken for a new file); an empty or unreadable file keeps none (every empty file would match every other)."""
    if result.get("fingerprint") is None and size_bytes > 0:
        try:
            result["fingerprint"] = fingerprint(fs_path, size_bytes)
        except OSError:
            pass


def analyze_file(
    path: str,
    size_bytes: int,
    mtime_ns: int,
    *,
    track_id: int | None = None,
    max_bytes: int = MAX_BYTES,
    bpm_range: tuple[float, float] = BPM_RANGE,
    sr: int = SR,
) -> dict[str, Any]:
    """Analyse one file and return a result row that always describes it.

    Returns
    -------
    dict
        ``path``, ``size_bytes``, ``mtime_ns``, ``track_id``, ``fingerprint``, ``status``
        (``analyzed`` / ``rejected`` / ``failed``), ``reason``, ``detail``, the track columns
        (``format``, ``duration_s``, ``sample_rate``, ``channels`` and the tag fields) and ``features``
        (the features row, or ``None``).
    """
    started = time.process_time()
    fs_path = text_to_path(path)
    result = empty_result(path, size_bytes, mtime_ns, track_id=track_id)
    try:
        check_file(fs_path, size_bytes, max_bytes=max_bytes)
        result["fingerprint"] = fingerprint(fs_path, size_bytes)
        result.update(read_tags(fs_path))
        features = _analyze_streamed(fs_path, result, sr=sr, bpm_range=bpm_range)
        # A file rewritten while it was analysed would get features of content that no longer exists.
        st = os.stat(fs_path)
        if st.st_size != size_bytes or st.st_mtime_ns != mtime_ns:
            raise RejectError(Reason.STALE, "file changed during analysis")
    except RejectError as exc:
        _fingerprint_anyway(result, fs_path, size_bytes)
        # STALE and UNREADABLE (a share that hiccups, a permission fixed later) are retried by the next run.
        result.update(
            status=(TrackStatus.FAILED if exc.reason in RETRIED_REASONS else TrackStatus.REJECTED).value,
            reason=str(exc.reason),
            detail=exc.detail,
        )
        return result
    except MemoryError:
        result.update(
            status=TrackStatus.FAILED.value, reason=Reason.TOO_LARGE.value, detail="out of memory while decoding"
        )
        return result
    except Exception as exc:  # a bug or a decoder surprise: recorded, never fatal for the batch
        result.update(
            status=TrackStatus.FAILED.value, reason=Reason.INTERNAL.value, detail=f"{type(exc).__name__}: {exc}"[:500]
        )
        return result
    features["analyzed_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    features["analysis_ms"] = (time.process_time() - started) * 1000.0
    result.update(status=TrackStatus.ANALYZED.value, features=features)
    return result
