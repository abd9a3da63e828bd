"""Native blocks to the analysis signal: down-mix to mono and resample to :data:`~tasks.constants.SR` (soxr HQ),
for a whole signal (:func:`to_mono`) or as blocks stream in (:class:`MonoResampler`); both give the same samples."""

from __future__ import annotations

import numpy as np
import soxr

from tasks.constants import SR


def down_mix(x: np.ndarray) -> np.ndarray:
    """The mean of the channels of ``x`` (shape ``(channels, n)``), shape ``(n,)``; the one channel itself
    when mono. Rows added in turn: ``x.mean(axis=0)`` took 4x as long on a stereo block here."""
    if x.shape[0] == 1:
        return x[0]
    mono = x[0] + x[1]
    for row in x[2:]:
        mono += row
    mono /= x.shape[0]
    return mono


def to_mono(x: np.ndarray, native_sr: int, *, sr: int = SR) -> np.ndarray:
    """Down-mix ``x`` (shape ``(channels, n)``) and resample from ``native_sr`` to ``sr`` Hz (soxr HQ), float32."""
    mono = down_mix(x)
    if native_sr != sr:
        mono = soxr.resample(mono, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


_RESAMPLE_PIECE = 1 << 16  # samples per soxr call (1.5 s at 44.1 kHz)


class MonoResampler:
    """Down-mix native blocks and resample them to the analysis rate as they stream (soxr HQ; the chunks
    joined are sample for sample what :func:`to_mono` gives for the whole signal)."""

    def __init__(self, native_sr: int, *, sr: int = SR) -> None:
        self._soxr = soxr.ResampleStream(native_sr, sr, 1, dtype="float32", quality="HQ") if native_sr != sr else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Mono chunk at ``sr`` (shape ``(m,)``, float32) of block ``x`` (shape ``(channels, n)``)."""
        return self.resample(down_mix(x))

    def resample(self, mono: np.ndarray) -> np.ndarray:
        """Mono chunk at ``sr`` (shape ``(m,)``, float32) of the next native-rate mono samples ``mono``."""
        if self._soxr is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        # Fed in pieces of _RESAMPLE_PIECE: soxr took 1.5x as long on a 24 s block at once (its output and
        # buffers then outgrow the cache); the output is the same sample for sample.
        return np.concatenate(
            [np.zeros(0, np.float32)]
            + [self._soxr.resample_chunk(mono[i : i + _RESAMPLE_PIECE]) for i in range(0, len(mono), _RESAMPLE_PIECE)]
        )

    def flush(self) -> np.ndarray:
        """The resampler's last samples, at the end of the stream."""
        if self._soxr is None:
            return np.zeros(0, dtype=np.float32)
        return np.ascontiguousarray(self._soxr.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32)
