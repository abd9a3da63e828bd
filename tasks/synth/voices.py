"""The instruments of :mod:`tasks.synth.songs` (oscillators, a Karplus-Strong string, drums, reverb, noise) and
plain test signals, :func:`click_track` and :func:`chord_tone` (re-exported by :mod:`tasks.synth.songs`) and
:func:`tremulant_chord` (a held chord that swells on a steady rate: no new note, for the tempo's negatives), and
:func:`notes_at` with :func:`poisson_times` (notes at given or random times: free time, for the same).

Everything is vectorised numpy. Wavetables are built by an inverse real FFT with the harmonics above
0.45 sr left out, so no oscillator aliases; the Karplus-Strong loop runs inside ``scipy.signal.lfilter``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import scipy.fft
import scipy.signal

from tasks.constants import SR

#: Peak level, dBFS, of every generated song and test signal.
PEAK_DBFS: float = -1.0


def midi_hz(midi: float, cents: float = 0.0) -> float:
    """Frequency in Hz of MIDI note ``midi`` (69 = A4 = 440 Hz), detuned by ``cents``."""
    return 440.0 * 2.0 ** ((midi - 69 + cents / 100.0) / 12.0)


def _wavetable(amps: np.ndarray, f0: float, sr: int, size: int = 2048) -> np.ndarray:
    """One cycle of sum_k amps[k-1] sin(2 pi k x), harmonics above 0.45 sr dropped (band-limited)."""
    k_max = min(len(amps), int(0.45 * sr / f0), size // 2 - 1)
    spec = np.zeros(size // 2 + 1, dtype=np.complex128)
    spec[1 : k_max + 1] = -0.5j * size * amps[:k_max]
    tab = np.fft.irfft(spec, n=size)
    return np.append(tab, tab[0])  # guard point for interpolation


def osc(amps: np.ndarray, f0: float, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """``n`` samples, shape (n,), of a periodic wave with harmonic amplitudes ``amps`` at ``f0`` Hz.

    ``phase`` is the start phase as a fraction of a cycle. The table is read with linear interpolation.
    """
    tab = _wavetable(amps, f0, sr)
    size = len(tab) - 1
    pos = ((phase + f0 * np.arange(n) / sr) % 1.0) * size
    i = pos.astype(np.int64)
    frac = pos - i
    return tab[i] * (1.0 - frac) + tab[i + 1] * frac


_K = np.arange(1, 65, dtype=np.float64)
#: Harmonic amplitudes (index 0 = fundamental) of the wavetable timbres.
HARMONICS: dict[str, np.ndarray] = {
    "saw": 1.0 / _K * 0.93**_K,
    "square": np.where(_K % 2 == 1, 1.0 / _K, 0.0) * 0.95**_K,
    "sine": np.r_[1.0, 0.06, 0.02],
    "organ": np.r_[1.0, 0.7, 0.5, 0.35, 0.0, 0.25, 0.0, 0.18],
    "bass": 1.0 / _K * 0.72**_K,
    "sub": np.r_[1.0, 0.45, 0.25, 0.12, 0.06],  # 808-ish: a sine with some saturation
}


def pluck(f0: float, n: int, sr: int, rng: np.random.Generator, t60: float = 2.5) -> np.ndarray:
    """Karplus-Strong string at ``f0`` Hz, shape (n,), decaying by 60 dB in about ``t60`` s.

    The loop filter is a [1/4, 1/2, 1/4] smoother convolved with a linear fractional delay: its group
    delay makes the loop exactly ``sr / f0`` samples long, so the pitch is exact, not rounded to a sample.
    """
    period = sr / f0
    m0 = max(int(period) - 1, 2)
    a = period - (m0 + 1)
    g = 10.0 ** (-3.0 * period / (sr * t60))
    taps = np.convolve([0.25, 0.5, 0.25], [1.0 - a, a]) * g  # group delay m0 + 1 + a = period
    den = np.zeros(m0 + 4)
    den[0] = 1.0
    den[m0:] -= taps
    burst = np.zeros(n)
    m = min(m0, n)
    exc = rng.uniform(-1.0, 1.0, m)
    burst[:m] = exc - exc.mean()
    return scipy.signal.lfilter([1.0], den, burst)


def tone(kind: str, f0: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """One note, shape (n,), at ``f0`` Hz with the timbre's own decay (no note-off), peak about 1.

    ``kind`` is a timbre of :data:`tasks.synth.styles.TIMBRES` or a key of :data:`HARMONICS` (``'bass'``, ``'sub'``).
    """
    t = np.arange(n) / sr
    if kind in ("saw", "square"):  # two detuned oscillators: the classic supersaw-lite
        amps = HARMONICS[kind]
        return 0.5 * (osc(amps, f0 * 1.0035, n, sr, rng.random()) + osc(amps, f0 / 1.0035, n, sr, rng.random()))
    if kind in HARMONICS:
        y = osc(HARMONICS[kind], f0, n, sr, rng.random())
        return y * (1 + 0.08 * np.sin(2 * np.pi * 5.5 * t)) if kind == "organ" else y
    if kind == "fm":  # electric-piano-like: ratio 1:1, index decays from bright to mellow
        index = 0.6 + 2.4 * np.exp(-t * 5.0) * min(1.0, 1500.0 / f0)
        return np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * f0 * t)) * np.exp(-t * 1.2)
    if kind == "pluck":
        y = pluck(f0, n, sr, rng)
        return y / (np.abs(y[: max(1, int(0.05 * sr))]).max() + 1e-9)
    # piano-ish: three partial groups, the higher ones decaying faster, and a soft hammer knock
    y = np.zeros(n)
    ph = rng.random()
    for lo, hi, rate in ((1, 1, 0.9), (2, 4, 2.2), (5, 12, 5.0)):
        amps = np.where((_K >= lo) & (_K <= hi), _K**-1.3, 0.0)[:hi]
        y += osc(amps, f0, n, sr, ph) * np.exp(-t * rate * (f0 / 262.0) ** 0.4)
    knock = min(n, int(0.01 * sr))
    y[:knock] += 0.2 * rng.uniform(-1, 1, knock) * np.linspace(1, 0, knock)
    return y / 1.4


def notes_at(
    times: Iterable[float],
    kind: str,
    n: int,
    rng: np.random.Generator,
    *,
    level: tuple[float, float] = (0.4, 1.0),
    sr: int = SR,
) -> np.ndarray:
    """Notes of ``kind`` (:func:`tone`, 2 s each, cut at the end) starting at ``times`` (s), at random pitches (MIDI
    48-79) and levels (uniform in ``level``), summed into shape (n,); not normalised. ``times`` may be a lazy
    iterator that draws from ``rng`` (:func:`poisson_times`): the draws interleave with the notes'."""
    y = np.zeros(n)
    for t in times:
        i = int(t * sr)
        m = min(n - i, 2 * sr)
        y[i : i + m] += tone(kind, midi_hz(int(rng.integers(48, 80))), m, sr, rng) * rng.uniform(*level)
    return y


def poisson_times(rng: np.random.Generator, mean_gap_s: float, until_s: float) -> Iterator[float]:
    """Onset times (s) of a Poisson process, exponential gaps of mean ``mean_gap_s``, drawn lazily from ``rng``."""
    t = rng.exponential(mean_gap_s)
    while t < until_s:
        yield t
        t += rng.exponential(mean_gap_s)


def _filtered_noise(rng: np.random.Generator, n: int, sr: int, lo: float | None, hi: float | None) -> np.ndarray:
    x = rng.standard_normal(n)
    if lo and hi:
        sos = scipy.signal.butter(2, [lo, min(hi, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    elif lo:
        sos = scipy.signal.butter(2, min(lo, 0.4 * sr), "highpass", fs=sr, output="sos")
    else:
        return x
    return scipy.signal.sosfilt(sos, x)


def drum_kit(sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One-shot drum samples {kick, snare, clap, rim, hat, open_hat}, float32, peak 1; ``rng`` varies them."""

    def t(d: float) -> np.ndarray:
        return np.arange(int(d * sr)) / sr

    tk = t(0.45)
    f = rng.uniform(42, 55) + rng.uniform(90, 140) * np.exp(-tk * 30)
    kick = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-tk * rng.uniform(5, 8))
    kick[: int(0.003 * sr)] += 0.3 * rng.uniform(-1, 1, int(0.003 * sr))
    ts = t(0.28)
    snare = 0.5 * np.sin(2 * np.pi * rng.uniform(170, 220) * ts) * np.exp(-ts * 25) + 0.6 * _filtered_noise(
        rng, len(ts), sr, 1500.0, None
    ) * np.exp(-ts * 15)
    tc = t(0.3)
    bursts = sum(np.exp(-np.maximum(tc - d, 0) * 180) * (tc >= d) for d in (0.0, 0.011, 0.022))
    clap = _filtered_noise(rng, len(tc), sr, 900.0, 2800.0) * (0.6 * bursts + 0.5 * np.exp(-tc * 14) * (tc >= 0.03))
    tr = t(0.07)
    rim = (
        0.3 * np.sin(2 * np.pi * rng.uniform(1500, 2000) * tr) + _filtered_noise(rng, len(tr), sr, 1500.0, 4000.0)
    ) * np.exp(-tr * 90)
    th, to = t(0.08), t(0.4)
    hat = _filtered_noise(rng, len(th), sr, 7000.0, None) * np.exp(-th * 70)
    open_hat = _filtered_noise(rng, len(to), sr, 6500.0, None) * np.exp(-to * 9)
    kit = {"kick": kick, "snare": snare, "clap": clap, "rim": rim, "hat": hat, "open_hat": open_hat}
    return {k: (v / np.abs(v).max()).astype(np.float32) for k, v in kit.items()}


def reverb(send: np.ndarray, sr: int, rng: np.random.Generator, rt60: float = 0.9) -> np.ndarray:
    """Wet signal of two decorrelated noise-tail reverbs of a mono send, shape (2, n), float32.

    Convolved at half rate (the tail above sr/4 barely matters) with one forward FFT for both sides:
    this is the most expensive step of a render.
    """
    n, half = len(send), len(send) // 2
    low = 0.5 * (send[0 : 2 * half : 2] + send[1 : 2 * half : 2])
    t = np.arange(int(rt60 * sr / 2)) * 2.0 / sr
    ir = rng.standard_normal((2, len(t)), dtype=np.float32) * np.exp(-t * 6.9 / rt60).astype(np.float32)
    ir[:, : int(0.006 * sr)] = 0.0  # pre-delay keeps the dry attack clean
    ir /= np.sqrt(np.sum(ir * ir, axis=1, keepdims=True))
    size = scipy.fft.next_fast_len(half + len(t), real=True)
    wet = scipy.fft.irfft(scipy.fft.rfft(low, size) * scipy.fft.rfft(ir, size, axis=1), size, axis=1)[:, :half]
    out = np.zeros((2, n), dtype=np.float32)
    out[:, 0 : 2 * half : 2] = wet
    out[:, 1 : 2 * half - 1 : 2] = 0.5 * (wet[:, :-1] + wet[:, 1:])  # linear interpolation back to sr
    return out


def pink_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Unit-variance pink (1/f) noise of ``shape`` (last axis = time): Paul Kellet's pinking filter."""
    white = rng.standard_normal(shape, dtype=np.float32)
    x = scipy.signal.lfilter(
        [0.049922035, -0.095993537, 0.050612699, -0.004408786],
        [1.0, -2.494956002, 2.017265875, -0.522189400],
        white,
        axis=-1,
    )
    return x / (x.std() + 1e-12)


# ---------------------------------------------------------------- test signals --------------------------------


def click_track(bpm: float, *, duration_s: float, sr: int = SR, offset_s: float = 0.0) -> np.ndarray:
    """Metronome: 20 ms decaying 1 kHz clicks at ``offset_s + k * 60 / bpm`` s.

    Returns
    -------
    np.ndarray, shape (n,), float32
        ``n = round(duration_s * sr)``, peak -1 dBFS. Click ``k`` starts at sample ``round(t_k * sr)``.
    """
    n = int(round(duration_s * sr))
    t = np.arange(int(0.02 * sr)) / sr
    click = np.sin(2 * np.pi * 1000.0 * t) * np.exp(-t * 250.0)
    click /= np.abs(click).max()
    out = np.zeros(n)
    times = offset_s + np.arange(int(np.ceil((duration_s - offset_s) * bpm / 60.0)) + 1) * 60.0 / bpm
    for i in np.round(times[times < duration_s] * sr).astype(np.int64):
        m = min(len(click), n - i)
        out[i : i + m] += click[:m]
    return (out * 10.0 ** (PEAK_DBFS / 20.0)).astype(np.float32)


def chord_tone(tonic: int, mode: str, *, duration_s: float, sr: int = SR) -> np.ndarray:
    """Steady pad in a key: the tonic triad over three octaves plus the other scale tones, softer.

    Returns
    -------
    np.ndarray, shape (n,), float32
        Mono, ``n = round(duration_s * sr)``, peak -1 dBFS.
    """
    if mode not in ("major", "minor") or tonic not in range(12):
        raise ValueError(f"bad key: tonic={tonic} mode={mode!r}")
    scale = (0, 2, 4, 5, 7, 9, 11) if mode == "major" else (0, 2, 3, 5, 7, 8, 10)
    n = int(round(duration_s * sr))
    out = np.zeros(n)
    triad = {0, scale[2], 7}
    for pc in scale:
        for octave in (48, 60, 72):
            gain = (1.0 if pc in triad or pc - 12 in triad else 0.7) * (0.5 if octave == 48 else 1.0)
            # pure sines: overtones would add out-of-key pitch classes or beat against the octaves
            out += gain * np.sin(2 * np.pi * midi_hz(octave + tonic + pc) * np.arange(n) / sr)
    ramp = min(n, int(0.02 * sr))
    out[:ramp] *= np.linspace(0.0, 1.0, ramp)
    out[n - ramp :] *= np.linspace(1.0, 0.0, ramp)
    return (out * 10.0 ** (PEAK_DBFS / 20.0) / (np.abs(out).max() + 1e-12)).astype(np.float32)


def tremulant_chord(root: int, rate_hz: float, n: int, sr: int, phases: np.ndarray) -> np.ndarray:
    """A held organ chord (root, 5th, octave, major 10th and 12th over MIDI note ``root``) whose two lowest voices
    swell and fade between 0.6 and 1 of their level at ``rate_hz``, in opposite phase (an organ's tremulant, a
    slow Leslie): a rate held through the whole signal, and no new note. ``phases``: the five voices' start
    phases, fractions of a cycle. Shape (n,), float64, not normalised.
    """
    t = np.arange(n) / sr
    y = np.zeros(n)
    for j, p in enumerate((0, 7, 12, 16, 19)):
        v = osc(HARMONICS["organ"], midi_hz(root + p), n, sr, float(phases[j]))
        y += v * (1 - 0.2 * (1 + np.sin(2 * np.pi * rate_hz * t + np.pi * j))) if j < 2 else v
    return y
