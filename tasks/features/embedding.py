"""The similarity embedding: one fixed-length float32 vector per track, built from its features row.

Every value is put on a comparable O(1) scale by a *fixed* transform (nothing is learned here, so a
vector never changes once written). Positive scale quantities (frequencies, rates, spreads) are taken
in log2 around a typical value; bounded or signed ones are shifted and scaled linearly. A missing value
(``None``, NaN, absent key) becomes the transform's centre, 0: the typical value, never "zero Hz" or
"zero BPM". Every coordinate is finally clipped to ``[-8, 8]``.

Per-feature standardisation with catalog statistics and the group weights are applied later by the
similarity module; :data:`EMBEDDING_GROUPS` tells it which positions belong to which group.

Composition, version 1 (75 values, ``N_MFCC`` = 20, ``N_MELS`` = 96):

==========  =========  ======================================================================
group       positions  values
==========  =========  ======================================================================
timbre      0-39       ``mfcc_mean`` in dB units (``/ sqrt(N_MELS)``, so c0 is the mean log-mel
                       level) minus a typical value (c0 -25 dB, c1 +15 dB, others 0), ``/ 10 dB``;
                       then ``log2(mfcc_std / sqrt(N_MELS) / 1 dB)`` (spreads floored at 0.05 dB)
spectral    40-51      ``(spectral_contrast - typical) / 10 dB`` (7 bands; typical 20, 17, 21, 21,
                       23, 24, 48 dB); ``log2`` of centroid / 1 kHz, bandwidth / 1 kHz, roll-off /
                       2 kHz; ``log10(flatness) + 2.5``;
                       ``log2(zcr * SR / 2 / 1 kHz)`` (the ZCR as the frequency of a sine with as
                       many crossings); frequencies floored at 20 Hz, flatness at 1e-6
rhythm      52-57      tempo as ``(cos, sin)`` of ``2 pi log2(bpm / 120)`` (a circle of octaves:
                       120 and 121 BPM are 0.08 apart, 120 and 150 BPM 1.7, half and double time
                       share a point) plus ``log2(bpm / 120)``, so 70 and 140 BPM are 1.0 apart,
                       nearer than 120 and 160 (2.0) but not the same; a missing
                       tempo is the circle's centre (0, 0, 0), about equally far (1.0-1.3) from every
                       tempo in 70-180 BPM;
                       ``log2(1 + onset_rate) - 1.5``; ``2 * danceability - 1``;
                       ``2 * pulse_clarity - 1``
tonality    58-72      key on the circle of fifths, relative major and minor sharing a position
                       (A minor = C major = angle 0, G major = E minor = 30 degrees): ``(cos, sin)``,
                       then mode +0.25 major / -0.25 minor, so a relative key (0.5 apart) is as close
                       as a neighbour on the circle (0.52), a tritone 2.0 apart; missing key (0, 0, 0).
                       Then the 12-bin ``chroma_mean`` (C..B) normalised to sum 1, as ``12 c - 1``
                       (a flat profile is 0; missing or silent chroma is 0)
loudness    73-74      ``(loudness_lufs + 18) / 6``; ``(loudness_range_lu - 7) / 5``
==========  =========  ======================================================================

Bump :data:`tasks.constants.EMBEDDING_VERSION` whenever the composition, a transform or ``N_MFCC`` changes: the
next run re-analyses every track analysed with another.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from tasks.constants import EMBEDDING_VERSION as EMBEDDING_VERSION  # (defined there, where the scan reads it)
from tasks.constants import N_MELS, N_MFCC, SR
from tasks.errors import CratedigError

_N_CONTRAST = 7
_N_CHROMA = 12
_GROUP_SIZES: tuple[tuple[str, int], ...] = (
    ("timbre", 2 * N_MFCC),
    ("spectral", _N_CONTRAST + 5),
    ("rhythm", 6),
    ("tonality", 3 + _N_CHROMA),
    ("loudness", 2),
)


def _group_slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, size in _GROUP_SIZES:
        out[name] = slice(start, start + size)
        start += size
    return out


#: Positions of each feature group in the vector (contiguous, in this order, covering every position).
EMBEDDING_GROUPS: dict[str, slice] = _group_slices()
#: Length of the vector.
EMBEDDING_DIM: int = sum(size for _, size in _GROUP_SIZES)

_CLIP = 8.0
_TEMPO_CENTRE_BPM = 120.0
_MODE_OFFSET = 0.25
# Typical MFCC levels in dB units (c0: mean log-mel level, c1: spectral tilt) so the centre is typical.
_MFCC_CENTRE_DB = np.zeros(N_MFCC)
_MFCC_CENTRE_DB[:2] = (-25.0, 15.0)
# Typical spectral contrast per band (librosa's top band includes the near-empty top octave).
_CONTRAST_CENTRE_DB = np.array([20.0, 17.0, 21.0, 21.0, 23.0, 24.0, 48.0])
_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def build_embedding(row: Mapping[str, object]) -> np.ndarray:
    """Build the similarity embedding of one features row.

    Parameters
    ----------
    row : Mapping[str, object]
        A features row with ``mfcc_mean``, ``mfcc_std`` (``N_MFCC`` values), ``spectral_contrast`` (7,
        dB), ``spectral_centroid_hz``, ``spectral_bandwidth_hz``, ``spectral_rolloff_hz`` (Hz),
        ``spectral_flatness``, ``zero_crossing_rate`` (per sample), ``onset_rate`` (per second),
        ``danceability``, ``pulse_clarity`` (0..1), ``bpm`` (BPM), ``chroma_mean`` (12, C..B), ``key``
        (e.g. ``'A minor'``), ``loudness_lufs`` (LUFS) and ``loudness_range_lu`` (LU). Any of them may
        be missing or ``None``; non-finite numbers count as missing.

    Returns
    -------
    np.ndarray, shape (EMBEDDING_DIM,), float32
        All finite, each in ``[-8, 8]``; composition in the module docstring.

    Raises
    ------
    CratedigError
        If an array has the wrong length or ``key`` is not a key name.
    """
    parts = [_timbre(row), _spectral(row), _rhythm(row), _tonality(row), _loudness(row)]
    v = np.concatenate([np.asarray(p, dtype=np.float64) for p in parts])
    v = np.clip(np.nan_to_num(v, nan=0.0, posinf=_CLIP, neginf=-_CLIP), -_CLIP, _CLIP)
    return v.astype(np.float32)


# ---------------------------------------------------------------- reading the row


def _scalar(row: Mapping[str, object], name: str) -> float | None:
    value = row.get(name)
    if value is None:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CratedigError(f"{name} must be a number, got {value!r}") from None
    return x if math.isfinite(x) else None


def _vector(row: Mapping[str, object], name: str, n: int) -> np.ndarray | None:
    """The array ``row[name]`` as float64 of length ``n`` (non-finite entries as NaN), or None."""
    value = row.get(name)
    if value is None:
        return None
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size != n:
        raise CratedigError(f"{name} must have {n} values, got {a.size}")
    return np.where(np.isfinite(a), a, np.nan)


def _log2_ratio(x: float | None, ref: float, floor: float) -> float:
    return 0.0 if x is None else math.log2(max(x, floor) / ref)


def _parse_key(key: str) -> tuple[int, bool]:
    """``'Bb minor'`` -> ``(10, False)``: tonic pitch class (C = 0) and whether the mode is major.

    Accepts sharps and flats (``#``, ``b``, ``♯``, ``♭``) and ``major``/``maj``/``minor``/``min``.
    """
    parts = key.strip().split()
    if len(parts) == 2 and parts[0][:1].upper() in _PITCH and parts[1].lower() in ("major", "maj", "minor", "min"):
        name, mode = parts
        acc = name[1:].replace("♯", "#").replace("♭", "b")
        if acc in ("", "#", "b", "##", "bb"):
            pc = (_PITCH[name[0].upper()] + acc.count("#") - acc.count("b")) % 12
            return pc, mode.lower().startswith("maj")
    raise CratedigError(f"not a key name: {key!r} (expected e.g. 'A minor' or 'F# major')")


# ---------------------------------------------------------------- groups


def _timbre(row: Mapping[str, object]) -> np.ndarray:
    scale = math.sqrt(N_MELS)  # orthonormal DCT: c_k / sqrt(N_MELS) is in dB
    mean = _vector(row, "mfcc_mean", N_MFCC)
    std = _vector(row, "mfcc_std", N_MFCC)
    mean_t = np.zeros(N_MFCC) if mean is None else (mean / scale - _MFCC_CENTRE_DB) / 10.0
    if std is None:
        std_t = np.zeros(N_MFCC)
    else:
        with np.errstate(invalid="ignore"):  # NaN entries stay NaN, then become 0
            std_t = np.log2(np.maximum(std / scale, 0.05))
    return np.concatenate([mean_t, std_t])


def _spectral(row: Mapping[str, object]) -> np.ndarray:
    contrast = _vector(row, "spectral_contrast", _N_CONTRAST)
    contrast_t = np.zeros(_N_CONTRAST) if contrast is None else (contrast - _CONTRAST_CENTRE_DB) / 10.0
    flatness = _scalar(row, "spectral_flatness")
    zcr = _scalar(row, "zero_crossing_rate")
    return np.concatenate(
        [
            contrast_t,
            [
                _log2_ratio(_scalar(row, "spectral_centroid_hz"), 1000.0, 20.0),
                _log2_ratio(_scalar(row, "spectral_bandwidth_hz"), 1000.0, 20.0),
                _log2_ratio(_scalar(row, "spectral_rolloff_hz"), 2000.0, 20.0),
                0.0 if flatness is None else math.log10(max(flatness, 1e-6)) + 2.5,
                _log2_ratio(None if zcr is None else zcr * SR / 2.0, 1000.0, 20.0),
            ],
        ]
    )


def _centred_unit(x: float | None) -> float:
    """0..1 -> -1..1; missing -> 0."""
    return 0.0 if x is None else 2.0 * x - 1.0


def _rhythm(row: Mapping[str, object]) -> np.ndarray:
    bpm = _scalar(row, "bpm")
    if bpm is None or bpm <= 0:
        tempo = [0.0, 0.0, 0.0]
    else:
        octaves = math.log2(bpm / _TEMPO_CENTRE_BPM)
        tempo = [math.cos(2 * math.pi * octaves), math.sin(2 * math.pi * octaves), octaves]
    onset_rate = _scalar(row, "onset_rate")
    return np.array(
        tempo
        + [
            0.0 if onset_rate is None else math.log2(1.0 + max(onset_rate, 0.0)) - 1.5,
            _centred_unit(_scalar(row, "danceability")),
            _centred_unit(_scalar(row, "pulse_clarity")),
        ]
    )


def _tonality(row: Mapping[str, object]) -> np.ndarray:
    key = row.get("key")
    if key is None or key == "":
        position = [0.0, 0.0, 0.0]
    else:
        pc, major = _parse_key(str(key))
        relative_major = pc if major else (pc + 3) % 12
        angle = 2 * math.pi * ((7 * relative_major) % 12) / 12  # steps around the circle of fifths
        position = [math.cos(angle), math.sin(angle), _MODE_OFFSET if major else -_MODE_OFFSET]
    chroma = _vector(row, "chroma_mean", _N_CHROMA)
    chroma_t = np.zeros(_N_CHROMA)
    if chroma is not None:
        chroma = np.nan_to_num(np.maximum(chroma, 0.0), nan=0.0)
        if chroma.sum() > 0:
            chroma_t = _N_CHROMA * chroma / chroma.sum() - 1.0
    return np.concatenate([position, chroma_t])


def _loudness(row: Mapping[str, object]) -> np.ndarray:
    lufs = _scalar(row, "loudness_lufs")
    lra = _scalar(row, "loudness_range_lu")
    return np.array([0.0 if lufs is None else (lufs + 18.0) / 6.0, 0.0 if lra is None else (lra - 7.0) / 5.0])
