"""One track's whole analysis: decode once, one STFT, every feature from it.

:func:`analyze_audio` is pure (audio in, row out); :func:`analyze_file` adds decoding, tags, and turns
every failure into a row with a reason code, so a batch never raises because of one file.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from tasks.constants import (ANALYZER_VERSION, BPM_RANGE, MAX_DURATION_S, MIN_DURATION_S,
                             MIN_TEMPO_DURATION_S, SILENCE_DBFS, SR)
from tasks.decode import DecodedAudio, decode_audio
from tasks.embedding import EMBEDDING_VERSION, build_embedding
from tasks.errors import Reason, RejectError
from tasks.key import estimate_key
from tasks.loudness import Loudness, measure_loudness
from tasks.scan import fingerprint, text_to_path
from tasks.spectrum import compute_spectrum
from tasks.tags import read_tags
from tasks.tempo import estimate_tempo
from tasks.timbre import describe_timbre
from tasks.validate import MAX_BYTES, check_file

#: BS.1770 weights up to 5.1; more channels get no loudness rather than a wrong one.
MAX_LOUDNESS_CHANNELS = 6


def _as_list(a: np.ndarray) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float32)]


def _finite_or_none(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _loudness(audio: DecodedAudio, flags: list[str]) -> Loudness:
    """BS.1770 loudness; layouts it does not define (over 6 channels, rates over 192 kHz) get nulls and a flag."""
    if audio.channels > MAX_LOUDNESS_CHANNELS or not 8000 <= audio.native_sr <= 192000:
        flags.append("LOUDNESS_UNSUPPORTED")
        return Loudness(None, None, None, None)
    return measure_loudness(audio.native, audio.native_sr)


def analyze_audio(audio: DecodedAudio, *, bpm_range: tuple[float, float] = BPM_RANGE) -> dict[str, Any]:
    """Compute the ``features`` row (without ``track_id`` and timestamps) of decoded audio.

    Silent audio (peak below :data:`SILENCE_DBFS`) and clips under :data:`MIN_TEMPO_DURATION_S` get null
    tempo (and null key when silent) plus a flag, never an exception.
    """
    y = audio.y
    flags = list(audio.flags)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    silent = peak <= 10 ** (SILENCE_DBFS / 20)
    if silent:
        flags.append("SILENT")
    if audio.duration_s < MIN_TEMPO_DURATION_S:
        flags.append("SHORT")

    spectrum = compute_spectrum(y, sr=audio.sr)
    tempo = estimate_tempo(spectrum, bpm_range=bpm_range)
    bpm, tempo_reason = tempo.bpm, tempo.reason
    if silent:
        bpm, tempo_reason = None, "SILENT"
    elif audio.duration_s < MIN_TEMPO_DURATION_S:
        bpm, tempo_reason = None, "TOO_SHORT"
    key = estimate_key(spectrum)
    has_key = key.key is not None and not silent
    loud = _loudness(audio, flags)
    timbre = describe_timbre(spectrum, y)

    row: dict[str, Any] = {
        "analyzer_version": ANALYZER_VERSION,
        "bpm": None if bpm is None else float(bpm),
        "bpm_confidence": float(tempo.confidence) if bpm is not None else 0.0,
        "bpm_candidates": [{"bpm": float(b), "score": float(s)} for b, s in tempo.candidates] if bpm else [],
        "beat_offset_s": tempo.beat_offset_s if bpm is not None else None,
        "tempo_reason": tempo_reason,
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


def empty_result(path: str, size_bytes: int, mtime_ns: int, *, track_id: int | None = None,
                 status: str = "rejected", reason: str | None = None, detail: str | None = None) -> dict[str, Any]:
    """A result row of :func:`analyze_file` with nothing measured yet (also the row of a file that failed
    before it could be analysed, e.g. by a timeout or a worker crash)."""
    return {"path": path, "size_bytes": size_bytes, "mtime_ns": mtime_ns, "track_id": track_id,
            "fingerprint": None, "status": status, "reason": reason, "detail": detail, "format": None,
            "duration_s": None, "sample_rate": None, "channels": None, "features": None,
            "title": None, "artist": None, "album": None, "genre": None, "tag_bpm": None, "tag_key": None}


def analyze_file(path: str, size_bytes: int, mtime_ns: int, *, track_id: int | None = None,
                 max_bytes: int = MAX_BYTES, bpm_range: tuple[float, float] = BPM_RANGE,
                 sr: int = SR) -> dict[str, Any]:
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
        audio = decode_audio(fs_path, sr=sr)
        result.update(format=audio.format, duration_s=audio.duration_s,
                      sample_rate=audio.native_sr, channels=audio.channels)
        if audio.duration_s < MIN_DURATION_S:
            raise RejectError(Reason.TOO_SHORT, f"{audio.duration_s:.3f} s < {MIN_DURATION_S} s")
        if audio.duration_s > MAX_DURATION_S:
            raise RejectError(Reason.TOO_LONG, f"{audio.duration_s:.0f} s > {MAX_DURATION_S:.0f} s")
        features = analyze_audio(audio, bpm_range=bpm_range)
        del audio
        # A file rewritten while it was analysed would get features of content that no longer exists.
        st = os.stat(fs_path)
        if st.st_size != size_bytes or st.st_mtime_ns != mtime_ns:
            raise RejectError(Reason.STALE, "file changed during analysis")
    except RejectError as exc:
        # STALE and UNREADABLE (a share that hiccups, a permission fixed later) are retried by the next run.
        result.update(status="failed" if exc.reason in (Reason.STALE, Reason.UNREADABLE) else "rejected",
                      reason=str(exc.reason), detail=exc.detail)
        return result
    except MemoryError:
        result.update(status="failed", reason=str(Reason.TOO_LARGE), detail="out of memory while decoding")
        return result
    except Exception as exc:  # a bug or a decoder surprise: recorded, never fatal for the batch
        result.update(status="failed", reason=str(Reason.INTERNAL), detail=f"{type(exc).__name__}: {exc}"[:500])
        return result
    features["analyzed_at"] = datetime.now(timezone.utc).replace(tzinfo=None)
    features["analysis_ms"] = (time.process_time() - started) * 1000.0
    result.update(status="analyzed", features=features)
    return result
