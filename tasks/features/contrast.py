"""Spectral contrast as librosa computes it (peak minus valley of each octave band, dB), from peaks and valleys
gathered frame by frame: the band layout, the per-band quantiles and the mean over chosen frames."""

from __future__ import annotations

from functools import cache

import numpy as np

from tasks.constants import N_FFT, SR
from tasks.errors import CratedigError

#: librosa.feature.spectral_contrast's defaults: lowest band edge (Hz), number of bands, quantile.
CONTRAST_FMIN_HZ, CONTRAST_BANDS, CONTRAST_QUANTILE = 200.0, 6, 0.02


@cache
def contrast_bands(sr: int, n_fft: int) -> tuple[tuple[int, int, int], ...]:
    """``(first_bin, stop_bin, k)`` per band, mirroring librosa's band edges and quantile count."""
    freq = np.fft.rfftfreq(n_fft, 1.0 / sr)
    edges = np.zeros(CONTRAST_BANDS + 2)
    edges[1:] = CONTRAST_FMIN_HZ * 2.0 ** np.arange(CONTRAST_BANDS + 1)
    if np.any(edges[:-1] >= sr / 2):
        raise CratedigError(f"spectral contrast bands exceed Nyquist at sr={sr} Hz")
    bands = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        idx = np.flatnonzero((freq >= lo) & (freq <= hi))
        first = idx[0] - 1 if k > 0 else idx[0]
        stop = len(freq) if k == CONTRAST_BANDS else idx[-1] + 1
        n_counted = stop - first
        if k < CONTRAST_BANDS:
            stop -= 1  # librosa counts the band's top bin for the quantile but does not use it
        bands.append((int(first), int(stop), max(1, int(np.rint(CONTRAST_QUANTILE * n_counted)))))
    return tuple(bands)


def contrast_frames(
    S: np.ndarray, sort_bands: list, *, sr: int = SR, n_fft: int = N_FFT
) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """Peak and valley magnitude per contrast band: of every frame of ``S`` (bins, frames) for bands whose
    2 % quantile is one bin (a min and a max), else of the frames in ``sort_bands`` (one array per such band,
    frames x the band's bins: a subsample of the frames, gathered by :mod:`tasks.features.timbre`), sorted."""
    to_sort = iter(sort_bands)
    peaks, valleys = [], []
    for first, stop, k in contrast_bands(sr, n_fft):
        if k == 1:
            band = S[first:stop]
            valleys.append(band.min(axis=0))
            peaks.append(band.max(axis=0))
        else:
            srt = np.sort(next(to_sort), axis=1)
            valleys.append(srt[:, :k].mean(axis=1))
            peaks.append(srt[:, -k:].mean(axis=1))
    return tuple(peaks), tuple(valleys)


def mean_contrast(
    peaks: tuple[np.ndarray, ...],
    valleys: tuple[np.ndarray, ...],
    frames: np.ndarray | slice,
    few: np.ndarray | slice,
    *,
    n_frames: int,
) -> np.ndarray:
    """Mean spectral contrast over ``frames`` (``few`` of the subsampled bands), shape ``(7,)``, dB."""
    peaks = tuple(p[frames] if len(p) == n_frames else p[few] for p in peaks)
    valleys = tuple(v[frames] if len(v) == n_frames else v[few] for v in valleys)
    # librosa: power_to_db (amin 1e-10, top_db 80 against each array's own maximum) of the magnitudes.
    peak_db = [10.0 * np.log10(np.maximum(p, 1e-10)) for p in peaks]
    valley_db = [10.0 * np.log10(np.maximum(v, 1e-10)) for v in valleys]
    peak_floor = max(p.max() for p in peak_db) - 80.0
    valley_floor = max(v.max() for v in valley_db) - 80.0
    return np.array(
        [np.mean(np.maximum(p, peak_floor) - np.maximum(v, valley_floor)) for p, v in zip(peak_db, valley_db)]
    )
