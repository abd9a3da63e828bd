"""Musical key, tuning and mean chroma from the shared STFT (no CQT): :func:`estimate_key`.

Method
------
1. **Peaks.** One STFT frame per ~90 ms (every 4th at hop 512), local maxima 80-2500 Hz within 40 dB of
   the frame's loudest. The 10.8 Hz bins are a semitone wide at 180 Hz, so bins alone cannot place bass
   notes: each peak's frequency is refined by parabolic interpolation of log magnitude.
2. **Tuning.** Weighted circular mean of the peaks' offsets from the 12-TET grid (peaks above 220 Hz).
   Its concentration tells whether there is a pitch grid at all: when it is no higher than noise reaches
   (below 0.05 or 3/sqrt(effective peak count)) the key is None, as for silence.
3. **Chroma.** Per frame, peaks are binned into tuned semitones (cos^2 weight of the distance to the
   semitone centre); lower octaves first, each note present takes its harmonics 2..8 up to the mean of their
   neighbouring partials, h-1 and h+1 or h-2 and h+2 where that is more
   (:func:`tasks.features.key.partials.attribute_partials`: a harmonic series' amplitudes vary smoothly, or
   for a clarinet's odd partials every other one, so an oboe's strong 3rd partial goes to the note and does
   not vote for the dominant, while a second note on that semitone keeps what stands out); a frame that holds
   one note above 150 Hz and its partials (a solo melody) counts as that note alone; octaves fold to 12
   classes; each frame is scaled to max 1 (loud and soft passages count alike); the first 5% of tonal frames
   weigh 6x (pieces open in their key; the end is not weighted: minor pieces often close on a major chord).
4. **Key.** Pearson correlation with the 24 rotated profiles of :data:`PROFILE`; confidence is the margin
   between the best and the runner-up key divided by 0.25, clipped to 1.

The profile (:data:`PROFILE`, diatonic-mixed), the harmonic attribution, the solo frames and the opening
emphasis of step 3 were chosen leave-one-family-out on the development set (``bench/devset_lofo.py``: five of the
seven families held out in turn chose these settings, folk_solo's fold the same without solo frames and the
quartets' the neighbours h-1 and h+1 only); the figures are in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Literal

import numpy as np

from tasks.features.key.names import KEY_NAMES, camelot, open_key
from tasks.features.key.partials import HARMONIC_ROWS, attribute_partials, remove_geometric
from tasks.features.spectrum import Spectrum

# Key profiles (``profiles.json``), index 0 = tonic, as (major, minor). Sources: Krumhansl & Kessler (1982);
# Temperley (1999, "What's key for key?"); Sha'ath (2011, KeyFinder); Faraldo et al. (2016) edma and bgate as
# shipped by Essentia. diatonic: scale degrees plus a tonic-triad bonus; diatonic-mixed: the same with the minor's
# natural 7th scored like its leading tone (natural-minor music, modal pop and pads, has no leading tone and read
# as the relative major).
PROFILES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    name: (tuple(p["major"]), tuple(p["minor"]))
    for name, p in json.loads(resources.files(__package__).joinpath("profiles.json").read_text()).items()
}
#: The profile :func:`estimate_key` uses (chosen leave-one-family-out on the development set,
#: ``bench/devset_lofo.py``; figures in ``bench/RESULTS.md``).
PROFILE = "diatonic-mixed"


@dataclass(frozen=True)
class KeyEstimate:
    """Estimated key of one track.

    Attributes
    ----------
    key : str or None
        One of :data:`KEY_NAMES`; ``None`` for silence or no tonal content.
    camelot, open_key : str or None
        The key in Camelot (``'8A'`` = A minor) and Open Key (``'1m'`` = A minor) notation.
    confidence : float
        0..1, from the margin between the best and the runner-up key.
    tuning_cents : float
        Deviation of the reference pitch from A440 in cents, -50..50.
    chroma : np.ndarray, shape (12,)
        Mean pitch-class energy C..B (tuning-corrected), float32, sums to 1 (zeros when silent).
    """

    key: str | None
    camelot: str | None
    open_key: str | None
    confidence: float
    tuning_cents: float
    chroma: np.ndarray = field(repr=False)


# ---------------------------------------------------------------- analysis


@dataclass(frozen=True)
class _Params:
    """Analysis settings; the defaults are the measured choice (figures in ``bench/RESULTS.md``)."""

    fmin: float = 80.0  # Hz: below, 10.8 Hz bins cannot separate semitones even with interpolation
    fmax: float = 2500.0  # Hz: above, mostly upper partials and cymbals
    frame_hop_s: float = 0.09  # analyse one STFT frame per ~90 ms (every 4th at 22050 Hz / hop 512)
    peak_db: float = 40.0  # keep peaks within this many dB of the frame's loudest peak ...
    floor_db: float = 70.0  # ... and of the track's loudest
    harmonics: Literal["smooth-odd", "smooth", "geometric"] = "smooth-odd"  # partials attributed to their note ...
    hsub: float = 0.6  # ... or "geometric": harmonic h of a note loses up to hsub**(h-1) x the note's own weight
    solo: bool = True  # a frame that is one note and its partials counts as that note alone ...
    solo_db: float = 20.0  # ... judged on the peaks within this many dB of the frame's loudest ...
    solo_share: float = 0.9  # ... of whose magnitude this share lies on the lowest one's harmonic series ...
    solo_min_hz: float = 150.0  # ... when that note is above this (a bass alone plays a chord's root)
    edge: float = 5.0  # extra weight of the first tonal frames ...
    edge_frac: float = 0.05  # ... this share of them (pieces open in their key; a minor one may end in major)
    min_conc: float = 0.05  # peak-on-grid concentration below which there is no tonal content ...
    conc_z: float = 3.0  # ... or below conc_z / sqrt(effective peak count): what noise reaches
    profile: str = PROFILE


def _stride(spectrum: Spectrum, p: _Params) -> int:
    return max(1, round(p.frame_hop_s * spectrum.frame_rate))


@dataclass(frozen=True)
class KeyPeaks:
    """Spectral peaks of a track's analysed frames (every ``stride``-th STFT frame), gathered per block.

    Attributes
    ----------
    frame : np.ndarray, shape (n_peaks,), int
        Index of the analysed frame (STFT frame // stride).
    semis : np.ndarray, shape (n_peaks,)
        Interpolated frequency, semitones re A440.
    mag : np.ndarray, shape (n_peaks,)
        Interpolated linear magnitude.
    level : np.ndarray, shape (n_peaks,)
        The peak bin's magnitude, for the track-wide floor applied by :func:`key_from_peaks`.
    top : float
        Loudest peak-band magnitude seen.
    n_frames : int
        Analysed frames covered.
    """

    frame: np.ndarray
    semis: np.ndarray
    mag: np.ndarray
    level: np.ndarray
    top: float
    n_frames: int


def key_peaks(spectrum: Spectrum, *, first_frame: int = 0, p: _Params | None = None) -> KeyPeaks:
    """Spectral peaks 80-2500 Hz of every ``stride``-th frame of a block starting at STFT frame ``first_frame``
    (a multiple of the stride), with their frequencies refined by parabolic interpolation."""
    p = p or _Params()
    stride = _stride(spectrum, p)
    df = spectrum.sr / spectrum.n_fft
    k0 = max(int(p.fmin / df), 1)
    k1 = min(int(np.ceil(p.fmax / df)) + 1, spectrum.S.shape[0] - 1)
    X = np.ascontiguousarray(spectrum.S[k0 - 1 : k1 + 1, ::stride])
    top = X.max(axis=0)
    # The block's floor is at most the track's: key_from_peaks applies the track-wide one.
    thr = np.maximum(top * 10 ** (-p.peak_db / 20), top.max() * 10 ** (-p.floor_db / 20))
    c = X[1:-1]
    kk, tt = np.nonzero((c > X[:-2]) & (c >= X[2:]) & (c > thr))
    # Parabolic interpolation of log magnitude: the Hann main lobe is close to a Gaussian, so the vertex
    # lands within a few hundredths of a bin of an isolated partial -- far finer than the 10.8 Hz bins.
    flat = kk * X.shape[1] + tt
    level = c.ravel()[flat]
    a, b, g = (np.log(X.ravel()[flat + i * X.shape[1]] + np.float32(1e-12)) for i in range(3))
    den = a - 2 * b + g
    off = 0.5 * (a - g) / np.minimum(den, np.float32(-1e-6))  # den < 0 at a strict local maximum
    mag = np.exp(b - 0.25 * (a - g) * off)
    semis = 12.0 * np.log2((kk + (k0 + off)) * (df / 440.0))
    # Compact types (16 bytes a peak): a 2-hour mix has millions of peaks. float32 semitones resolve 0.0001 cent.
    return KeyPeaks(
        (tt + first_frame // stride).astype(np.int32),
        semis.astype(np.float32),
        mag.astype(np.float32),
        level.astype(np.float32),
        float(top.max()) if top.size else 0.0,
        X.shape[1],
    )


_TUNING_BINS = 100


def _tuning_histogram(semis: np.ndarray, w: np.ndarray, n_bins: int = _TUNING_BINS) -> np.ndarray:
    """Weight of the peaks' offsets from the 12-TET grid in 1-cent bins, shape ``(n_bins,)`` (additive over
    blocks); the circular mean then costs 100 sines instead of one per peak."""
    frac = semis - np.floor(semis)
    return np.bincount(np.minimum((frac * n_bins).astype(np.int64), n_bins - 1), weights=w, minlength=n_bins)


def _tuning(hist: np.ndarray) -> tuple[float, float]:
    """Weighted circular mean of a :func:`_tuning_histogram` and its resultant length.

    Returns (offset in semitones, -0.5..0.5; concentration 0..1: about 0 for noise, whose peaks fall
    anywhere; 0.17..0.9 on the benchmark songs).
    """
    ang = 2 * np.pi * (np.arange(len(hist)) + 0.5) / len(hist)
    s, c = float(hist @ np.sin(ang)), float(hist @ np.cos(ang))
    return float(np.arctan2(s, c) / (2 * np.pi)), float(np.hypot(s, c) / max(float(hist.sum()), 1e-12))


def _frame_chroma(
    tt: np.ndarray, semis: np.ndarray, w: np.ndarray, tuning: float, n_frames: int, p: _Params
) -> np.ndarray:
    """Chroma C..B of each analysed frame with a peak, max-normalised, shape ``(12, n_tonal)``: per-frame
    semitone spectrum, partials attributed to their notes (or removed), folded."""
    if len(w) == 0:
        return np.zeros((12, 0))
    s = semis - tuning
    near = np.round(s)
    # A peak between two semitones is ambiguous: weight it down (cos^2 over +-half a semitone).
    ww = w * np.cos(np.pi * (s - near)) ** 2
    lo = int(near.min()) - (int(near.min()) + 9) % 12  # start the grid on a C, so octaves fold by reshape
    u = (near - lo).astype(np.int64)
    n_oct = int(u.max()) // 12 + 1
    P = np.bincount(u * n_frames + tt, weights=ww, minlength=12 * n_oct * n_frames).reshape(12 * n_oct, n_frames)
    solo, note = _solo_frames(P, lo, p) if p.solo else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if p.harmonics == "geometric":
        P = remove_geometric(P, p.hsub)
    elif p.harmonics in ("smooth", "smooth-odd"):
        P = attribute_partials(P, odd=p.harmonics == "smooth-odd")
    else:
        raise ValueError(f"harmonics must be 'smooth-odd', 'smooth' or 'geometric', not {p.harmonics!r}")
    P[:, solo] = 0.0
    P[note, solo] = 1.0
    C = P.reshape(n_oct, 12, n_frames).sum(axis=0)
    top = C.max(axis=0)
    active = np.nonzero(top > 0)[0]
    return C[:, active] / top[active]  # every tonal frame counts the same, loud or soft


def _solo_frames(P: np.ndarray, lo: int, p: _Params) -> tuple[np.ndarray, np.ndarray]:
    """Frames of a semitone spectrum ``P`` (rows = semitones from ``lo`` re A440, columns = frames) that hold
    one note: of the peaks within ``solo_db`` of the frame's loudest, ``solo_share`` of the summed magnitude lies on
    the harmonic series (1-8) of the lowest, whose semitone is above ``solo_min_hz`` (so D#3 is the lowest note at
    150 Hz). Returns (frame indices, that note's row).

    Why: in a solo melody every peak is a partial of one note, whatever the instrument's partials are like; the
    attribution of partials assumes a shape for them (with the geometric removal of analyzer version 15, a
    clarinet tune in D read as F# minor). The dev set's leave-one-family-out keeps this rule
    (``bench/devset_lofo.py``). A lone bass note says a chord's root rather than the melody, hence the floor. A
    chord voiced on its root's overtones (root, octave, 12th, 17th, all above the floor) counts as its root too;
    in a mix the bass under 150 Hz keeps such frames out.
    """
    n_rows, n_frames = P.shape
    loudest = P.max(axis=0)
    strong = np.where(P >= loudest * 10 ** (-p.solo_db / 20), P, 0.0)
    low = (strong > 0).argmax(axis=0)
    rows = low + HARMONIC_ROWS[:, None]
    on = np.where(rows < n_rows, strong[np.minimum(rows, n_rows - 1), np.arange(n_frames)], 0.0).sum(axis=0)
    floor = 12 * np.log2(p.solo_min_hz / 440.0)
    solo = np.nonzero((loudest > 0) & (on >= p.solo_share * strong.sum(axis=0)) & (low + lo >= floor))[0]
    return solo, low[solo]


def _mean_chroma(C: np.ndarray, p: _Params) -> np.ndarray:
    """Mean of frame chroma (12, n_tonal), the first ``edge_frac`` of tonal frames weighted up.

    Not the last: minor pieces often end on a major chord (Bach's chorales on the Picardy third), and a
    weighted final chord read them as the parallel or relative major.
    """
    if C.shape[1] == 0:
        return np.zeros(12)
    n = max(1, int(p.edge_frac * C.shape[1]))
    fw = np.ones(C.shape[1])
    fw[:n] += p.edge
    return C @ fw / fw.sum()


@cache
def _templates(profile: str) -> np.ndarray:
    """Zero-mean unit-norm profiles for all 24 keys, shape (24, 12), rows in :data:`KEY_NAMES` order."""
    maj, mnr = (np.asarray(x, dtype=np.float64) for x in PROFILES[profile])
    T = np.array([np.roll(maj, k) for k in range(12)] + [np.roll(mnr, k) for k in range(12)])
    T -= T.mean(axis=1, keepdims=True)
    return T / np.linalg.norm(T, axis=1, keepdims=True)


def key_scores(chroma: np.ndarray, *, profile: str = PROFILE) -> np.ndarray:
    """Pearson correlation of a chroma vector with the 24 rotated key profiles.

    Parameters
    ----------
    chroma : np.ndarray, shape (12,)
        Pitch-class energy C..B.
    profile : str
        A name in :data:`PROFILES`.

    Returns
    -------
    np.ndarray, shape (24,)
        Correlation in -1..1 per key, in :data:`KEY_NAMES` order (zeros for a flat chroma).
    """
    c = np.asarray(chroma, dtype=np.float64) - np.mean(chroma)
    n = np.linalg.norm(c)
    return _templates(profile) @ (c / n) if n > 0 else np.zeros(24)


def key_from_peaks(blocks: list[KeyPeaks], p: _Params | None = None) -> KeyEstimate:
    """:func:`estimate_key` from a whole track's :class:`KeyPeaks`, block by block (consecutive blocks of
    frames; never joined, so a 2-hour mix needs one block's temporaries, not the whole track's)."""
    p = p or _Params()
    silent = KeyEstimate(None, None, None, 0.0, 0.0, np.zeros(12, dtype=np.float32))
    floor = max(b.top for b in blocks) * 10 ** (-p.floor_db / 20)
    kept = []
    for b in blocks:
        keep = b.level > floor
        kept.append((b.frame, b.semis, b.mag) if keep.all() else (b.frame[keep], b.semis[keep], b.mag[keep]))
    if not any(len(w) for _, _, w in kept):
        return silent
    # Tuning from peaks above 220 Hz, where the interpolated frequency is reliable (all peaks if none is).
    use_mid = any(np.any(semis > -12) for _, semis, _ in kept)
    hist, w_sum, w_sq = np.zeros(_TUNING_BINS), 0.0, 0.0
    for _, semis, w in kept:
        mid = semis > -12 if use_mid else np.ones(len(semis), bool)
        hist += _tuning_histogram(semis[mid].astype(np.float64), w[mid].astype(np.float64))
        w_sum, w_sq = w_sum + float(w[mid].sum(dtype=np.float64)), w_sq + float(w[mid] @ w[mid].astype(np.float64))
    tuning, conc = _tuning(hist)
    n_eff = w_sum**2 / max(w_sq, 1e-30)
    if conc < max(p.min_conc, p.conc_z / np.sqrt(n_eff)):
        return silent
    start = 0
    frames = []
    for b, (tt, semis, w) in zip(blocks, kept):
        frames.append(_frame_chroma(tt - start, semis.astype(np.float64), w.astype(np.float64), tuning, b.n_frames, p))
        start += b.n_frames
    chroma = _mean_chroma(np.concatenate(frames, axis=1), p)
    if not chroma.sum() > 0:
        return silent
    chroma = (chroma / chroma.sum()).astype(np.float32)
    r = key_scores(chroma, profile=p.profile)
    second, first = np.argsort(r)[-2:]
    best = KEY_NAMES[first]
    confidence = float(np.clip((r[first] - r[second]) / _FULL_CONFIDENCE_MARGIN, 0.0, 1.0))
    return KeyEstimate(best, camelot(best), open_key(best), confidence, round(100.0 * tuning, 2), chroma)


def _estimate(spectrum: Spectrum, p: _Params) -> KeyEstimate:
    return key_from_peaks([key_peaks(spectrum, p=p)], p)


# Correlation margin between the best and the runner-up key that maps to confidence 1.
_FULL_CONFIDENCE_MARGIN = 0.25


def estimate_key(spectrum: Spectrum) -> KeyEstimate:
    """Estimate the key, the tuning and the mean chroma of one track.

    Parameters
    ----------
    spectrum : Spectrum
        The track's shared STFT (any ``sr`` / ``n_fft``; tuned for 2048 points at 22050 Hz).

    Returns
    -------
    KeyEstimate
        ``key`` is None (and ``chroma`` zeros) for silence or when the spectral peaks do not sit on any
        semitone grid (noise, unpitched percussion).
    """
    return _estimate(spectrum, _Params())
