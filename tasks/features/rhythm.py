"""Rhythm density of an onset envelope: onset picking (``onset_rate``) and ``danceability``.

Both read only the track's onset envelope (:attr:`tasks.features.spectrum.Spectrum.onset_envelope`, or the same
envelope gathered block by block), so they are defined once for the whole track.
"""

from __future__ import annotations

import numpy as np
import scipy.fft
import scipy.ndimage

from tasks.constants import BPM_RANGE, HOP_LENGTH, SR

# Danceability: tempo preference centred on 120 BPM, one octave standard deviation; detrending window, s.
_DANCE_CENTRE_BPM, _DANCE_OCTAVES, _DANCE_DETREND_S = 120.0, 1.0, 3.0


def onset_frames(onset_envelope: np.ndarray, *, sr: int = SR, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Onset frame indices: ``librosa.onset.onset_detect``'s normalisation and peak picking, vectorised.

    Parameters
    ----------
    onset_envelope : np.ndarray, shape (n_frames,)
        Onset strength per frame.

    Returns
    -------
    np.ndarray, shape (n_onsets,), int
        Frame indices, increasing; none for a flat or non-finite envelope.
    """
    x = np.asarray(onset_envelope, dtype=np.float64)
    n = len(x)
    if n == 0 or not np.all(np.isfinite(x)) or x.max() == x.min():
        return np.zeros(0, dtype=int)
    x = (x - x.min()) / (x.max() - x.min() + np.finfo(np.float64).tiny)
    # librosa's defaults, in frames: 30 ms before for the maximum, 100 ms either side for the mean.
    pre_max = wait = int(0.03 * sr // hop_length)
    post_max, pre_avg = 1, int(0.10 * sr // hop_length)
    post_avg, delta = pre_avg + 1, 0.07
    # Window x[n - pre_max : n + post_max] and x[n - pre_avg : n + post_avg], truncated at the edges.
    padded = np.concatenate([np.full(pre_max, -np.inf), x, np.full(post_max - 1, -np.inf)])
    local_max = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max).max(axis=1)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(n)
    lo, hi = np.maximum(idx - pre_avg, 0), np.minimum(idx + post_avg, n)
    local_mean = (csum[hi] - csum[lo]) / (hi - lo)
    candidates = np.flatnonzero((x >= local_max) & (x >= local_mean + delta))
    kept, last = [], -wait - 1
    for c in candidates.tolist():  # greedy "wait" rule; a few hundred candidates per minute
        if c - last > wait:
            kept.append(c)
            last = c
    return np.asarray(kept, dtype=int)


def danceability(
    onset_envelope: np.ndarray, *, frame_rate: float = SR / HOP_LENGTH, bpm_range: tuple[float, float] = BPM_RANGE
) -> float:
    """Beat-periodicity strength of an onset envelope, 0..1 (definition in :class:`Timbre`).

    Parameters
    ----------
    onset_envelope : np.ndarray, shape (n_frames,)
        Onset strength per frame.
    frame_rate : float
        Frames per second of the envelope.
    bpm_range : (float, float)
        Tempi searched, BPM.

    Returns
    -------
    float
        0 for silence, noise or envelopes shorter than eight slowest beats (6.9 s at 70 BPM).
    """
    e = np.asarray(onset_envelope, dtype=np.float64)
    max_lag = 4.0 * 60.0 * frame_rate / bpm_range[0]
    if len(e) < 2 * max_lag or not np.all(np.isfinite(e)):
        return 0.0
    # A short Hann smoothing lets the autocorrelation be read at fractional lags by interpolation;
    # removing the 3 s running mean keeps loudness swells (intro, breakdown) from looking periodic.
    e = np.convolve(e, np.hanning(7)[1:-1] / 3.0, mode="same")
    detrend = max(3, int(round(_DANCE_DETREND_S * frame_rate)) | 1)
    e = e - scipy.ndimage.uniform_filter1d(e, detrend, mode="nearest")
    n = len(e)
    n_fft = scipy.fft.next_fast_len(2 * n, real=True)
    ac = np.fft.irfft(np.abs(np.fft.rfft(e, n_fft)) ** 2, n_fft)[: int(np.ceil(max_lag)) + 2]
    if ac[0] <= 1e-12 * n:
        return 0.0
    ac = ac / ac[0] * n / (n - np.arange(len(ac)))  # unbiased: long lags are not penalised
    bpm = np.arange(bpm_range[0], bpm_range[1] + 0.5, 0.5)
    lag = 60.0 * frame_rate / bpm
    lags = np.arange(len(ac))
    r = sum(np.interp(m * lag, lags, ac) for m in (1.0, 2.0, 4.0)) / 3.0
    w = np.exp(-0.5 * (np.log2(bpm / _DANCE_CENTRE_BPM) / _DANCE_OCTAVES) ** 2)
    # The best of many lags of a finite noise envelope reaches about 2 / sqrt(n): rescale so that
    # level is 0 whatever the track length (0.1 for a 10 s clip, 0.02 for 3 minutes).
    floor = min(2.0 / np.sqrt(n), 0.5)
    return float(np.clip((np.max(w * r) - floor) / (1.0 - floor), 0.0, 1.0))
