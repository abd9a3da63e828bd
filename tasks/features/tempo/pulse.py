"""The strongest pulse of an onset envelope and its phase through the track.

1. The strongest pulse (beat, 8th or 16th, 50-400 BPM): harmonic-summed Fourier tempogram peak,
   :func:`strongest_pulse`.
2. Tracking, :func:`track_pulse`: complex demodulation of the envelope at that pulse and its harmonics
   in 8-beat Hann windows, one per beat; each window's phase is matched to the drift-corrected pulse
   template and may move at most a quarter beat per pass, so a window that lacks the fundamental cannot
   flip. The mean tempo is the slope of that phase between the ends of the track: of a line, or of a
   polynomial when the tempo drifts (the slope of a line through a sinusoidal drift is off the mean
   tempo). No lag grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_GRID_PER_OCTAVE = 96
_TG_WIN_S, _TG_HOP_S, _TG_NFFT = 10.0, 2.5, 4096
_TG_CHUNK = 512  # tempogram windows per FFT batch
_PULSE_BPM = (50.0, 400.0)  # where the tracked (strongest) pulse is looked for: beats, 8ths or 16ths
_PHASE_WIN_BEATS = 8  # 2 bars: bar-level components fall on the window's first spectral null
_FIT_S, _FIT_MAXDEG, _FIT_GAIN = 8.0, 4, 3.0


def tempogram(
    o: np.ndarray, frame_rate: float, *, win_s: float = _TG_WIN_S, hop_s: float = _TG_HOP_S, n_fft: int = _TG_NFFT
) -> tuple[np.ndarray, np.ndarray]:
    """Mean magnitude of the short-time Fourier transform of an onset envelope (a Fourier tempogram).

    Parameters
    ----------
    o : np.ndarray, shape (n_frames,)
        Onset envelope.
    frame_rate : float
        Frames per second of ``o``.

    Returns
    -------
    A : np.ndarray, shape (n_fft // 2 + 1,)
        Mean magnitude per modulation frequency.
    freqs : np.ndarray, shape (n_fft // 2 + 1,)
        Modulation frequencies, Hz (times 60 for BPM).
    """
    win = min(int(win_s * frame_rate), len(o))
    hop = max(1, int(hop_s * frame_rate))
    frames = np.lib.stride_tricks.sliding_window_view(o, win)[::hop]
    taper = np.hanning(win + 2)[1:-1]
    total = np.zeros(n_fft // 2 + 1)
    for i in range(0, len(frames), _TG_CHUNK):  # bounded temporaries: a 2-hour mix has 14,000 windows
        f = frames[i : i + _TG_CHUNK]
        total += np.abs(np.fft.rfft((f - f.mean(axis=1, keepdims=True)) * taper, n_fft, axis=1)).sum(axis=0)
    return total / len(frames), np.fft.rfftfreq(n_fft, 1.0 / frame_rate)


def harmonic_salience(A: np.ndarray, freqs: np.ndarray, bpm: np.ndarray, *, n_harmonics: int = 4) -> np.ndarray:
    """Harmonic sum ``sum_k A(k bpm / 60) / sqrt(k)``, k = 1..n_harmonics, shape like ``bpm``."""
    f = np.asarray(bpm) / 60.0
    return sum(np.interp(k * f, freqs, A, right=0.0) / np.sqrt(k) for k in range(1, n_harmonics + 1))


def strongest_pulse(o: np.ndarray, fr: float, bpm: tuple[float, float] = _PULSE_BPM) -> float:
    """BPM of the strongest harmonic-summed periodicity of ``o`` within ``bpm`` (by default 50-400: the
    beat, 8th or 16th level)."""
    A, freqs = tempogram(o, fr)
    lo, hi = bpm
    grid = lo * 2.0 ** (np.arange(int(np.log2(hi / lo) * _GRID_PER_OCTAVE) + 1) / _GRID_PER_OCTAVE)
    sal = harmonic_salience(A, freqs, grid)
    i = int(np.clip(np.argmax(sal), 1, len(grid) - 2))
    den = sal[i - 1] - 2 * sal[i] + sal[i + 1]
    step = 0.5 * (sal[i - 1] - sal[i + 1]) / den if den < 0 else 0.0
    return float(grid[i] * 2.0 ** (np.clip(step, -1, 1) / _GRID_PER_OCTAVE))


# ---------------------------------------------------------------- pulse tracking -----------------------------


def _baseband(
    o: np.ndarray, fr: float, f0: float, ks: np.ndarray, win: int, hop: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Complex amplitude of harmonics ``ks * f0`` of ``o`` in Hann windows of ``win`` frames every ``hop``.

    Returns
    -------
    z : np.ndarray, shape (n_windows, n_k), complex
        Amplitudes with phase referred to absolute time (``o ~ sum 2 Re z exp(2 pi i k f0 t)``).
    centres : np.ndarray, shape (n_windows,)
        Window centres, s.
    weight : np.ndarray, shape (n_windows,)
        Share of each window inside the track (edge windows are truncated).
    """
    half, n = win // 2, len(o)
    w = np.hanning(2 * half + 3)[1:-1]
    starts = np.arange(0, n, hop)
    pad = np.zeros(half)
    frames = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, o, pad]), 2 * half + 1)[starts]
    inside = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, np.ones(n), pad]), 2 * half + 1)
    mass = inside[starts] @ w
    tau = (np.arange(2 * half + 1) - half) / fr
    centres = starts / fr
    # exp(-2 pi i k f0 (c + tau)) factorises: one small matmul serves every window.
    z = (frames * w) @ np.exp(-2j * np.pi * f0 * np.outer(tau, ks))
    z *= np.exp(-2j * np.pi * f0 * np.outer(centres, ks)) / mass[:, None]
    return z, centres, mass / w.sum()


def _reliable(strength: np.ndarray) -> np.ndarray:
    pos = strength[strength > 0]
    return strength >= 0.25 * np.median(pos) if len(pos) else np.ones(len(strength), bool)


def _track_phase(z: np.ndarray, ks: np.ndarray, weight: np.ndarray, n_iter: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Beat-phase offset per window (cycles, continuous) and its strength.

    ``z[j, i] ~ a_i exp(2 pi i k_i delta_j)``: the template ``a`` is the drift-corrected mean of ``z``;
    each window's ``delta_j`` maximises ``Re sum_i conj(a_i) z_ji exp(-2 pi i k_i delta)``.
    """
    # Start from the strongest harmonic's own unwrapped phase, through its reliable windows only (a
    # break has a random phase that could slip a whole beat). Its 1/k ambiguity is absorbed by the template.
    i = int(np.argmax(np.mean(np.abs(z), axis=0)))
    ok = np.flatnonzero(_reliable(np.abs(z[:, i]) * weight))
    if len(ok) < 2:
        ok = np.arange(len(z))
    r = np.unwrap(np.angle(z[ok, i]) / (2.0 * np.pi), period=1.0)
    delta = np.interp(np.arange(len(z)), ok, r) / ks[i]
    # A window may move at most a quarter beat per pass: one lacking the fundamental (only off-beat hats)
    # is ambiguous by half a beat and must not flip.
    u = np.linspace(-0.25, 0.25, 33)
    rot = np.exp(-2j * np.pi * np.outer(ks, u))
    rows = np.arange(len(z))
    for _ in range(n_iter):
        zb = z * np.exp(-2j * np.pi * np.outer(delta, ks))
        tpl = (zb * weight[:, None]).sum(axis=0) / weight.sum()
        corr = np.real((zb * np.conj(tpl)) @ rot)
        j = np.clip(corr.argmax(axis=1), 1, len(u) - 2)
        c0, cm, cp = corr[rows, j], corr[rows, j - 1], corr[rows, j + 1]
        den = cm - 2.0 * c0 + cp
        frac = np.where(den < 0, 0.5 * (cm - cp) / np.where(den < 0, den, -1.0), 0.0)
        delta = delta + u[j] + np.clip(frac, -1.0, 1.0) * (u[1] - u[0])
    return delta, np.maximum(c0, 0.0)


def _phase_model(t: np.ndarray, delta: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Polynomial coefficients of the phase offset over time: a line unless the tempo drifts.

    A drifting tempo bends the phase; the mean tempo is then the slope between the ends of a
    higher-order fit, not the slope of a line (which the shape of the drift biases).
    """
    P = np.polynomial.polynomial
    line = P.polyfit(t, delta, 1, w=np.sqrt(w))
    deg = int(np.clip(round((t[-1] - t[0]) / _FIT_S), 1, _FIT_MAXDEG))
    if deg == 1 or len(t) <= 2 * deg + 2:
        return line
    curve = P.polyfit(t, delta, deg, w=np.sqrt(w))
    rss = [np.sum(w * (delta - P.polyval(t, c)) ** 2) for c in (line, curve)]
    return curve if rss[0] > _FIT_GAIN * rss[1] else line


@dataclass(frozen=True)
class Pulse:
    """A pulse tracked through a track: mean frequency (Hz) and beat phase per frame (cycles)."""

    freq: float
    phase: np.ndarray


def track_pulse(o: np.ndarray, fr: float, f0: float) -> Pulse:
    """Follow the pulse of onset envelope ``o`` (zero mean) near ``f0`` Hz through the track.

    Complex demodulation at ``f0`` and its harmonics in 8-beat windows, one per beat, gives a local
    phase; the mean frequency is ``f0`` plus the slope of that phase between the ends of the track.
    """
    ks = np.arange(1, max(1, min(8, int(0.4 * fr / f0))) + 1, dtype=np.float64)
    period = fr / f0
    z, centres, weight = _baseband(o, fr, f0, ks, int(round(_PHASE_WIN_BEATS * period)) | 1, max(1, round(period)))
    delta, strength = _track_phase(z, ks, weight)
    w = strength * weight
    ok = _reliable(w)
    if ok.sum() < 2:
        ok[:] = True
        w = weight
    coef = _phase_model(centres[ok], delta[ok], w[ok])
    ta, tb = centres[ok][0], centres[ok][-1]
    pa, pb = np.polynomial.polynomial.polyval([ta, tb], coef)
    t = np.arange(len(o)) / fr
    return Pulse(float(f0 + (pb - pa) / max(tb - ta, 1e-9)), f0 * t + np.interp(t, centres, delta))
