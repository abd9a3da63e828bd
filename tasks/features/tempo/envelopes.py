"""Per-frame tempo evidence from the shared log-mel: onset bands, harmonic change and frame levels.

Every function reads one :class:`~tasks.features.spectrum.Spectrum` (a whole track or one STFT block of it) and
returns per-frame values; a block that continues a track passes the log-mel columns before it, so that
block by block gives the whole-track values (:mod:`tasks.features.evidence`).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import scipy.sparse

from tasks.features.spectrum import Spectrum, mel_basis

_LOW_HZ, _HIGH_HZ = 200.0, 5000.0  # kick band below, hi-hat band above
#: Harmonic change compares each frame with the one this many frames earlier (139 ms at the default rate):
#: longer than a bowed or blown attack, shorter than an 8th note at 200 BPM. Chosen on synthesized
#: chorales and songs (``bench/tempo_eval.py``; 2-16 frames tried).
CHANGE_LAG: int = 6
_CHANGE_HZ = (100.0, 5000.0)  # where the partials of voices and chords are
_CHANGE_RANGE_DB = 60.0  # a frame's spectral shape is taken within this much of its loudest band
#: Pitch onsets compare each frame with the one this many frames earlier (70 ms at the default rate): a sung
#: or bowed note reaches its level over several frames, so a one-frame rise is lost in vibrato.
PITCH_LAG: int = 3
#: A new note rises over its band's level of the last this many frames (279 ms) up to ``PITCH_LAG`` before: a
#: held tone whose partials beat or whose vibrato sweeps the bands (4-20 Hz) stays under it.
PITCH_HOLD: int = 12
#: A new note is *fresh* when its band was more than ``FRESH_DB`` lower at some point in the ``FRESH_WINDOW``
#: frames (2 s) up to ``PITCH_LAG`` before it: a note that enters, not a held partial swelling back (a tremulant,
#: two voices' slow beating), which rises over its level of the last 279 ms but never far under it.
FRESH_WINDOW: int = 86
FRESH_DB: float = 15.0
#: Columns of pitch spectrum a block needs from before it (:func:`pitch_rise`'s ``previous``).
PITCH_HISTORY: int = PITCH_LAG + FRESH_WINDOW - 1
_PITCH_HZ = (55.0, 2000.0)  # fundamentals and first partials of voices, strings, winds
_PITCH_BINS_PER_SEMITONE = 3
_PITCH_RANGE_DB = 80.0  # a frame's pitch spectrum is floored this far under its loudest bin
#: A band's rise counts up to this: sound after digital silence rises by the whole floor (80-100 dB) in every
#: band and would outweigh every note that follows.
_PITCH_RISE_MAX_DB = 40.0


@cache
def _mel_centres(sr: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2)[1:-1]


@cache
def _band_weights(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """(4, n_mels) averaging weights: all bands, low (< 200 Hz), mid, high (>= 5 kHz)."""
    f = _mel_centres(sr, n_mels)
    masks = np.stack([np.ones(n_mels, bool), f < _LOW_HZ, (f >= _LOW_HZ) & (f < _HIGH_HZ), f >= _HIGH_HZ])
    return (masks / masks.sum(axis=1, keepdims=True)).astype(np.float32)


def onset_bands(spectrum: Spectrum, *, floor_db: float | None = None, previous: np.ndarray | None = None) -> np.ndarray:
    """Positive log-mel flux averaged over band groups, shape ``(4, n_frames)``, dB per frame, float32.

    Rows: all bands (equals :attr:`Spectrum.onset_envelope`), low (< 200 Hz: kick, bass), mid, and
    high (>= 5 kHz: hats). Frame ``t`` measures the rise from ``t - 1`` to ``t``; frame 0 is 0 unless
    ``previous`` is given.

    Parameters
    ----------
    floor_db : float, optional
        Log-mel values are floored here first, dB; default 80 dB under the spectrum's maximum.
    previous : np.ndarray, shape (n_mels,) or (n_mels, k), optional
        Log-mel column(s) of the frame(s) before the first (a block that continues a track), dB; the
        last one is used.
    """
    lm = spectrum.log_mel
    floor = lm.max() - 80.0 if floor_db is None else floor_db
    if previous is not None:
        prev = previous if previous.ndim == 1 else previous[:, -1]
        lm = np.concatenate([prev[:, None].astype(lm.dtype), lm], axis=1)
    d = np.diff(np.maximum(lm, floor), axis=1)
    np.maximum(d, 0.0, out=d)
    out = np.zeros((4, spectrum.n_frames), dtype=np.float32)
    first = 0 if previous is not None else 1
    out[:, first:] = _band_weights(spectrum.sr, spectrum.n_fft, lm.shape[0]) @ d
    return out


def harmonic_change(spectrum: Spectrum, *, previous: np.ndarray | None = None) -> np.ndarray:
    """Change of spectral shape over ``CHANGE_LAG`` frames, 100 Hz - 5 kHz, shape ``(n_frames,)``, dB, float32.

    Each frame's log-mel (floored 60 dB under its own loudest band) minus its mean over the bands is its
    shape, whatever its level; frame ``t`` gets half the mean absolute difference of the shapes of ``t``
    and ``t - CHANGE_LAG``. A chord change moves several voices' partials at once and scores high; a
    re-struck or swelling chord keeps its shape and scores low, however loud its attack. In music with no
    drums this marks the harmonic rhythm (usually the beat) where the onset flux also marks every note of
    the moving voices. The first ``CHANGE_LAG`` frames are 0 unless ``previous`` is given.

    Parameters
    ----------
    previous : np.ndarray, shape (n_mels, k), optional
        The last ``k <= CHANGE_LAG`` log-mel columns before the first frame (a block that continues a
        track), dB.
    """
    f = _mel_centres(spectrum.sr, spectrum.log_mel.shape[0])
    sel = slice(int(np.searchsorted(f, _CHANGE_HZ[0])), int(np.searchsorted(f, _CHANGE_HZ[1])))
    lm = spectrum.log_mel[sel]
    k = 0
    if previous is not None and previous.shape[1]:
        k = previous.shape[1]
        lm = np.concatenate([previous[sel].astype(lm.dtype), lm], axis=1)
    x = np.maximum(lm, lm.max(axis=0) - np.float32(_CHANGE_RANGE_DB))
    x -= x.mean(axis=0)
    out = np.zeros(spectrum.n_frames, dtype=np.float32)
    if x.shape[1] > CHANGE_LAG:
        d = 0.5 * np.abs(x[:, CHANGE_LAG:] - x[:, :-CHANGE_LAG]).mean(axis=0)  # frame j + CHANGE_LAG of x
        first = max(CHANGE_LAG - k, 0)  # first frame of the block with a full lag behind it
        out[first:] = d[len(d) - (spectrum.n_frames - first) :]
    return out


@cache
def _pitch_filterbank(sr: int, n_fft: int) -> scipy.sparse.csr_array:
    """(n_bins, k) triangular weights over the first ``k`` STFT bins (those up to ``_PITCH_HZ[1]``), a third of a
    semitone apart over ``_PITCH_HZ``, each row summing to 1 (a band narrower than an STFT bin takes that bin)."""
    f = np.fft.rfftfreq(n_fft, 1.0 / sr)
    per = 12 * _PITCH_BINS_PER_SEMITONE
    centres = _PITCH_HZ[0] * 2.0 ** (np.arange(int(np.log2(_PITCH_HZ[1] / _PITCH_HZ[0]) * per)) / per)
    width = np.maximum(centres * (2.0 ** (1.0 / per) - 1.0), sr / n_fft)
    w = np.maximum(0.0, 1.0 - np.abs(f[None, :] - centres[:, None]) / width[:, None])
    k = int(np.flatnonzero(w.any(axis=0))[-1]) + 1
    return scipy.sparse.csr_array((w[:, :k] / w.sum(axis=1, keepdims=True)).astype(np.float32))


def pitch_spectrum_db(spectrum: Spectrum) -> np.ndarray:
    """Power in third-of-a-semitone bands over ``_PITCH_HZ``, dB, each frame floored ``_PITCH_RANGE_DB`` under
    its loudest band, shape ``(n_bins, n_frames)``, float32: the input of :func:`pitch_onsets`."""
    fb = _pitch_filterbank(spectrum.sr, spectrum.n_fft)
    low = spectrum.S[: fb.shape[1]]  # the bins under 2 kHz: a fifth of the STFT
    db = np.maximum(fb @ (low * low), np.float32(1e-10)).astype(np.float32, copy=False)
    np.log(db, out=db)  # float32 ln is vectorised, log10 is not: dB = ln x * 10 / ln 10
    db *= np.float32(10.0 / np.log(10.0))
    return np.maximum(db, db.max(axis=0) - np.float32(_PITCH_RANGE_DB))


def pitch_onsets(spectrum: Spectrum) -> np.ndarray:
    """Rises of the pitch spectrum, mean over bands, shape ``(3, n_frames)``, dB, float32.

    Row 0: the rise over ``PITCH_LAG`` frames. The mel bands below 1 kHz are several semitones wide, so a
    voice moving by step under a sustained chord hardly changes them; third-of-a-semitone bands see every
    new note, however soft its attack. Choirs, organs and bowed strings, whose onset flux is near chance,
    keep a pulse here (the harmonic rhythm and the moving voices). Row 1: the rise over the band's highest
    level in frames ``t - PITCH_HOLD .. t - PITCH_LAG``: new notes only, not the beating or vibrato of held
    ones, which also rise and fall periodically in row 0. Row 2: the part of row 1 in bands that were
    more than ``FRESH_DB`` lower at some point in the ``FRESH_WINDOW`` frames up to ``t - PITCH_LAG``: notes that enter,
    not held partials swelling slower than ``PITCH_HOLD``. Each band's rise counts up to ``_PITCH_RISE_MAX_DB``.
    Frames without ``PITCH_LAG`` (row 0) or ``PITCH_HOLD`` (rows 1, 2) frames of history are 0; row 2 looks back
    over what there is of its window (a block that continues a track takes its history through
    :func:`pitch_rise`).
    """
    return pitch_rise(pitch_spectrum_db(spectrum))


def _running(x: np.ndarray, width: int, op: np.ufunc) -> np.ndarray:
    """``out[:, j] = op.reduce(x[:, j - width + 1 .. j])`` for ``j >= width - 1`` (earlier columns: over what there
    is), ``op`` ``np.maximum`` or ``np.minimum``, by doubling shifts: log2(width) array operations, several times
    faster than a sliding-window filter."""
    out, covered = x.copy(), 1
    while covered < width:
        step = min(covered, width - covered)
        op(out[:, step:], out[:, :-step], out=out[:, step:])
        covered += step
    return out


def pitch_rise(db: np.ndarray, *, previous: np.ndarray | None = None) -> np.ndarray:
    """:func:`pitch_onsets` from a block's :func:`pitch_spectrum_db` ``db`` (shape ``(n_bins, n_frames)``);
    ``previous``: the last ``k <= PITCH_HISTORY`` columns of :func:`pitch_spectrum_db` before the block."""
    n_frames = db.shape[1]
    if previous is not None and previous.shape[1]:
        db = np.concatenate([previous.astype(np.float32), db], axis=1)
    history = db.shape[1] - n_frames  # columns before the block
    out = np.zeros((3, n_frames), dtype=np.float32)

    def place(row: int, span: int, values: np.ndarray) -> None:
        """Row ``row``'s values for the frames of ``db`` with ``span`` frames of history, placed in the block."""
        first = max(span - history, 0)  # first frame of the block with that history behind it
        out[row, first:] = values[len(values) - (n_frames - first) :]

    if db.shape[1] > PITCH_LAG:  # row 0: frame t against frame t - lag
        place(0, PITCH_LAG, np.clip(db[:, PITCH_LAG:] - db[:, :-PITCH_LAG], 0.0, _PITCH_RISE_MAX_DB).mean(axis=0))
    if db.shape[1] > PITCH_HOLD:  # rows 1 and 2: against the highest (lowest) of the frames up to t - lag
        now, before = db[:, PITCH_HOLD:], slice(PITCH_HOLD - PITCH_LAG, -PITCH_LAG)  # column j: frame j + hold
        rise = np.clip(now - _running(db, PITCH_HOLD - PITCH_LAG + 1, np.maximum)[:, before], 0.0, _PITCH_RISE_MAX_DB)
        place(1, PITCH_HOLD, rise.mean(axis=0))
        fresh = now - _running(db, FRESH_WINDOW, np.minimum)[:, before] > np.float32(FRESH_DB)
        place(2, PITCH_HOLD, (rise * fresh).mean(axis=0))
    return out


@cache
def _mel_to_total(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Weights ``v`` with ``v @ mel_basis ~ 1``: a frame's total STFT power from its mel powers."""
    mb = mel_basis(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float64)
    return np.linalg.lstsq(mb.T, np.ones(mb.shape[1]), rcond=None)[0]


def frame_mean_square(spectrum: Spectrum) -> np.ndarray:
    """Mean square of each frame, full scale squared (a full-scale sine gives 0.5), shape ``(n_frames,)``.

    Parseval on the mel powers (shared with the onset envelope): within 0.5 dB of the exact frame
    power for tones and noise.
    """
    mp = spectrum.mel_power
    total = _mel_to_total(spectrum.sr, spectrum.n_fft, mp.shape[0]) @ mp
    return 2.0 * total / (spectrum.n_fft * 0.375 * spectrum.n_fft)  # 0.375 n_fft: energy of a Hann window


def level_dbfs(frame_ms: np.ndarray) -> float:
    """Mean square of the loudest 5 % of frames (from :func:`frame_mean_square`), dB re full scale."""
    return float(10.0 * np.log10(max(float(np.percentile(frame_ms, 95)), 1e-20)))
