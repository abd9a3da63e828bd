"""Decode any supported file once: mono float32 at the analysis rate, plus the native channels for loudness.

Backends: libsndfile (``soundfile``) for wav/flac/ogg vorbis/mp3/aiff, which it decodes fastest here;
FFmpeg (``av``) for what libsndfile lacks (m4a/aac/alac/wma/...) and for opus, which FFmpeg's decoder
handles about twice as fast as libsndfile's. Resampling is ``soxr`` (HQ).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from tasks.constants import SR
from tasks.errors import Reason, RejectError

#: Extensions decoded by FFmpeg (PyAV) first; the rest go to libsndfile first.
PYAV_FIRST: frozenset[str] = frozenset({".m4a", ".mp4", ".aac", ".alac", ".wma", ".opus", ".ape", ".wv"})
#: Decoded length below this share of the length the header announces means the file is truncated.
TRUNCATION_RATIO = 0.98


@dataclass(frozen=True)
class DecodedAudio:
    """One decoded file.

    Attributes
    ----------
    y : np.ndarray, shape (n,)
        Mono down-mix at ``sr``, float32, finite.
    sr : int
        Analysis sample rate, Hz.
    native : np.ndarray, shape (channels, m)
        The file's channels at ``native_sr``, float32, finite (for loudness and true peak).
    native_sr : int
        The file's sample rate, Hz.
    format : str
        Codec as decoded (``flac``, ``vorbis``, ``opus``, ``mp3``, ``aac``, ``pcm_s16le``...).
    flags : tuple of str
        ``NON_FINITE`` when NaN/Inf samples were replaced by 0.
    """

    y: np.ndarray
    sr: int
    native: np.ndarray
    native_sr: int
    format: str
    flags: tuple[str, ...] = field(default=())

    @property
    def channels(self) -> int:
        return self.native.shape[0]

    @property
    def duration_s(self) -> float:
        return self.native.shape[1] / self.native_sr


def _read_soundfile(path: Path) -> tuple[np.ndarray, int, str, int]:
    # Bytes, because names with undecodable bytes are str with surrogates that libsndfile's wrapper rejects.
    with sf.SoundFile(os.fsencode(path)) as f:
        expected = f.frames
        x = f.read(dtype="float32", always_2d=True).T
        fmt = f.format.lower() if f.format != "OGG" else f.subtype.lower()
        if f.format == "WAV" or f.format == "WAVEX":
            fmt = "pcm_" + f.subtype.lower()
        return x, f.samplerate, fmt, expected


def _read_pyav(path: Path) -> tuple[np.ndarray, int, str, int]:
    with open(path, "rb") as raw, av.open(raw, metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise RejectError(Reason.NOT_AUDIO, "no audio stream")
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        expected = 0
        if stream.duration is not None and stream.time_base is not None:
            expected = int(stream.duration * stream.time_base * ctx.sample_rate)
        elif container.duration:
            expected = int(container.duration / av.time_base * ctx.sample_rate)
        chunks: list[np.ndarray] = []
        for frame in container.decode(stream):
            a = frame.to_ndarray()
            if not frame.format.is_planar:  # packed: (1, n * channels)
                a = a.reshape(-1, len(frame.layout.channels)).T
            chunks.append(a)
        if not chunks:
            raise RejectError(Reason.DECODE_ERROR, "no audio frames decoded")
        x = np.concatenate(chunks, axis=1)
        # Integer sample formats (flac, pcm via FFmpeg) are scaled to full-scale floats.
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
        return x.astype(np.float32, copy=False), ctx.sample_rate, ctx.name, expected


def _classify(exc: Exception) -> RejectError:
    text = str(exc).lower()
    if isinstance(exc, RejectError):
        return exc
    if any(s in text for s in ("format not recognised", "invalid data found", "unknown format",
                                 "not a valid", "unsupported", "no audio stream", "could not find codec")):
        return RejectError(Reason.NOT_AUDIO, str(exc)[:200])
    if any(s in text for s in ("end of file", "truncat", "unexpected end", "premature")):
        return RejectError(Reason.TRUNCATED, str(exc)[:200])
    return RejectError(Reason.DECODE_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}")


def read_native(path: str | Path) -> tuple[np.ndarray, int, str]:
    """Decode a file at its own rate and channel count.

    Returns
    -------
    x : np.ndarray, shape (channels, n), float32
    sr : int, Hz
    codec : str

    Raises
    ------
    RejectError
        ``NOT_AUDIO``, ``TRUNCATED`` or ``DECODE_ERROR``.
    """
    path = Path(path)
    readers = [_read_pyav, _read_soundfile] if path.suffix.lower() in PYAV_FIRST else [_read_soundfile, _read_pyav]
    errors: list[RejectError] = []
    for reader in readers:
        try:
            x, sr, codec, expected = reader(path)
        except (RejectError, sf.LibsndfileError, av.FFmpegError, RuntimeError, ValueError, OSError, EOFError) as exc:
            errors.append(_classify(exc))
            continue
        if x.shape[1] == 0:
            errors.append(RejectError(Reason.DECODE_ERROR, "zero samples decoded"))
            continue
        if expected > 0 and x.shape[1] < TRUNCATION_RATIO * expected:
            raise RejectError(Reason.TRUNCATED, f"decoded {x.shape[1]} of {expected} samples")
        return x, int(sr), codec
    # Prefer the most specific verdict: a decoder that recognised the format beats one that did not.
    for reason in (Reason.TRUNCATED, Reason.DECODE_ERROR, Reason.NOT_AUDIO):
        for e in errors:
            if e.reason is reason:
                raise e
    raise errors[0]


def to_mono(x: np.ndarray, native_sr: int, *, sr: int = SR) -> np.ndarray:
    """Down-mix ``x`` (shape ``(channels, n)``) and resample from ``native_sr`` to ``sr`` Hz (soxr HQ), float32."""
    mono = x.mean(axis=0) if x.shape[0] > 1 else x[0]
    if native_sr != sr:
        mono = soxr.resample(mono, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def decode_audio(path: str | Path, *, sr: int = SR) -> DecodedAudio:
    """Decode ``path`` once into a :class:`DecodedAudio` (mono at ``sr`` Hz plus the native channels).

    NaN/Inf samples are replaced by 0 and flagged ``NON_FINITE`` rather than rejected: the rest of the file
    is still worth analysing.
    """
    x, native_sr, codec = read_native(path)
    flags: tuple[str, ...] = ()
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        flags = ("NON_FINITE",)
    return DecodedAudio(y=to_mono(x, native_sr, sr=sr), sr=sr, native=x, native_sr=native_sr, format=codec, flags=flags)
