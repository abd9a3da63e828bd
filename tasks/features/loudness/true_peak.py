"""BS.1770-4 Annex 2 true peak: 4x oversampling, only where the largest samples are.

The public entry point is :func:`~tasks.features.loudness.r128.true_peak` (and ``measure_loudness``); this module holds
the interpolator and the block search they share with the loudness pass.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from tasks.errors import CratedigError

TRUE_PEAK_OVERSAMPLING: int = 4
#: True-peak search margin under the sample peak, dB, and cap on oversampled 64-sample blocks (see true_peak).
TRUE_PEAK_MARGIN_DB: float = 2.0
TRUE_PEAK_MAX_BLOCKS: int = 1024

_TP_HALF = 8  # interpolator half-length in input samples: 16 taps per phase
_TP_BETA = 6.0  # Kaiser beta: gain within +-0.012 dB up to 0.38 fs
_TP_BLOCK = 64  # oversampled block: small, so candidates hug the peaks
_TP_FINE_PER_COARSE = 4  # the max_blocks / 4 highest coarse blocks are searched for fine candidates


@cache
def near_divisor(n: int, target: int) -> int:
    """The divisor of ``n`` nearest ``target`` (block lengths that tile a segment exactly; cached: every
    meter and segment pass asks, and the search reads all of ``n``)."""
    return min((d for d in range(1, n + 1) if n % d == 0), key=lambda d: abs(d - target))


@cache
def _phase_matrix() -> np.ndarray:
    # Kaiser-windowed sinc with zeros at every 4th tap, so phase 0 is the samples themselves (the true peak is
    # never under the sample peak). Column r-1, shape (16,), gives the value at i + r/4 from x[i-7 .. i+8].
    half, up = _TP_HALF, TRUE_PEAK_OVERSAMPLING
    n = np.arange(-up * half, up * half + 1)
    h = np.sinc(n / up) * np.kaiser(len(n), _TP_BETA)
    m = h[up * half + np.arange(1, up)[None, :] - up * np.arange(-half + 1, half + 1)[:, None]]
    m = m.astype(np.float32)
    m.setflags(write=False)
    return m


def block_peaks(x: np.ndarray, block: int) -> np.ndarray:
    # Max |x| per block, shape (channels, ceil(n / block)); max and -min avoid an abs() copy of the track.
    full = x.shape[1] - x.shape[1] % block
    r = x[:, :full].reshape(x.shape[0], -1, block)
    peaks = np.maximum(r.max(axis=-1, initial=0.0), -r.min(axis=-1, initial=0.0))
    if full < x.shape[1]:
        peaks = np.concatenate([peaks, np.abs(x[:, full:]).max(axis=-1, keepdims=True)], axis=1)
    return peaks.astype(np.float64)


def interpolated_peak(x: np.ndarray, channels: np.ndarray, starts: np.ndarray, block: int) -> float:
    # Max |y| at i + r/4 for i from start - 1 (the gap before the block) to the block's last sample; taps past
    # either end of the track read zeros, as a meter fed the track alone would.
    m, half, n = _phase_matrix(), _TP_HALF, x.shape[1]
    offs = np.arange(-half, block + half)
    best = 0.0
    for c0 in range(0, len(starts), 512):  # bounded temporaries
        idx = starts[c0 : c0 + 512, None] + offs[None, :]
        seg = np.where((idx >= 0) & (idx < n), x[channels[c0 : c0 + 512, None], np.clip(idx, 0, n - 1)], 0.0)
        seg = seg.astype(np.float32)
        acc = np.zeros((m.shape[1], len(seg), block + 1), dtype=np.float32)
        for k, taps in enumerate(m):  # a tap loop, not a GEMM: BLAS threads would spin on such tiny products
            acc += taps[:, None, None] * seg[None, :, k : k + block + 1]
        best = max(best, float(np.abs(acc).max()))
    return best


def true_peak_linear(x: np.ndarray, coarse: np.ndarray, block: int, *, margin_db: float, max_blocks: int) -> float:
    # coarse: sample peaks per channel and coarse block of ``block`` samples (the last one may be partial).
    sample_peak = float(coarse.max(initial=0.0))
    if not np.isfinite(sample_peak):
        raise CratedigError("non-finite samples")
    if sample_peak == 0.0:
        return 0.0
    floor = sample_peak * 10.0 ** (-margin_db / 20.0)
    flat = coarse.ravel()
    cand = np.flatnonzero(flat >= floor)
    max_coarse = max(1, max_blocks // _TP_FINE_PER_COARSE)
    if len(cand) > max_coarse:
        cand = cand[np.argpartition(flat[cand], -max_coarse)[-max_coarse:]]
    channels, starts = np.divmod(cand, coarse.shape[1])
    fine = near_divisor(block, _TP_BLOCK)
    fine_peaks = np.zeros((len(cand), block // fine))
    for i, (c, s) in enumerate(zip(channels, starts)):
        part = x[c, s * block : (s + 1) * block]
        n_fine = -(-len(part) // fine)
        fine_peaks[i, :n_fine] = np.abs(np.pad(part, (0, n_fine * fine - len(part)))).reshape(n_fine, fine).max(-1)
    fine_peaks = fine_peaks.ravel()
    cand = np.flatnonzero(fine_peaks >= floor)
    if len(cand) > max_blocks:
        cand = cand[np.argpartition(fine_peaks[cand], -max_blocks)[-max_blocks:]]
    which, sub = np.divmod(cand, block // fine)
    return max(sample_peak, interpolated_peak(x, channels[which], starts[which] * block + sub * fine, fine))
